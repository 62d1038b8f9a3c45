#include "engine/sampler_reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/sampler_internal.h"

namespace latentserve::engine {
namespace {

// Ids sorted by value, highest first; equal values by id.
std::vector<int32_t> sorted_by_value(const std::vector<float>& w) {
  std::vector<int32_t> ids(w.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
  return ids;
}

std::vector<int32_t> at_least(const std::vector<float>& w, const std::vector<int32_t>& ids, double cut) {
  std::vector<int32_t> out;
  for (int32_t id : ids) {
    if (double(w[id]) >= cut) out.push_back(id);
  }
  return out;
}

int32_t first_max(const float* w, int64_t vocab) {
  int32_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (w[i] > w[best]) best = int32_t(i);
  }
  return best;
}

// min_p, then top_k, then top_p (vLLM's order); each keeps everything tied with its last token.
std::vector<int32_t> truncate(const std::vector<float>& w, const SamplingParams& p, double max) {
  std::vector<int32_t> kept = sorted_by_value(w);
  kept = at_least(w, kept, -std::numeric_limits<double>::max());  // drop banned (-inf) tokens
  if (p.min_p > 0.0f) kept = at_least(w, kept, max + std::log(double(p.min_p)));
  if (p.top_k > 0 && p.top_k < int64_t(w.size()) && int64_t(kept.size()) > p.top_k) {
    kept = at_least(w, kept, w[kept[size_t(p.top_k - 1)]]);
  }
  if (p.top_p < 1.0f) {
    double total = 0;
    for (int32_t id : kept) total += std::exp(double(w[id]) - max);
    double running = 0;
    double cut = w[kept.back()];
    for (int32_t id : kept) {
      running += std::exp(double(w[id]) - max);
      if (running >= double(p.top_p) * total) {
        cut = w[id];
        break;
      }
    }
    kept = at_least(w, kept, cut);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

void fill_logprobs(const float* raw, int64_t vocab, int32_t count, SampleResult& r) {
  double max = raw[first_max(raw, vocab)];
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(raw[i]) - max);
  const double log_norm = max + std::log(sum);
  r.logprob = float(double(raw[r.token]) - log_norm);
  r.rank = 1;
  for (int64_t i = 0; i < vocab; ++i) r.rank += raw[i] > raw[r.token] ? 1 : 0;
  const std::vector<int32_t> order = sorted_by_value(std::vector<float>(raw, raw + vocab));
  r.num_top_logprobs = int32_t(std::min<int64_t>({count, kMaxTopLogprobs, vocab}));
  for (int32_t j = 0; j < r.num_top_logprobs; ++j) {
    r.top_logprobs[size_t(j)] = {order[size_t(j)], float(double(raw[order[size_t(j)]]) - log_norm)};
  }
}

}  // namespace

std::vector<double> ReferenceDistribution::probabilities(int64_t vocab) const {
  std::vector<double> p(size_t(vocab), 0.0);
  for (size_t j = 0; j < kept.size(); ++j) p[size_t(kept[j])] = greedy ? 1.0 : weight[j] / total;
  return p;
}

ReferenceDistribution reference_distribution(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                             const SamplerState& state, int64_t num_output_tokens,
                                             std::span<const int32_t> eos_ids) {
  ReferenceDistribution d;
  const detail::LogitTransform transform(params, state, num_output_tokens, eos_ids);
  d.greedy = transform.greedy();
  d.logits.resize(size_t(vocab));
  for (int64_t i = 0; i < vocab; ++i) d.logits[size_t(i)] = transform.apply(logits_row[i], int32_t(i));
  const int32_t best = first_max(d.logits.data(), vocab);
  if (!(d.logits[size_t(best)] > -std::numeric_limits<float>::infinity())) {
    d.greedy = true;  // every token banned: the raw argmax
    d.kept = {first_max(logits_row, vocab)};
  } else if (d.greedy) {
    d.kept = {best};
  } else {
    d.kept = truncate(d.logits, params, d.logits[size_t(best)]);
  }
  for (int32_t id : d.kept) {
    d.weight.push_back(d.greedy ? 0.0 : std::exp(double(d.logits[size_t(id)]) - double(d.logits[size_t(best)])));
    d.total += d.weight.back();
  }
  return d;
}

SampleResult sample_reference_with_uniform(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                           const SamplerState& state, int64_t num_output_tokens,
                                           std::span<const int32_t> eos_ids, double u) {
  SampleResult r;
  if (vocab < 1) return r;
  const ReferenceDistribution d = reference_distribution(logits_row, vocab, params, state, num_output_tokens, eos_ids);
  r.token = d.kept.back();
  if (!d.greedy) {
    double running = 0;
    for (size_t j = 0; j < d.kept.size(); ++j) {
      running += d.weight[j];
      if (running > u * d.total) {
        r.token = d.kept[j];
        break;
      }
    }
  }
  if (params.logprobs) fill_logprobs(logits_row, vocab, *params.logprobs, r);
  return r;
}

SampleResult sample_reference(const float* logits_row, int64_t vocab, const SamplingParams& params,
                              const SamplerState& state, int64_t num_output_tokens,
                              std::span<const int32_t> eos_ids) {
  const double u = sampling_uniform(state, uint64_t(num_output_tokens));
  return sample_reference_with_uniform(logits_row, vocab, params, state, num_output_tokens, eos_ids, u);
}

}  // namespace latentserve::engine
