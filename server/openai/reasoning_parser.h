// Splitting a chat completion's text into reasoning (R1-style `<think>...</think>`) and content,
// as it streams: tags may arrive split across deltas, so what could still be a tag is held back.
#pragma once

#include <string>
#include <string_view>

namespace latentserve::server::openai {

struct ReasoningSplit {
  std::string reasoning;
  std::string content;
};

class ReasoningParser {
 public:
  // starts_inside: the prompt already opened <think> (R1's and V3.1's thinking templates), so
  // the output begins as reasoning. Otherwise reasoning is only a <think> block at the start.
  explicit ReasoningParser(bool starts_inside) : starts_inside_(starts_inside) {}

  ReasoningSplit feed(std::string_view text);
  ReasoningSplit finish();  // releases what was held back

 private:
  enum class State { kStart, kInside, kContent };
  bool starts_inside_;
  State state_ = State::kStart;
  std::string pending_;
};

}  // namespace latentserve::server::openai
