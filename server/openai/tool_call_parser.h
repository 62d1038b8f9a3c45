// Parsing DeepSeek's tool-call markup out of generated text, incrementally, into OpenAI tool
// calls. Two forms, as vLLM's deepseek_v3 and deepseek_v31 parsers read them:
//   V3:   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
//   V3.1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace latentserve::server::openai {

struct ToolCall {
  std::string id;         // "call_<random>"
  std::string name;
  std::string arguments;  // the model's JSON text, verbatim
};

// One piece of a streamed call: the first carries id and name, later ones argument fragments.
struct ToolCallDelta {
  int index = 0;
  std::string id;
  std::string name;
  std::string arguments;
};

struct ToolParse {
  std::string content;  // text outside the markup
  std::vector<ToolCallDelta> calls;
};

class ToolCallParser {
 public:
  ToolParse feed(std::string_view text);
  ToolParse finish();  // releases content held back as a possible marker

  // Calls whose end marker has been seen (the non-streaming result); a call cut off by
  // max_tokens is not among them.
  const std::vector<ToolCall>& completed() const { return completed_; }
  // Deltas of calls started so far (concatenated arguments of each).
  bool started_calls() const { return index_ >= 0; }

 private:
  enum class State { kContent, kBetween, kHeader, kAfterSep, kName, kFence, kArgs, kDone };
  bool step(ToolParse& out);  // false when more text is needed
  bool step_content(ToolParse& out);
  bool step_between();
  bool step_header(ToolParse& out);
  bool step_after_sep(ToolParse& out);
  bool step_name(ToolParse& out);
  bool step_fence();
  bool step_args(ToolParse& out);
  void start_call(ToolParse& out, std::string name);

  State state_ = State::kContent;
  std::string pending_;
  std::string header_;
  bool fenced_ = false;  // V3 form: arguments sit in a ```json fence
  int index_ = -1;
  ToolCall current_;
  std::vector<ToolCall> completed_;
};

std::string random_tool_call_id();

}  // namespace latentserve::server::openai
