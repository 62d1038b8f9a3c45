// Pieces shared by the fast sampler and its reference: the per-token logit transform (so both
// produce bit-identical processed logits), per-thread scratch buffers and a vectorisable exp.
// Not part of the engine's interface.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/sampler.h"

namespace latentserve::engine::detail {

// Buffers reused across calls on one thread, grown to the largest vocabulary seen.
struct Scratch {
  std::vector<float> logits;       // [vocab] processed logits
  std::vector<float> exps;         // [vocab] exp(w - max)
  std::vector<float> values;       // [candidates] their logits
  std::vector<int32_t> ids;        // [vocab] candidate token ids
  std::vector<double> weights;     // [candidates]
  std::vector<double> block_sums;  // [vocab / kBlock]
  std::vector<float> heap;         // [top_k]
};
Scratch& thread_scratch(int64_t vocab);

// Logit bias, min_tokens bans, penalties and temperature for one sequence at one step. Every
// transform except temperature touches only a few tokens (touched()); apply() runs the whole
// chain for one token, in vLLM's order, with the same float operations wherever it is called.
class LogitTransform {
 public:
  LogitTransform(const SamplingParams& params, const SamplerState& state, int64_t num_output_tokens,
                 std::span<const int32_t> eos_ids);

  bool greedy() const { return greedy_; }
  bool scales() const { return !greedy_ && params_.temperature != 1.0f; }
  float temperature() const { return params_.temperature; }
  bool touches_any() const;
  float apply(float raw, int32_t token) const;

  // Calls f(token) for every token some sparse transform may change (possibly more than once).
  template <class F>
  void for_each_touched(F&& f) const {
    for (const auto& entry : params_.logit_bias) f(entry.first);
    if (ban_stops_) {
      for (int32_t id : eos_ids_) f(id);
      for (int32_t id : params_.stop_token_ids) f(id);
    }
    if (repetition_) {
      for (int32_t id : state_.seen_tokens()) f(id);
    }
    if (counts_) {
      for (const auto& entry : state_.output_counts()) f(entry.first);
    }
  }

 private:
  bool banned(int32_t token) const;

  const SamplingParams& params_;
  const SamplerState& state_;
  std::span<const int32_t> eos_ids_;
  bool greedy_;
  bool ban_stops_;
  bool repetition_;
  bool counts_;
};

// The processed row: `raw` itself when nothing changes it, else scratch.logits.
const float* processed_row(const float* raw, int64_t vocab, const LogitTransform& transform, Scratch& scratch);

// exp(x) for x <= 0 in float, about 2 ulp, 0 below -87; written so loops over it vectorise.
inline float exp_nonpositive(float x) {
  const float xc = x < -87.0f ? -87.0f : x;
  const float t = xc * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest without a libm call
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale = std::bit_cast<float>((int32_t(n) + 127) << 23);
  return x < -87.0f ? 0.0f : p * scale;
}

float row_max(const float* w, int64_t n);
int32_t row_argmax(const float* w, int64_t n);  // first maximum
double exp_sum(const float* w, int64_t n, float max);

// The tokens min_p, top_k and top_p keep on a processed row with maximum `max`: written to
// scratch.ids[0, n) ascending, n returned; -1 when nothing truncates (every finite logit is kept).
int64_t kept_tokens(const float* w, int64_t vocab, const SamplingParams& params, float max, Scratch& scratch);

// The random path on a processed row: min_p, top_k, top_p and the draw. -1 if every logit is -inf.
int32_t sample_random(const float* w, int64_t vocab, const SamplingParams& params, double u, Scratch& scratch);

// Smallest float f with f >= max + log(min_p) (in double): the min_p cut on float logits.
float min_p_threshold(float max, float min_p);

}  // namespace latentserve::engine::detail
