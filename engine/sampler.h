// The Sampler: turns one FP32 logits row per sequence into a token, its logprob and the top
// logprobs, following vLLM's order: logit_bias, min_tokens, penalties, temperature, min_p, top_k,
// top_p, then a seeded draw. Pure host code; sample_reference (sampler_reference.h) is the
// plain full-sort version the tests hold this one to.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <unordered_map>
#include <unordered_set>

#include "common/result.h"
#include "engine/random.h"
#include "engine/sampling_params.h"

namespace latentserve::engine {

inline constexpr int32_t kMaxTopLogprobs = 20;
// Temperatures below this are greedy (vLLM's _SAMPLING_EPS).
inline constexpr float kGreedyTemperature = 1e-5f;

// Per-sequence sampling state. Penalty bookkeeping is kept only for the penalties the request
// uses; the random stream needs no mutable state (counter-based), so sampling never changes it.
class SamplerState {
 public:
  // sample_index tells apart the n completions of one request (their streams differ).
  static SamplerState create(const SamplingParams& params, uint32_t sample_index,
                             std::span<const int32_t> prompt_tokens);

  // Records a generated token (the engine calls this once the token is accepted).
  void append_output(int32_t token);

  uint64_t seed() const { return seed_; }
  uint32_t sample_index() const { return sample_index_; }
  // Generated-token counts (only with a presence or frequency penalty).
  const std::unordered_map<int32_t, int32_t>& output_counts() const { return output_counts_; }
  // Prompt and generated tokens (only with a repetition penalty).
  const std::unordered_set<int32_t>& seen_tokens() const { return seen_tokens_; }

 private:
  uint64_t seed_ = 0;
  uint32_t sample_index_ = 0;
  bool track_counts_ = false;
  bool track_seen_ = false;
  std::unordered_map<int32_t, int32_t> output_counts_;
  std::unordered_set<int32_t> seen_tokens_;
};

struct TopLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct SampleResult {
  int32_t token = -1;
  // The rest is filled only when params.logprobs is set, from the raw logits row.
  float logprob = std::numeric_limits<float>::quiet_NaN();
  int64_t rank = 0;  // 1 + how many tokens have a strictly higher raw logit
  int32_t num_top_logprobs = 0;
  std::array<TopLogprob, kMaxTopLogprobs> top_logprobs{};  // best first, ties: lower id first

  std::span<const TopLogprob> top() const { return {top_logprobs.data(), size_t(num_top_logprobs)}; }
};

// The uniform that decides the token at output position `position` (0 for the first generated
// token): the same (seed, sample index, position) always gives the same draw.
double sampling_uniform(const SamplerState& state, uint64_t position);

// A uniform from the sequence's own stream for other purposes (speculative accept/reject).
float uniform(const SamplerState& state, uint64_t position, uint32_t purpose);

// Samples one token. logits_row: [vocab], the raw model output (not modified). eos_ids: the
// model's end-of-sequence ids (banned, with stop_token_ids, while num_output_tokens < min_tokens
// unless ignore_eos). Greedy picks the lowest id among equal maxima. Top-k, top-p and min-p keep
// every token tied with the last one kept, so the kept set never depends on token ids. The draw
// walks the kept tokens in id order: the first whose running weight exceeds u * total wins.
// If processing bans every token, the raw argmax is returned.
SampleResult sample(const float* logits_row, int64_t vocab, const SamplingParams& params,
                    const SamplerState& state, int64_t num_output_tokens, std::span<const int32_t> eos_ids);

// sample() with the uniform u in [0, 1) given instead of drawn.
SampleResult sample_with_uniform(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                 const SamplerState& state, int64_t num_output_tokens,
                                 std::span<const int32_t> eos_ids, double u);

// The result for a token chosen elsewhere (speculative verification): `token`, with the raw
// logprobs of `logits_row` exactly as sample() fills them when params.logprobs is set.
SampleResult result_for_token(const float* logits_row, int64_t vocab, const SamplingParams& params,
                              int32_t token);

// One row of a batch. Several rows may share a state (speculative verification).
struct SampleRow {
  const SamplingParams* params = nullptr;
  const SamplerState* state = nullptr;
  int64_t num_output_tokens = 0;
};

// logits: [rows.size(), vocab] row-major. Rows run in parallel (OpenMP); each result depends only
// on its own row, so grouping and order never change a token.
Status sample_batch(const float* logits, int64_t vocab, std::span<const SampleRow> rows,
                    std::span<const int32_t> eos_ids, std::span<SampleResult> results);

}  // namespace latentserve::engine
