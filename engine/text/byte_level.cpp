#include "engine/text/byte_level.h"

#include <array>

namespace latentserve::engine::text {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // indexed by code point; the alphabet ends at U+0143

  Tables() {
    to_byte.fill(-1);
    // Printable Latin-1 bytes stand for themselves; the rest take U+0100 onwards in byte order.
    auto keeps_itself = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = keeps_itself(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      to_char[b] = c;
      to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    // The alphabet never reaches three-byte characters.
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace

char32_t byte_level_char(uint8_t byte) { return tables().to_char[byte]; }

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) append_utf8(tables().to_char[static_cast<uint8_t>(b)], out);
  return out;
}

bool byte_level_to_bytes(std::string_view token, std::string& out) {
  out.clear();
  const auto& t = tables();
  size_t i = 0;
  while (i < token.size()) {
    const auto b0 = static_cast<uint8_t>(token[i]);
    char32_t c;
    if (b0 < 0x80) {
      c = b0;
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < token.size()) {
      c = (static_cast<char32_t>(b0 & 0x1F) << 6) | (static_cast<uint8_t>(token[i + 1]) & 0x3F);
      i += 2;
    } else {
      return false;  // three- and four-byte characters are never in the alphabet
    }
    if (c >= t.to_byte.size() || t.to_byte[c] < 0) return false;
    out.push_back(static_cast<char>(t.to_byte[c]));
  }
  return true;
}

std::string byte_level_decode_token(std::string_view token) {
  std::string bytes;
  if (byte_level_to_bytes(token, bytes)) return bytes;
  return std::string(token);
}

}  // namespace latentserve::engine::text
