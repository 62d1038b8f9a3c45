#include "engine/sampling_params.h"

#include <cmath>
#include <sstream>

namespace latentserve::engine {
namespace {

std::string show(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// Written as !(inside) so that NaN is rejected too.
Status check_closed(const char* name, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi)) {
    return make_error(std::string(name) + " must be in [" + show(lo) + ", " + show(hi) + "], got " +
                      show(value));
  }
  return ok_status();
}

Status check_token(const std::string& what, int64_t id, int64_t vocab_size) {
  if (id < 0 || id >= vocab_size) {
    return make_error(what + " = " + std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(vocab_size) + ")");
  }
  return ok_status();
}

Status validate_truncation(const SamplingParams& p, const SamplingLimits& limits) {
  LS_RETURN_IF_ERROR(check_closed("temperature", p.temperature, 0.0, limits.max_temperature));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return make_error("top_p must be in (0, 1], got " + show(p.top_p));
  }
  if (p.top_k < -1) {
    return make_error("top_k must be -1 or 0 (off) or at least 1, got " + std::to_string(p.top_k));
  }
  return check_closed("min_p", p.min_p, 0.0, 1.0);
}

Status validate_penalties(const SamplingParams& p, int64_t vocab_size) {
  LS_RETURN_IF_ERROR(check_closed("presence_penalty", p.presence_penalty, -2.0, 2.0));
  LS_RETURN_IF_ERROR(check_closed("frequency_penalty", p.frequency_penalty, -2.0, 2.0));
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= 2.0f)) {
    return make_error("repetition_penalty must be in (0, 2], got " + show(p.repetition_penalty));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    LS_RETURN_IF_ERROR(check_token("logit_bias key", id, vocab_size));
    if (!(bias >= -100.0f && bias <= 100.0f)) {  // OpenAI's documented range; NaN fails too
      return make_error("logit_bias[" + std::to_string(id) + "] must be a number in [-100, 100], got " +
                        show(bias));
    }
  }
  return ok_status();
}

Status validate_lengths_and_stops(const SamplingParams& p, int64_t vocab_size, const SamplingLimits& limits) {
  if (p.max_tokens < 1) {
    return make_error("max_tokens must be at least 1, got " + std::to_string(p.max_tokens));
  }
  if (p.min_tokens < 0 || p.min_tokens > p.max_tokens) {
    return make_error("min_tokens must be in [0, max_tokens = " + std::to_string(p.max_tokens) + "], got " +
                      std::to_string(p.min_tokens));
  }
  if (p.stop.size() > size_t(limits.max_stop_strings)) {
    return make_error("stop may hold at most " + std::to_string(limits.max_stop_strings) + " strings, got " +
                      std::to_string(p.stop.size()));
  }
  for (size_t i = 0; i < p.stop.size(); ++i) {
    if (p.stop[i].empty()) return make_error("stop[" + std::to_string(i) + "] must not be empty");
  }
  for (size_t i = 0; i < p.stop_token_ids.size(); ++i) {
    LS_RETURN_IF_ERROR(check_token("stop_token_ids[" + std::to_string(i) + "]", p.stop_token_ids[i], vocab_size));
  }
  return ok_status();
}

}  // namespace

Status SamplingParams::validate(int64_t vocab_size, const SamplingLimits& limits) const {
  if (vocab_size < 1) return make_error("vocabulary size must be at least 1, got " + std::to_string(vocab_size));
  LS_RETURN_IF_ERROR(validate_truncation(*this, limits));
  LS_RETURN_IF_ERROR(validate_penalties(*this, vocab_size));
  LS_RETURN_IF_ERROR(validate_lengths_and_stops(*this, vocab_size, limits));
  if (n < 1 || n > limits.max_n) {
    return make_error("n must be in [1, " + std::to_string(limits.max_n) + "], got " + std::to_string(n));
  }
  if (logprobs && (*logprobs < 0 || *logprobs > limits.max_logprobs)) {
    return make_error("logprobs must be in [0, " + std::to_string(limits.max_logprobs) + "], got " +
                      std::to_string(*logprobs));
  }
  return ok_status();
}

}  // namespace latentserve::engine
