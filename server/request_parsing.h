// Reading requests from JSON: the prompt (token ids, text or chat messages) and the sampling
// parameters, with errors that name the field. Shared by every front end.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/request.h"
#include "engine/text/text_processor.h"

namespace latentserve::server {

struct ParseDefaults {
  float temperature = 1.0f;  // `generate` uses 0 (greedy), the documented offline default
  int64_t max_tokens = 16;
  // The chat API's form: "logprobs" is true/false and "top_logprobs" the count per token.
  bool chat_logprobs = false;
};

// Sampling parameters from a JSON object (OpenAI/vLLM field names). Unknown fields are ignored;
// a known field of the wrong type is an error naming it. Ranges are checked later by
// SamplingParams::validate.
Result<engine::SamplingParams> parse_sampling_params(const nlohmann::ordered_json& j,
                                                     const ParseDefaults& defaults);

// The prompt of a request: "prompt_token_ids" (ids), "prompt" (text, or ids) or "messages"
// (chat, with optional "tools" and "add_generation_prompt"). Text needs `text`.
Result<std::vector<int32_t>> parse_prompt(const nlohmann::ordered_json& j,
                                          const engine::text::TextProcessor* text);

}  // namespace latentserve::server
