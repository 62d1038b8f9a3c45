// UTF-8 validation and lossy decoding against a plain code-point reference and Unicode's example.
#include <random>

#include <catch2/catch.hpp>

#include "engine/text/utf8.h"

namespace latentserve::engine::text {
namespace {

// Reference: decode one code point by the definition (no overlongs, no surrogates, <= U+10FFFF).
bool reference_valid(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string random_bytes(std::mt19937& rng, size_t n) {
  // Bias towards bytes that make near-valid sequences.
  static const uint8_t interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
                                        0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(static_cast<char>(rng() % 2 ? interesting[rng() % sizeof(interesting)] : rng() % 256));
  }
  return s;
}

TEST_CASE("utf8: validation agrees with the reference on random bytes", "[utf8]") {
  std::mt19937 rng(7);
  for (int t = 0; t < 20000; ++t) {
    const std::string s = random_bytes(rng, 1 + rng() % 13);
    INFO("bytes " << s.size());
    CHECK(is_valid_utf8(s) == reference_valid(s));
    const size_t bad = first_invalid_utf8(s);
    CHECK(reference_valid(s.substr(0, bad)));
  }
}

TEST_CASE("utf8: lossy decoding replaces maximal subparts (Unicode's example)", "[utf8]") {
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  const std::string r(kReplacementChar);
  CHECK(utf8_lossy(in) == "a" + r + r + r + "b" + r + "c" + r + r + "d");
  CHECK(utf8_lossy("\xED\xA0\x80") == r + r + r);  // surrogate: each byte on its own
  CHECK(utf8_lossy("\xF0\x9F\x98") == r);           // truncated emoji: one replacement
  CHECK(utf8_lossy("héllo") == "héllo");
}

TEST_CASE("utf8: streaming equals batch decoding under any split", "[utf8]") {
  std::mt19937 rng(11);
  for (int t = 0; t < 5000; ++t) {
    const std::string s = random_bytes(rng, rng() % 40);
    std::string streamed;
    Utf8StreamDecoder dec;
    size_t i = 0;
    while (i < s.size()) {
      const size_t n = 1 + rng() % 5;
      std::string delta;
      dec.feed(std::string_view(s).substr(i, n), delta);
      CHECK(is_valid_utf8(delta));
      streamed += delta;
      i += n;
    }
    std::string tail;
    dec.finish(tail);
    streamed += tail;
    const std::string batch = utf8_lossy(s);
    CHECK(streamed == batch);
    CHECK(is_valid_utf8(batch));
    if (reference_valid(s)) CHECK(batch == s);
  }
}

}  // namespace
}  // namespace latentserve::engine::text
