// OpenAI's response shapes, field for field: chat.completion and text_completion bodies, their
// logprobs and usage objects, and the chat.completion.chunk / text_completion chunks of a stream.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/collected.h"
#include "engine/output.h"
#include "engine/text/text_processor.h"
#include "server/openai/api_error.h"
#include "server/openai/choice_parser.h"
#include "server/openai/request.h"

namespace latentserve::server::openai {

struct ResponseMeta {
  std::string id;       // "chatcmpl-…" or "cmpl-…"
  int64_t created = 0;  // unix seconds
  std::string model;
};

ResponseMeta new_response_meta(Endpoint endpoint, const std::string& model);

// A token as text (one token decoded alone, lossy like Hugging Face), or "token_id:N" without a
// tokenizer, as vLLM writes tokens it cannot show.
std::string token_text(const engine::text::TextProcessor* text, int32_t id);

nlohmann::ordered_json usage_json(const engine::Usage& usage);

// {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}
nlohmann::ordered_json chat_logprobs_json(const std::vector<engine::TokenLogprobs>& logprobs,
                                          const engine::text::TextProcessor* text);

// {tokens, token_logprobs, top_logprobs, text_offset}; `offset` is where the first token's text
// starts in the completion (in characters) and is advanced past the last one.
nlohmann::ordered_json completion_logprobs_json(const std::vector<engine::TokenLogprobs>& logprobs,
                                                const engine::text::TextProcessor* text, int64_t& offset);

// "stop", "length", "tool_calls" ("abort" when the request was cancelled).
std::string finish_reason_text(engine::FinishReason reason, bool tool_calls);

// The whole non-streaming body, or a 500 when the engine failed a completion.
ApiResult<nlohmann::ordered_json> build_response(const ParsedRequest& parsed, const ResponseMeta& meta,
                                                 const engine::CollectedRequest& result,
                                                 const engine::text::TextProcessor* text);

// An assistant message {role, content, reasoning_content?, tool_calls?} from parsed text.
nlohmann::ordered_json tool_calls_json(const std::vector<ToolCall>& calls);

}  // namespace latentserve::server::openai
