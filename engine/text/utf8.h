// UTF-8 validation and lossy decoding shared by the tokenizer (input checks) and the decoders.
// Lossy decoding replaces each maximal invalid subpart with U+FFFD, the rule Rust's
// String::from_utf8_lossy (and so Hugging Face's decoders) follows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace latentserve::engine::text {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Byte offset of the first byte that does not start or continue a valid UTF-8 sequence,
// or text.size() when the whole text is valid.
size_t first_invalid_utf8(std::string_view text);

inline bool is_valid_utf8(std::string_view text) { return first_invalid_utf8(text) == text.size(); }

// Appends `bytes` to `out`, replacing every maximal invalid subpart by U+FFFD.
void append_utf8_lossy(std::string_view bytes, std::string& out);

std::string utf8_lossy(std::string_view bytes);

// Incremental form of append_utf8_lossy: bytes arrive in pieces, complete characters leave at
// once, an unfinished character waits. feed() then finish() over any split of a byte string
// yields exactly utf8_lossy() of the whole string.
class Utf8StreamDecoder {
 public:
  void feed(std::string_view bytes, std::string& out);
  // Emits U+FFFD for a character that never completed.
  void finish(std::string& out);
  size_t pending_size() const { return pending_len_; }

 private:
  void feed_byte(uint8_t byte, std::string& out);

  uint8_t pending_[4] = {};
  size_t pending_len_ = 0;
  size_t needed_ = 0;  // total length of the character being collected
};

}  // namespace latentserve::engine::text
