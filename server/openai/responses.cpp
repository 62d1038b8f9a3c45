#include "server/openai/responses.h"

#include "server/openai/ids.h"

namespace latentserve::server::openai {

using json = nlohmann::ordered_json;

namespace {

json bytes_json(const engine::text::TextProcessor* text, int32_t id) {
  json bytes = json::array();
  if (!text) return bytes;
  for (unsigned char c : text->tokenizer().token_bytes(id)) bytes.push_back(int(c));
  return bytes;
}

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json chat_choice(const ParsedRequest& parsed, int32_t index, const engine::CollectedCompletion& c,
                 const engine::text::TextProcessor* text) {
  ChoiceParser parser(parsed.parse_reasoning, parsed.starts_in_reasoning, parsed.parse_tool_calls);
  ChoiceDelta d = parser.feed(c.text);
  ChoiceDelta rest = parser.finish();
  const std::string reasoning = d.reasoning + rest.reasoning;
  const std::string content = d.content + rest.content;
  const auto& calls = parser.tool_calls();
  json message = {{"role", "assistant"}};
  message["content"] = content.empty() && !calls.empty() ? json(nullptr) : json(content);
  if (!reasoning.empty()) message["reasoning_content"] = reasoning;
  if (!calls.empty()) message["tool_calls"] = tool_calls_json(calls);
  json choice = {{"index", index}, {"message", std::move(message)}};
  choice["logprobs"] = parsed.logprobs ? chat_logprobs_json(c.logprobs, text) : json(nullptr);
  choice["finish_reason"] = finish_reason_text(c.finish_reason, !calls.empty());
  return choice;
}

json completion_choice(const ParsedRequest& parsed, int32_t index, const engine::CollectedCompletion& c,
                       const engine::text::TextProcessor* text) {
  json choice = {{"index", index}, {"text", c.text}};
  int64_t offset = 0;
  choice["logprobs"] = parsed.logprobs ? completion_logprobs_json(c.logprobs, text, offset) : json(nullptr);
  choice["finish_reason"] = finish_reason_text(c.finish_reason, false);
  return choice;
}

}  // namespace

ResponseMeta new_response_meta(Endpoint endpoint, const std::string& model) {
  return ResponseMeta{(endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") + random_id(32), unix_seconds(), model};
}

std::string token_text(const engine::text::TextProcessor* text, int32_t id) {
  if (text && text->tokenizer().has_id(id)) {
    const int32_t ids[1] = {id};
    auto decoded = text->tokenizer().decode(ids, /*skip_special_tokens=*/false);
    if (decoded.ok()) return std::move(decoded).value();
  }
  return "token_id:" + std::to_string(id);
}

json usage_json(const engine::Usage& usage) {
  return json{{"prompt_tokens", usage.prompt_tokens},
              {"completion_tokens", usage.completion_tokens},
              {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}}};
}

json chat_logprobs_json(const std::vector<engine::TokenLogprobs>& logprobs, const engine::text::TextProcessor* text) {
  json content = json::array();
  for (const auto& lp : logprobs) {
    json top = json::array();
    for (const auto& t : lp.top) {
      top.push_back({{"token", token_text(text, t.token)}, {"logprob", t.logprob}, {"bytes", bytes_json(text, t.token)}});
    }
    content.push_back({{"token", token_text(text, lp.token)},
                       {"logprob", lp.logprob},
                       {"bytes", bytes_json(text, lp.token)},
                       {"top_logprobs", std::move(top)}});
  }
  return json{{"content", std::move(content)}};
}

json completion_logprobs_json(const std::vector<engine::TokenLogprobs>& logprobs,
                              const engine::text::TextProcessor* text, int64_t& offset) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(),
       text_offset = json::array();
  for (const auto& lp : logprobs) {
    const std::string token = token_text(text, lp.token);
    tokens.push_back(token);
    token_logprobs.push_back(lp.logprob);
    // vLLM's shape: the sampled token with the top ones, keyed by text.
    json top = json::object();
    top[token] = lp.logprob;
    for (const auto& t : lp.top) top[token_text(text, t.token)] = t.logprob;
    top_logprobs.push_back(std::move(top));
    text_offset.push_back(offset);
    offset += utf8_length(token);
  }
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top_logprobs)},
              {"text_offset", std::move(text_offset)}};
}

std::string finish_reason_text(engine::FinishReason reason, bool tool_calls) {
  switch (reason) {
    case engine::FinishReason::kStop: return tool_calls ? "tool_calls" : "stop";
    case engine::FinishReason::kLength: return "length";
    case engine::FinishReason::kAbort: return "abort";
    case engine::FinishReason::kError: return "error";
  }
  return "stop";
}

json tool_calls_json(const std::vector<ToolCall>& calls) {
  json out = json::array();
  for (const auto& c : calls) {
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

ApiResult<json> build_response(const ParsedRequest& parsed, const ResponseMeta& meta,
                               const engine::CollectedRequest& result, const engine::text::TextProcessor* text) {
  json choices = json::array();
  for (const auto& [index, c] : result.completions) {
    if (c.finish_reason == engine::FinishReason::kError) {
      return ApiError{500, "generation failed: " + c.error, "", ""};
    }
    choices.push_back(parsed.endpoint == Endpoint::kChat ? chat_choice(parsed, index, c, text)
                                                         : completion_choice(parsed, index, c, text));
  }
  json body = {{"id", meta.id},
               {"object", parsed.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
               {"created", meta.created},
               {"model", meta.model},
               {"choices", std::move(choices)},
               {"usage", usage_json(result.usage)}};
  return body;
}

}  // namespace latentserve::server::openai
