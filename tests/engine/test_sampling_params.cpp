// SamplingParams::validate: defaults pass, and every bound is enforced with a message naming the field.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>

#include "engine/sampling_params.h"

using latentserve::engine::SamplingLimits;
using latentserve::engine::SamplingParams;

namespace {

constexpr int64_t kVocab = 1000;

// The error message of validate() after `edit`, or "" when it passes.
std::string error_after(const std::function<void(SamplingParams&)>& edit, const SamplingLimits& limits = {}) {
  SamplingParams p;
  edit(p);
  const auto status = p.validate(kVocab, limits);
  return status.ok() ? std::string() : status.error().message;
}

}  // namespace

TEST_CASE("default and edge-of-range sampling params are valid", "[engine][sampling_params]") {
  CHECK(error_after([](SamplingParams&) {}).empty());
  CHECK(error_after([](SamplingParams& p) {
          p.temperature = 0.0f;
          p.top_k = -1;
          p.top_p = 1.0f;
          p.min_p = 1.0f;
          p.presence_penalty = -2.0f;
          p.frequency_penalty = 2.0f;
          p.repetition_penalty = 2.0f;
          p.logit_bias = {{0, -100.0f}, {kVocab - 1, 100.0f}};  // OpenAI's range, ends included
          p.n = 16;
          p.logprobs = 20;
          p.max_tokens = 5;
          p.min_tokens = 5;
          p.stop = std::vector<std::string>(16, "x");
          p.stop_token_ids = {0, kVocab - 1};
        }).empty());
  CHECK(error_after([](SamplingParams& p) { p.top_k = 0; }).empty());
  CHECK(error_after([](SamplingParams& p) { p.top_k = 5 * kVocab; }).empty());
}

TEST_CASE("invalid sampling params name the field and its range", "[engine][sampling_params]") {
  const float nan = std::nanf("");
  struct Case {
    std::function<void(SamplingParams&)> edit;
    std::string expected;
  };
  const Case cases[] = {
      {[](SamplingParams& p) { p.temperature = -0.1f; }, "temperature must be in [0, 2], got -0.1"},
      {[](SamplingParams& p) { p.temperature = 2.5f; }, "temperature must be in [0, 2], got 2.5"},
      {[&](SamplingParams& p) { p.temperature = nan; }, "temperature must be in [0, 2], got nan"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "top_p must be in (0, 1], got 0"},
      {[](SamplingParams& p) { p.top_p = 1.5f; }, "top_p must be in (0, 1], got 1.5"},
      {[](SamplingParams& p) { p.top_k = -2; }, "top_k must be -1 or 0 (off) or at least 1, got -2"},
      {[](SamplingParams& p) { p.min_p = 1.25f; }, "min_p must be in [0, 1], got 1.25"},
      {[](SamplingParams& p) { p.presence_penalty = 2.5f; }, "presence_penalty must be in [-2, 2], got 2.5"},
      {[](SamplingParams& p) { p.frequency_penalty = -3.0f; }, "frequency_penalty must be in [-2, 2], got -3"},
      {[](SamplingParams& p) { p.repetition_penalty = 0.0f; }, "repetition_penalty must be in (0, 2], got 0"},
      {[](SamplingParams& p) { p.repetition_penalty = 2.5f; }, "repetition_penalty must be in (0, 2], got 2.5"},
      {[](SamplingParams& p) { p.logit_bias[kVocab] = 1.0f; },
       "logit_bias key = 1000 is outside the vocabulary [0, 1000)"},
      {[](SamplingParams& p) { p.logit_bias[-1] = 1.0f; }, "logit_bias key = -1 is outside the vocabulary [0, 1000)"},
      {[&](SamplingParams& p) { p.logit_bias[3] = nan; }, "logit_bias[3] must be a number in [-100, 100], got nan"},
      {[&](SamplingParams& p) { p.logit_bias[3] = 100.5f; }, "logit_bias[3] must be a number in [-100, 100], got 100.5"},
      {[](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens must be at least 1, got 0"},
      {[](SamplingParams& p) { p.min_tokens = 17; }, "min_tokens must be in [0, max_tokens = 16], got 17"},
      {[](SamplingParams& p) { p.min_tokens = -1; }, "min_tokens must be in [0, max_tokens = 16], got -1"},
      {[](SamplingParams& p) { p.stop = std::vector<std::string>(17, "x"); },
       "stop may hold at most 16 strings, got 17"},
      {[](SamplingParams& p) { p.stop = {"a", ""}; }, "stop[1] must not be empty"},
      {[](SamplingParams& p) { p.stop_token_ids = {1, 2000}; },
       "stop_token_ids[1] = 2000 is outside the vocabulary [0, 1000)"},
      {[](SamplingParams& p) { p.n = 0; }, "n must be in [1, 16], got 0"},
      {[](SamplingParams& p) { p.n = 17; }, "n must be in [1, 16], got 17"},
      {[](SamplingParams& p) { p.logprobs = 21; }, "logprobs must be in [0, 20], got 21"},
      {[](SamplingParams& p) { p.logprobs = -1; }, "logprobs must be in [0, 20], got -1"},
  };
  for (const Case& c : cases) {
    CHECK(error_after(c.edit) == c.expected);
  }
}

TEST_CASE("sampling limits are the server's to set", "[engine][sampling_params]") {
  SamplingLimits limits;
  limits.max_temperature = 5.0f;
  limits.max_n = 4;
  CHECK(error_after([](SamplingParams& p) { p.temperature = 4.0f; }, limits).empty());
  CHECK(error_after([](SamplingParams& p) { p.n = 5; }, limits) == "n must be in [1, 4], got 5");
  SamplingParams p;
  CHECK(p.validate(0).error().message == "vocabulary size must be at least 1, got 0");
}
