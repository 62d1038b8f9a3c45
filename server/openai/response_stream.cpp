#include "server/openai/response_stream.h"

namespace latentserve::server::openai {

using json = nlohmann::ordered_json;

namespace {

// Consecutive deltas of one call go out as one entry.
json tool_call_deltas_json(const std::vector<ToolCallDelta>& deltas) {
  json out = json::array();
  for (const auto& d : deltas) {
    if (!out.empty() && out.back()["index"] == d.index && d.id.empty()) {
      auto& args = out.back()["function"]["arguments"];
      args = args.get<std::string>() + d.arguments;
      continue;
    }
    json entry = {{"index", d.index}};
    if (!d.id.empty()) {
      entry["id"] = d.id;
      entry["type"] = "function";
      entry["function"] = {{"name", d.name}, {"arguments", d.arguments}};
    } else {
      entry["function"] = {{"arguments", d.arguments}};
    }
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

ResponseStream::ResponseStream(const ParsedRequest& parsed, ResponseMeta meta,
                               std::shared_ptr<const engine::text::TextProcessor> text)
    : parsed_(parsed), meta_(std::move(meta)), text_(std::move(text)) {
  parsed_.request.prompt_token_ids.clear();
}

json ResponseStream::chunk(json choices) const {
  json c = {{"id", meta_.id},
            {"object", parsed_.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
            {"created", meta_.created},
            {"model", meta_.model},
            {"choices", std::move(choices)}};
  if (parsed_.include_usage) c["usage"] = nullptr;
  return c;
}

ResponseStream::Choice& ResponseStream::choice(int32_t index, std::vector<std::string>& events) {
  auto it = choices_.find(index);
  if (it != choices_.end()) return it->second;
  Choice& c = choices_[index];
  c.parser = std::make_unique<ChoiceParser>(parsed_.parse_reasoning, parsed_.starts_in_reasoning,
                                            parsed_.parse_tool_calls);
  if (parsed_.endpoint == Endpoint::kChat) {
    json first = {{"index", index},
                  {"delta", {{"role", "assistant"}, {"content", ""}}},
                  {"logprobs", nullptr},
                  {"finish_reason", nullptr}};
    events.push_back(dump(chunk(json::array({std::move(first)}))));
  }
  return c;
}

json ResponseStream::chat_delta(const ChoiceDelta& d) const {
  json delta = json::object();
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) delta["tool_calls"] = tool_call_deltas_json(d.tool_calls);
  return delta;
}

void ResponseStream::chat_output(const engine::Output& out, Choice& c, std::vector<std::string>& events) {
  ChoiceDelta d = c.parser->feed(out.text);
  if (out.finish_reason) {
    ChoiceDelta rest = c.parser->finish();
    d.reasoning += rest.reasoning;
    d.content += rest.content;
    for (auto& t : rest.tool_calls) d.tool_calls.push_back(std::move(t));
  }
  const bool with_logprobs = parsed_.logprobs && !out.logprobs.empty();
  if (!d.empty() || with_logprobs) {
    json entry = {{"index", out.index}, {"delta", chat_delta(d)}};
    entry["logprobs"] = with_logprobs ? chat_logprobs_json(out.logprobs, text_.get()) : json(nullptr);
    entry["finish_reason"] = nullptr;
    events.push_back(dump(chunk(json::array({std::move(entry)}))));
  }
  if (out.finish_reason) {
    const bool calls = !c.parser->tool_calls().empty();
    json last = {{"index", out.index},
                 {"delta", json::object()},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason_text(*out.finish_reason, calls)}};
    events.push_back(dump(chunk(json::array({std::move(last)}))));
  }
}

void ResponseStream::completion_output(const engine::Output& out, Choice& c, std::vector<std::string>& events) {
  const bool with_logprobs = parsed_.logprobs && !out.logprobs.empty();
  if (!out.text.empty() || with_logprobs) {
    json entry = {{"index", out.index}, {"text", out.text}};
    entry["logprobs"] = with_logprobs ? completion_logprobs_json(out.logprobs, text_.get(), c.text_offset) : json(nullptr);
    entry["finish_reason"] = nullptr;
    events.push_back(dump(chunk(json::array({std::move(entry)}))));
  }
  if (out.finish_reason) {
    json last = {{"index", out.index}, {"text", ""}, {"logprobs", nullptr},
                 {"finish_reason", finish_reason_text(*out.finish_reason, false)}};
    events.push_back(dump(chunk(json::array({std::move(last)}))));
  }
}

std::vector<std::string> ResponseStream::on_output(const engine::Output& out) {
  std::vector<std::string> events;
  if (done_) return events;
  if (out.finish_reason == engine::FinishReason::kError) {
    // Errors mid-stream: an error event, then [DONE], as vLLM does.
    events.push_back(dump(error_json(ApiError{500, "generation failed: " + out.error, "", ""})));
    events.push_back("[DONE]");
    done_ = true;
    return events;
  }
  Choice& c = choice(out.index, events);
  if (parsed_.endpoint == Endpoint::kChat) {
    chat_output(out, c, events);
  } else {
    completion_output(out, c, events);
  }
  if (out.request_finished) {
    if (parsed_.include_usage) {
      json usage = chunk(json::array());
      usage["usage"] = usage_json(out.usage);
      events.push_back(dump(usage));
    }
    events.push_back("[DONE]");
    done_ = true;
  }
  return events;
}

}  // namespace latentserve::server::openai
