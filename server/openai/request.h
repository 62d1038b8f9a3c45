// Reading and checking POST /v1/chat/completions and /v1/completions bodies: every field of
// OpenAI's API (plus vLLM's extensions) into an engine::Request, with 400/404/429 errors that
// name the field, all before the engine allocates anything. Shared by HTTP and the batch format.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/request.h"
#include "server/openai/api_error.h"
#include "server/serving_context.h"

namespace latentserve::server::openai {

enum class Endpoint { kChat, kCompletion };

struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  engine::Request request;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool logprobs = false;          // chat: "logprobs": true; completions: "logprobs" given
  bool parse_tool_calls = false;  // tools given and tool_choice is not "none"
  bool parse_reasoning = false;   // look for <think>...</think>
  bool starts_in_reasoning = false;  // the prompt opened <think>: the output begins inside it
  std::string prompt_param;       // "messages" or "prompt", for errors about the prompt
};

// Parses a body already read as JSON. Checks the model name (404), types (400 naming the
// field), the prompt (tokenized here) and max_tokens (defaulting to what the context leaves).
ApiResult<ParsedRequest> parse_request(Endpoint endpoint, const nlohmann::ordered_json& body,
                                       const ServingContext& ctx);
// The same from the HTTP body text: malformed JSON or invalid UTF-8 is a 400.
ApiResult<ParsedRequest> parse_request(Endpoint endpoint, const std::string& body,
                                       const ServingContext& ctx);

// The engine's own checks (ranges, vocabulary, context length, cache size) as 400s, then the
// waiting queue's bound (429). Nothing is queued.
ApiResult<bool> check_admission(const ParsedRequest& parsed, const ServingContext& ctx);

// The field a request_parsing error message names (it starts with "\"field\""), or "".
std::string param_of(const std::string& message);

}  // namespace latentserve::server::openai
