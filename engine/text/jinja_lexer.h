// Splits chat-template source into text and tag tokens the way Jinja2 does when Hugging Face sets
// it up (trim_blocks and lstrip_blocks on, trailing newline dropped, "-"/"+" whitespace control),
// so rendered whitespace matches the reference byte for byte.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace latentserve::engine::text::jinja {

enum class TokenType {
  Text,        // literal template text, already whitespace-controlled
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // value holds the unescaped contents
  Integer,
  Float,
  Operator,
  End,
};

struct Token {
  TokenType type;
  std::string value;
  int line = 1;
  int column = 1;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Tokenizes the whole template; errors name the line and column.
Result<std::vector<Token>> tokenize(const std::string& source, const LexOptions& options = {});

}  // namespace latentserve::engine::text::jinja
