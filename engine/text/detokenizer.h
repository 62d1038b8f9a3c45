// Streaming detokenizer: turns the ids of one sequence, as they are generated, into text deltas
// that are always valid UTF-8. A character split across tokens is held back until complete.
// The deltas plus flush() add up to Tokenizer::decode of all ids with the same option.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "engine/text/tokenizer.h"
#include "engine/text/utf8.h"

namespace latentserve::engine::text {

class Detokenizer {
 public:
  // `tokenizer` must outlive the detokenizer.
  Detokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

  // The text that `id` completes (possibly empty). An id with no token is an error and
  // leaves the state unchanged.
  Result<std::string> push(int32_t id);
  // Ends the sequence: a character that never completed comes out as U+FFFD.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  Utf8StreamDecoder decoder_;
};

}  // namespace latentserve::engine::text
