// SamplingParams: how one request wants its tokens chosen and when it stops, with the bounds
// that front ends enforce before a request reaches the engine. Semantics follow vLLM's
// SamplingParams (and the OpenAI API where the two agree); the few deviations are noted per field.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace latentserve::engine {

// Server-wide limits; validate() reports a request outside them.
struct SamplingLimits {
  // OpenAI's bound. vLLM accepts any temperature >= 0; a server may raise this.
  float max_temperature = 2.0f;
  int32_t max_n = 16;
  int32_t max_logprobs = 20;       // top_logprobs per token (OpenAI's bound; the sampler returns at most 20)
  int32_t max_stop_strings = 16;
};

struct SamplingParams {
  int64_t max_tokens = 16;          // vLLM's default; front ends usually set it
  int64_t min_tokens = 0;           // EOS and stop_token_ids are banned until this many tokens exist

  // 0 means greedy (argmax). Like vLLM, anything below kGreedyTemperature (sampler.h) is greedy
  // too, and greedy ignores top_k, top_p and min_p.
  float temperature = 1.0f;
  int32_t top_k = 0;                // 0 or -1: off; k >= vocabulary size is also off
  float top_p = 1.0f;               // (0, 1]; 1 is off
  float min_p = 0.0f;               // [0, 1]; 0 is off

  // presence/frequency apply to the tokens generated so far; repetition to prompt + generated
  // tokens (vLLM). 0, 0 and 1 are off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;

  // Added to the logit of each listed token before the penalties; validate() accepts OpenAI's
  // documented range [-100, 100].
  std::map<int32_t, float> logit_bias;

  // Same seed, same request: same tokens, whatever else is batched with it. Unset: a random
  // seed per sequence from a process-wide source.
  std::optional<int64_t> seed;
  int32_t n = 1;                    // completions per request

  // Unset: no logprobs. 0: the sampled token's logprob only. k: also the k most likely tokens.
  // Logprobs describe the raw model distribution (before bias, penalties, temperature and
  // truncation), vLLM's default "raw_logprobs".
  std::optional<int32_t> logprobs;

  std::vector<int32_t> stop_token_ids;
  std::vector<std::string> stop;    // matched on the detokenized text, outside the sampler
  bool ignore_eos = false;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  int32_t priority = 0;             // lower runs earlier (vLLM)

  // Checks every field; the message names the field, its allowed range and the value given.
  Status validate(int64_t vocab_size, const SamplingLimits& limits = {}) const;
};

}  // namespace latentserve::engine
