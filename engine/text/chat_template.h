// Chat templates: turns an OpenAI-style list of messages into the prompt text a model expects,
// by running the model's Jinja chat template the way Hugging Face does. The output is split into
// segments that say which text came from the request (message content, tool calls, tool
// definitions), so the tokenizer can match control tokens only in text the template wrote.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/text/jinja_interpreter.h"

namespace latentserve::engine::text {

struct ChatRequest {
  // OpenAI chat format: [{role, content, tool_calls, tool_call_id, name, ...}]. Ordered, because
  // Python keeps keys in input order and `tojson` output depends on it.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // Function definitions, or null (the template then sees `tools` defined as none).
  nlohmann::ordered_json tools = nullptr;
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  std::string pad_token;
  // More template variables (e.g. {"thinking": true}); an object or null. Their strings are
  // treated as trusted template input, not as request text.
  nlohmann::ordered_json extra = nullptr;
};

struct Segment {
  std::string text;
  bool from_input = false;  // true: came from messages or tools, so it is plain text to the tokenizer
};

struct RenderedPrompt {
  std::string text;
  std::vector<Segment> segments;  // concatenated they give `text`; neighbours differ in from_input
};

class ChatTemplate {
 public:
  // Parses once; a template using syntax, filters or tests we do not support fails here.
  static Result<ChatTemplate> parse(std::string source);

  Result<RenderedPrompt> render(const ChatRequest& request) const;

  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  jinja::Template template_;
  jinja::RenderLimits limits_;
};

// Checks the messages and brings them to the form templates expect: content as a string or
// null (text parts joined with "\n", as vLLM does), tool-call arguments as JSON strings.
Result<nlohmann::ordered_json> normalize_messages(const nlohmann::ordered_json& messages);

}  // namespace latentserve::engine::text
