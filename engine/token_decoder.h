// TokenDecoder: the engine's view of a streaming detokenizer, so the engine core builds without
// the text layer (PCRE2). Front ends plug the real one in (engine/text/detokenizer.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace latentserve::engine {

class TokenDecoder {
 public:
  virtual ~TokenDecoder() = default;
  // The text `id` completes: always valid UTF-8, possibly empty (e.g. half a character).
  virtual std::string push(int32_t id) = 0;
  // What is still held back when the sequence ends.
  virtual std::string flush() = 0;
};

using TokenDecoderFactory = std::function<std::unique_ptr<TokenDecoder>(bool skip_special_tokens)>;

}  // namespace latentserve::engine
