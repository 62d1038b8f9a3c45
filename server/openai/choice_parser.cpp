#include "server/openai/choice_parser.h"

namespace latentserve::server::openai {

ChoiceParser::ChoiceParser(bool parse_reasoning, bool starts_in_reasoning, bool parse_tool_calls) {
  if (parse_reasoning) reasoning_.emplace(starts_in_reasoning);
  if (parse_tool_calls) tools_.emplace();
}

void ChoiceParser::add_content(ChoiceDelta& out, std::string text) {
  if (!tools_) {
    out.content += text;
    return;
  }
  ToolParse parsed = tools_->feed(text);
  out.content += parsed.content;
  for (auto& c : parsed.calls) out.tool_calls.push_back(std::move(c));
}

ChoiceDelta ChoiceParser::feed(std::string_view text) {
  ChoiceDelta out;
  if (!reasoning_) {
    add_content(out, std::string(text));
    return out;
  }
  ReasoningSplit split = reasoning_->feed(text);
  out.reasoning = std::move(split.reasoning);
  if (!split.content.empty()) add_content(out, std::move(split.content));
  return out;
}

ChoiceDelta ChoiceParser::finish() {
  ChoiceDelta out;
  if (reasoning_) {
    ReasoningSplit split = reasoning_->finish();
    out.reasoning = std::move(split.reasoning);
    if (!split.content.empty()) add_content(out, std::move(split.content));
  }
  if (tools_) out.content += tools_->finish().content;
  return out;
}

const std::vector<ToolCall>& ChoiceParser::tool_calls() const {
  static const std::vector<ToolCall> kNone;
  return tools_ ? tools_->completed() : kNone;
}

}  // namespace latentserve::server::openai
