// Regular expressions for pre-tokenization, compiled once with PCRE2 (UTF, UCP, JIT).
// Patterns are written for Oniguruma (Hugging Face's engine); the few constructs whose meaning
// differs in PCRE2 are rewritten at compile time so both engines split text the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace latentserve::engine::text {

struct Span {
  uint32_t begin = 0;
  uint32_t end = 0;
};

class Regex {
 public:
  // `where` names the pattern's origin for error messages.
  static Result<Regex> compile(std::string_view pattern, const std::string& where);

  // Appends the successive non-overlapping leftmost matches in `text` (valid UTF-8) to `out`,
  // stepping over an empty match that directly follows a match as Oniguruma's iterator does.
  Status find_all(std::string_view text, std::vector<Span>& out) const;

  const std::string& pattern() const { return source_; }

 private:
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string source_;
};

// Rewrites Oniguruma-only meanings into PCRE2 syntax: `\s`/`\S` become Unicode White_Space
// classes (Oniguruma counts U+0085 as space, PCRE2 with UCP does not). Exposed for tests.
Result<std::string> oniguruma_to_pcre2(std::string_view pattern);

}  // namespace latentserve::engine::text
