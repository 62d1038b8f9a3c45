#include "engine/stop_checker.h"

#include <algorithm>

namespace latentserve::engine {

StopChecker::StopChecker(std::vector<std::string> stop_strings, bool include_stop_in_output)
    : stops_(std::move(stop_strings)), include_stop_(include_stop_in_output) {
  for (const auto& s : stops_) longest_ = std::max(longest_, s.size());
}

StopChecker::Step StopChecker::push(const std::string& delta) {
  Step step;
  if (stops_.empty()) {
    step.text = delta;
    return step;
  }
  pending_ += delta;
  // The earliest match wins; among matches at the same place, the longest.
  size_t best_pos = std::string::npos;
  const std::string* best = nullptr;
  for (const auto& s : stops_) {
    const size_t pos = pending_.find(s);
    if (pos == std::string::npos) continue;
    if (pos < best_pos || (pos == best_pos && s.size() > best->size())) {
      best_pos = pos;
      best = &s;
    }
  }
  if (best) {
    step.text = pending_.substr(0, include_stop_ ? best_pos + best->size() : best_pos);
    step.matched = *best;
    pending_.clear();
    return step;
  }
  // Emit all but the longest tail that is a prefix of some stop string.
  const size_t keep = holdback_length();
  step.text = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return step;
}

size_t StopChecker::holdback_length() const {
  const size_t max_tail = std::min(pending_.size(), longest_ > 0 ? longest_ - 1 : 0);
  for (size_t len = max_tail; len > 0; --len) {
    const std::string_view tail(pending_.data() + pending_.size() - len, len);
    for (const auto& s : stops_) {
      if (s.size() > len && std::string_view(s).substr(0, len) == tail) return len;
    }
  }
  return 0;
}

std::string StopChecker::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace latentserve::engine
