// The plain sampler the fast one is tested against: the whole vocabulary sorted, probabilities
// in double, every rule written out once in the order sampler.h states. Slow; for tests only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/sampler.h"

namespace latentserve::engine {

// What the sampler would draw from at one step.
struct ReferenceDistribution {
  std::vector<float> logits;   // [vocab] after bias, bans, penalties and temperature (not for greedy)
  std::vector<int32_t> kept;   // the tokens that may be drawn, ascending
  std::vector<double> weight;  // [kept.size()] exp(logit - max), 0 for greedy's single token
  double total = 0;            // sum of weight in id order
  bool greedy = false;

  std::vector<double> probabilities(int64_t vocab) const;  // [vocab], 0 outside `kept`
};

ReferenceDistribution reference_distribution(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                             const SamplerState& state, int64_t num_output_tokens,
                                             std::span<const int32_t> eos_ids);

SampleResult sample_reference_with_uniform(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                           const SamplerState& state, int64_t num_output_tokens,
                                           std::span<const int32_t> eos_ids, double u);

SampleResult sample_reference(const float* logits_row, int64_t vocab, const SamplingParams& params,
                              const SamplerState& state, int64_t num_output_tokens,
                              std::span<const int32_t> eos_ids);

}  // namespace latentserve::engine
