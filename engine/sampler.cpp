#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine/sampler_internal.h"

namespace latentserve::engine {
namespace {

bool better(const float* w, int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; }

// Logprobs of the raw distribution: the sampled token's, its rank, and the best `count`.
void fill_raw_logprobs(const float* raw, int64_t vocab, int32_t count, SampleResult& r) {
  const float max = detail::row_max(raw, vocab);
  const double log_norm = double(max) + std::log(detail::exp_sum(raw, vocab, max));
  const float chosen = raw[r.token];
  r.logprob = float(double(chosen) - log_norm);
  int64_t higher = 0;
  for (int64_t i = 0; i < vocab; ++i) higher += raw[i] > chosen ? 1 : 0;
  r.rank = higher + 1;

  // Insertion into a short sorted list; ids arrive ascending, so equal logits keep id order.
  count = int32_t(std::min<int64_t>({count, kMaxTopLogprobs, vocab}));
  int32_t best[kMaxTopLogprobs];
  int32_t n = 0;
  for (int64_t i = 0; i < vocab && count > 0; ++i) {
    if (n == count && !(raw[i] > raw[best[n - 1]])) continue;
    int32_t j = n == count ? n - 1 : n++;
    while (j > 0 && better(raw, int32_t(i), best[j - 1])) {
      best[j] = best[j - 1];
      --j;
    }
    best[j] = int32_t(i);
  }
  r.num_top_logprobs = n;
  for (int32_t j = 0; j < n; ++j) r.top_logprobs[size_t(j)] = {best[j], float(double(raw[best[j]]) - log_norm)};
}

}  // namespace

SamplerState SamplerState::create(const SamplingParams& params, uint32_t sample_index,
                                  std::span<const int32_t> prompt_tokens) {
  SamplerState state;
  state.seed_ = params.seed ? uint64_t(*params.seed) : process_random_seed();
  state.sample_index_ = sample_index;
  state.track_counts_ = params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f;
  state.track_seen_ = params.repetition_penalty != 1.0f;
  if (state.track_seen_) state.seen_tokens_.insert(prompt_tokens.begin(), prompt_tokens.end());
  return state;
}

void SamplerState::append_output(int32_t token) {
  if (track_counts_) ++output_counts_[token];
  if (track_seen_) seen_tokens_.insert(token);
}

double sampling_uniform(const SamplerState& state, uint64_t position) {
  return random_uniform_double(state.seed(), state.sample_index(), position, RandomPurpose::kSample);
}

float uniform(const SamplerState& state, uint64_t position, uint32_t purpose) {
  return random_uniform_float(state.seed(), state.sample_index(), position, RandomPurpose(purpose));
}

SampleResult sample_with_uniform(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                 const SamplerState& state, int64_t num_output_tokens,
                                 std::span<const int32_t> eos_ids, double u) {
  SampleResult result;
  if (vocab < 1) return result;
  detail::Scratch& scratch = detail::thread_scratch(vocab);
  const detail::LogitTransform transform(params, state, num_output_tokens, eos_ids);
  const float* w = detail::processed_row(logits_row, vocab, transform, scratch);
  if (transform.greedy()) {
    const int32_t best = detail::row_argmax(w, vocab);
    if (w[best] > -std::numeric_limits<float>::infinity()) result.token = best;
  } else {
    result.token = detail::sample_random(w, vocab, params, u, scratch);
  }
  if (result.token < 0) result.token = detail::row_argmax(logits_row, vocab);  // every token banned
  if (params.logprobs) fill_raw_logprobs(logits_row, vocab, *params.logprobs, result);
  return result;
}

SampleResult result_for_token(const float* logits_row, int64_t vocab, const SamplingParams& params,
                              int32_t token) {
  SampleResult result;
  result.token = token;
  if (params.logprobs) fill_raw_logprobs(logits_row, vocab, *params.logprobs, result);
  return result;
}

SampleResult sample(const float* logits_row, int64_t vocab, const SamplingParams& params, const SamplerState& state,
                    int64_t num_output_tokens, std::span<const int32_t> eos_ids) {
  const double u = sampling_uniform(state, uint64_t(num_output_tokens));
  return sample_with_uniform(logits_row, vocab, params, state, num_output_tokens, eos_ids, u);
}

Status sample_batch(const float* logits, int64_t vocab, std::span<const SampleRow> rows,
                    std::span<const int32_t> eos_ids, std::span<SampleResult> results) {
  if (vocab < 1) return make_error("sample_batch: vocabulary size must be at least 1, got " + std::to_string(vocab));
  if (rows.size() != results.size()) {
    return make_error("sample_batch: " + std::to_string(rows.size()) + " rows but " +
                      std::to_string(results.size()) + " result slots");
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].params == nullptr || rows[r].state == nullptr) {
      return make_error("sample_batch: row " + std::to_string(r) + " has no params or state");
    }
  }
  const auto n = int64_t(rows.size());
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t r = 0; r < n; ++r) {
    const SampleRow& row = rows[size_t(r)];
    results[size_t(r)] = sample(logits + r * vocab, vocab, *row.params, *row.state, row.num_output_tokens, eos_ids);
  }
  return ok_status();
}

}  // namespace latentserve::engine
