// StopChecker: finds stop strings in a completion's text as it streams, including ones that span
// tokens, and holds back text that could still turn out to be the start of a stop string.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace latentserve::engine {

class StopChecker {
 public:
  StopChecker() = default;
  StopChecker(std::vector<std::string> stop_strings, bool include_stop_in_output);

  struct Step {
    std::string text;                    // safe to emit now
    std::optional<std::string> matched;  // the stop string found (the completion ends)
  };

  // Feeds a text delta. On a match, `text` ends just before the stop string (or after it with
  // include_stop_in_output) and whatever follows it is dropped.
  Step push(const std::string& delta);
  // Everything still held back (the completion ended for another reason).
  std::string flush();

 private:
  size_t holdback_length() const;

  std::vector<std::string> stops_;
  bool include_stop_ = false;
  size_t longest_ = 0;
  std::string pending_;  // text not yet emitted
};

}  // namespace latentserve::engine
