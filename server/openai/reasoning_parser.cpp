#include "server/openai/reasoning_parser.h"

#include "server/openai/markers.h"

namespace latentserve::server::openai {

namespace {
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
}  // namespace

ReasoningSplit ReasoningParser::feed(std::string_view text) {
  ReasoningSplit out;
  pending_.append(text);
  if (state_ == State::kStart) {
    const size_t first = pending_.find_first_not_of(" \n\r\t");
    if (first == std::string::npos) return out;  // only whitespace so far
    const std::string_view rest = std::string_view(pending_).substr(first);
    if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return out;  // maybe "<thi"
    if (rest.substr(0, kOpen.size()) == kOpen) {
      pending_.erase(0, first + kOpen.size());
      state_ = State::kInside;
    } else {
      state_ = starts_inside_ ? State::kInside : State::kContent;
    }
  }
  if (state_ == State::kInside) {
    const size_t close = pending_.find(kClose);
    if (close == std::string::npos) {
      const size_t hold = partial_marker_suffix(pending_, kClose);
      out.reasoning = pending_.substr(0, pending_.size() - hold);
      pending_.erase(0, pending_.size() - hold);
      return out;
    }
    out.reasoning = pending_.substr(0, close);
    pending_.erase(0, close + kClose.size());
    state_ = State::kContent;
  }
  out.content = std::move(pending_);
  pending_.clear();
  return out;
}

ReasoningSplit ReasoningParser::finish() {
  ReasoningSplit out;
  const bool reasoning = state_ == State::kInside || (state_ == State::kStart && starts_inside_);
  (reasoning ? out.reasoning : out.content) = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace latentserve::server::openai
