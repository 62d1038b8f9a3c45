#include "server/openai/tool_call_parser.h"

#include "server/openai/ids.h"
#include "server/openai/markers.h"

namespace latentserve::server::openai {

namespace {
constexpr std::string_view kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kSep = "<｜tool▁sep｜>";
constexpr std::string_view kFenceOpen = "```json";

bool is_prefix_of(std::string_view text, std::string_view marker) {
  return text.size() < marker.size() && marker.substr(0, text.size()) == text;
}

bool starts_with(std::string_view text, std::string_view marker) {
  return text.substr(0, marker.size()) == marker;
}
}  // namespace

std::string random_tool_call_id() { return "call_" + random_id(24); }

ToolParse ToolCallParser::feed(std::string_view text) {
  ToolParse out;
  pending_.append(text);
  while (step(out)) {
  }
  return out;
}

ToolParse ToolCallParser::finish() {
  ToolParse out;
  if (state_ == State::kContent) out.content = std::move(pending_);
  pending_.clear();
  return out;
}

bool ToolCallParser::step(ToolParse& out) {
  switch (state_) {
    case State::kContent: return step_content(out);
    case State::kBetween: return step_between();
    case State::kHeader: return step_header(out);
    case State::kAfterSep: return step_after_sep(out);
    case State::kName: return step_name(out);
    case State::kFence: return step_fence();
    case State::kArgs: return step_args(out);
    case State::kDone: pending_.clear(); return false;  // text after the calls is dropped, as vLLM does
  }
  return false;
}

bool ToolCallParser::step_content(ToolParse& out) {
  const size_t calls = pending_.find(kCallsBegin);
  const size_t call = pending_.find(kCallBegin);
  const size_t at = std::min(calls, call);
  if (at == std::string::npos) {
    const size_t hold = std::max(partial_marker_suffix(pending_, kCallsBegin), partial_marker_suffix(pending_, kCallBegin));
    out.content += pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return false;
  }
  out.content += pending_.substr(0, at);
  // A call without the outer wrapper is accepted too.
  pending_.erase(0, at + (at == calls ? kCallsBegin.size() : 0));
  state_ = State::kBetween;
  return true;
}

bool ToolCallParser::step_between() {
  const size_t first = pending_.find_first_not_of(" \n\r\t");
  if (first == std::string::npos) {
    pending_.clear();
    return false;
  }
  pending_.erase(0, first);
  if (starts_with(pending_, kCallBegin)) {
    pending_.erase(0, kCallBegin.size());
    header_.clear();
    state_ = State::kHeader;
    return true;
  }
  if (starts_with(pending_, kCallsEnd)) {
    pending_.erase(0, kCallsEnd.size());
    state_ = State::kDone;
    return true;
  }
  if (is_prefix_of(pending_, kCallBegin) || is_prefix_of(pending_, kCallsEnd)) return false;
  // Stray text between calls: skip to the next marker-looking character.
  const size_t next = pending_.find('<', 1);
  pending_.erase(0, next == std::string::npos ? pending_.size() : next);
  return true;
}

bool ToolCallParser::step_header(ToolParse&) {
  const size_t sep = pending_.find(kSep);
  if (sep == std::string::npos) return false;
  header_ = std::string(trim(std::string_view(pending_).substr(0, sep)));
  pending_.erase(0, sep + kSep.size());
  state_ = State::kAfterSep;
  return true;
}

// V3 writes the type ("function") before the separator and the name after it; V3.1 writes the
// name before it and the JSON arguments after. A name never starts like JSON does.
bool ToolCallParser::step_after_sep(ToolParse& out) {
  const size_t first = pending_.find_first_not_of(" \n\r\t");
  if (first == std::string::npos) return false;
  const char c = pending_[first];
  if (header_ == "function" && c != '{' && c != '[') {
    state_ = State::kName;
    return true;
  }
  start_call(out, header_);
  fenced_ = false;
  state_ = State::kArgs;
  return true;
}

bool ToolCallParser::step_name(ToolParse& out) {
  const size_t nl = pending_.find('\n');
  const size_t fence = pending_.find("```");
  const size_t end = std::min(nl, fence);
  if (end == std::string::npos) return false;
  start_call(out, std::string(trim(std::string_view(pending_).substr(0, end))));
  pending_.erase(0, end);
  state_ = State::kFence;
  return true;
}

bool ToolCallParser::step_fence() {
  const size_t first = pending_.find_first_not_of(" \n\r\t");
  if (first == std::string::npos) return false;
  const std::string_view rest = std::string_view(pending_).substr(first);
  if (is_prefix_of(rest, kFenceOpen)) return false;
  fenced_ = true;
  if (starts_with(rest, kFenceOpen)) {
    // "```json" then its newline; wait for the character after it to know.
    if (rest.size() == kFenceOpen.size()) return false;
    size_t skip = first + kFenceOpen.size();
    if (pending_[skip] == '\n') ++skip;
    pending_.erase(0, skip);
  } else {
    pending_.erase(0, first);  // no fence: arguments follow the name directly
  }
  state_ = State::kArgs;
  return true;
}

bool ToolCallParser::step_args(ToolParse& out) {
  const size_t end = pending_.find(kCallEnd);
  std::string_view args = std::string_view(pending_).substr(0, end == std::string::npos ? pending_.size() : end);
  size_t keep = args.size();
  if (end == std::string::npos) keep -= partial_marker_suffix(args, kCallEnd);
  if (fenced_) {
    // The closing "\n```" is not part of the arguments; hold back what could still be it.
    while (keep > 0 && (is_space(args[keep - 1]) || args[keep - 1] == '`')) --keep;
  }
  if (end == std::string::npos) {
    // The fence and whitespace held back above go out once something follows them.
    if (keep > 0) {
      out.calls.push_back({index_, "", "", std::string(args.substr(0, keep))});
      current_.arguments += args.substr(0, keep);
      pending_.erase(0, keep);
    }
    return false;
  }
  if (keep > 0) {
    out.calls.push_back({index_, "", "", std::string(args.substr(0, keep))});
    current_.arguments += args.substr(0, keep);
  }
  pending_.erase(0, end + kCallEnd.size());
  completed_.push_back(std::move(current_));
  current_ = {};
  state_ = State::kBetween;
  return true;
}

void ToolCallParser::start_call(ToolParse& out, std::string name) {
  ++index_;
  current_ = ToolCall{random_tool_call_id(), std::move(name), ""};
  out.calls.push_back({index_, current_.id, current_.name, ""});
}

}  // namespace latentserve::server::openai
