// GPT-2's byte-level alphabet: every byte maps to one printable character, so a byte-level BPE
// vocabulary is written as text. Converts between that written form and the raw bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace latentserve::engine::text {

// The character (code point) that stands for `byte` in a byte-level vocabulary.
char32_t byte_level_char(uint8_t byte);

// Writes raw bytes in the byte-level alphabet (UTF-8), as vocabulary entries are written.
std::string bytes_to_byte_level(std::string_view bytes);

// Reads a token written in the byte-level alphabet back into raw bytes. Returns false (and
// leaves `out` unspecified) when a character is outside the alphabet.
bool byte_level_to_bytes(std::string_view token, std::string& out);

// Hugging Face's ByteLevel decoder rule for one token: its bytes when every character is in the
// alphabet, otherwise the token's own UTF-8 text (how added tokens such as "<｜User｜>" decode).
std::string byte_level_decode_token(std::string_view token);

}  // namespace latentserve::engine::text
