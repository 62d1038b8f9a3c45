// What one chat choice's generated text means, delta by delta: reasoning first (<think>), then
// tool-call markup in the content. Streaming and non-streaming responses both go through it, so
// the streamed deltas always add up to the non-streamed message.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/openai/reasoning_parser.h"
#include "server/openai/tool_call_parser.h"

namespace latentserve::server::openai {

struct ChoiceDelta {
  std::string reasoning;
  std::string content;
  std::vector<ToolCallDelta> tool_calls;
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class ChoiceParser {
 public:
  ChoiceParser(bool parse_reasoning, bool starts_in_reasoning, bool parse_tool_calls);

  ChoiceDelta feed(std::string_view text);
  ChoiceDelta finish();  // what was held back as possible markup

  const std::vector<ToolCall>& tool_calls() const;  // completed calls
  bool started_tool_calls() const { return tools_ && tools_->started_calls(); }

 private:
  void add_content(ChoiceDelta& out, std::string text);
  std::optional<ReasoningParser> reasoning_;
  std::optional<ToolCallParser> tools_;
};

}  // namespace latentserve::server::openai
