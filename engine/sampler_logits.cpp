// Logit processing shared by the fast sampler and its reference, plus the row helpers.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/sampler_internal.h"

namespace latentserve::engine::detail {

Scratch& thread_scratch(int64_t vocab) {
  thread_local Scratch scratch;
  const auto n = size_t(vocab);
  if (scratch.logits.size() < n) {
    scratch.logits.resize(n);
    scratch.exps.resize(n);
    scratch.values.resize(n);
    scratch.ids.resize(n);
    scratch.weights.resize(n);
  }
  return scratch;
}

LogitTransform::LogitTransform(const SamplingParams& params, const SamplerState& state,
                               int64_t num_output_tokens, std::span<const int32_t> eos_ids)
    : params_(params),
      state_(state),
      eos_ids_(params.ignore_eos ? std::span<const int32_t>() : eos_ids),
      greedy_(params.temperature < kGreedyTemperature),
      ban_stops_(num_output_tokens < params.min_tokens),
      repetition_(params.repetition_penalty != 1.0f && !state.seen_tokens().empty()),
      counts_((params.presence_penalty != 0.0f || params.frequency_penalty != 0.0f) &&
              !state.output_counts().empty()) {}

bool LogitTransform::touches_any() const {
  return !params_.logit_bias.empty() || repetition_ || counts_ ||
         (ban_stops_ && (!eos_ids_.empty() || !params_.stop_token_ids.empty()));
}

bool LogitTransform::banned(int32_t token) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end() ||
         std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), token) !=
             params_.stop_token_ids.end();
}

float LogitTransform::apply(float raw, int32_t token) const {
  float x = raw;
  if (!params_.logit_bias.empty()) {
    const auto it = params_.logit_bias.find(token);
    if (it != params_.logit_bias.end()) x += std::clamp(it->second, -100.0f, 100.0f);
  }
  if (ban_stops_ && banned(token)) x = -std::numeric_limits<float>::infinity();
  if (repetition_ && state_.seen_tokens().count(token) != 0) {
    x = x > 0.0f ? x / params_.repetition_penalty : x * params_.repetition_penalty;
  }
  if (counts_) {
    const auto it = state_.output_counts().find(token);
    if (it != state_.output_counts().end()) {
      x -= params_.frequency_penalty * float(it->second);
      x -= params_.presence_penalty;
    }
  }
  if (!greedy_) x = x / params_.temperature;
  return x;
}

const float* processed_row(const float* raw, int64_t vocab, const LogitTransform& transform, Scratch& scratch) {
  const bool touched = transform.touches_any();
  if (!touched && !transform.scales()) return raw;
  float* w = scratch.logits.data();
  if (transform.scales()) {
    // The same expression apply() ends with, so untouched tokens match it bit for bit.
    const float temperature = transform.temperature();
    for (int64_t i = 0; i < vocab; ++i) w[i] = raw[i] / temperature;
  } else {
    std::memcpy(w, raw, size_t(vocab) * sizeof(float));
  }
  if (touched) {
    // Recomputed from the raw logit, so a token listed twice gets the same value.
    transform.for_each_touched([&](int32_t id) {
      if (id >= 0 && id < vocab) w[id] = transform.apply(raw[id], id);
    });
  }
  return w;
}

float row_max(const float* w, int64_t n) {
  float lanes[8];
  for (float& l : lanes) l = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lanes[j] = w[i + j] > lanes[j] ? w[i + j] : lanes[j];
  }
  for (; i < n; ++i) lanes[0] = w[i] > lanes[0] ? w[i] : lanes[0];
  float m = lanes[0];
  for (float l : lanes) m = l > m ? l : m;
  return m;
}

int32_t row_argmax(const float* w, int64_t n) {
  const float m = row_max(w, n);
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] == m) return int32_t(i);
  }
  return 0;  // every logit is NaN
}

double exp_sum(const float* w, int64_t n, float max) {
  double lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) lanes[j] += double(exp_nonpositive(w[i + j] - max));
  }
  for (; i < n; ++i) lanes[0] += double(exp_nonpositive(w[i] - max));
  double sum = 0;
  for (double l : lanes) sum += l;
  return sum;
}

float min_p_threshold(float max, float min_p) {
  const double cut = double(max) + std::log(double(min_p));
  float f = float(cut);
  if (double(f) < cut) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

}  // namespace latentserve::engine::detail
