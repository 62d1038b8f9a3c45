// Speculative decoding with the checkpoint's MTP module: the per-sequence draft state, the draft
// choice from MTP logits, and verification against the main model (greedy: longest matching
// prefix; sampled: accept with min(1, p/q), else resample from normalised max(0, p - q)), with p
// and q taken after the request's own logit processing so the output distribution is exactly
// the main model's. Pure host code; the engine (engine_speculative.cpp) drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/sampling_params.h"

namespace latentserve::engine {

// Tests and benchmarks only: the main model's greedy token following prompt + outputs, when
// known (e.g. recorded from a run without speculation); nullopt when unknown.
using DraftOracle = std::function<std::optional<int32_t>(std::span<const int32_t> prompt,
                                                         std::span<const int32_t> outputs)>;

struct SpeculativeConfig {
  // K: drafts per decoding sequence and step (0: speculation off). K > 1 chains the first MTP
  // layer on its own outputs.
  int32_t num_speculative_tokens = 0;
  // Tests and benchmarks only, never in serving: with forced_acceptance = a in [0, 1] and an
  // oracle, each draft of a greedy request is replaced by the oracle's token with probability a
  // and by a token different from it otherwise, so drafts agree with the main model at a known
  // rate. The MTP still runs (its cost is measured); sampled requests keep their MTP drafts.
  double forced_acceptance = -1.0;
  DraftOracle oracle;

  bool enabled() const { return num_speculative_tokens > 0; }
};

// What a sequence carries for speculation; reset when it is preempted.
struct DraftState {
  std::vector<int32_t> drafts;         // proposals following the sequence's last token
  std::vector<std::vector<float>> q;   // per draft: its draft distribution (sampled requests)
  int64_t mtp_computed = 0;            // MTP positions [0, mtp_computed) are in the MTP cache

  void reset() {
    drafts.clear();
    q.clear();
    mtp_computed = 0;
  }
};

// What the sampler needs about one sequence at one step.
struct SamplingView {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> eos_ids;
  int64_t num_output_tokens = 0;  // before the tokens of this step
};

// The distribution the sampler draws from on `logits_row` (after logit_bias, min_tokens,
// penalties, temperature, min_p, top_k and top_p), dense over the vocabulary. Greedy requests
// get a one-hot vector on the sampler's greedy choice.
std::vector<float> target_distribution(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                       const SamplerState& state, int64_t num_output_tokens,
                                       std::span<const int32_t> eos_ids);

// Picks draft `draft_index` (0-based) from MTP logits: the processed argmax for greedy requests,
// else a draw from the processed draft distribution (returned in *q) at the draft's output position.
int32_t choose_draft(const float* mtp_logits, int64_t vocab, const SamplingView& view,
                     const SamplerState& state, int64_t draft_index, std::vector<float>* q);

struct Verification {
  std::vector<SampleResult> tokens;  // accepted drafts, then one corrected or bonus token
  int32_t num_accepted = 0;          // drafts accepted (tokens.size() - 1)
};

// Verifies drafts[0..k) against the main model's rows logits[0..k] ([k + 1, vocab]; row j
// predicts the token after drafts[0..j)). `state` is the sequence's sampler state; penalties see
// each accepted token as the sampler would have without speculation.
Verification verify_drafts(const float* logits, int64_t vocab, const SamplingView& view,
                           const SamplerState& state, std::span<const int32_t> drafts,
                           std::span<const std::vector<float>> q);

// Running totals for metrics.
struct SpeculativeCounters {
  int64_t drafted = 0;
  int64_t accepted = 0;
  int64_t verify_steps = 0;     // sequence-steps that verified drafts (or sampled after drafting)
  int64_t emitted = 0;          // tokens those steps produced
  std::vector<int64_t> drafted_at;   // [K] drafts at position i of the step
  std::vector<int64_t> accepted_at;  // [K]

  void record(int64_t num_drafts, int64_t num_accepted);
};

}  // namespace latentserve::engine
