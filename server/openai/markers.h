// Helpers for finding markup (tool-call markers, <think> tags) in text that arrives in pieces:
// how much of a piece's end could still be the start of a marker and must be held back.
#pragma once

#include <algorithm>
#include <string_view>

namespace latentserve::server::openai {

// The length of the longest end of `text` that is a proper beginning of `marker`.
inline size_t partial_marker_suffix(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace latentserve::server::openai
