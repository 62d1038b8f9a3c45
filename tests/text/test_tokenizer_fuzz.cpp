// Randomised encode/decode with a fixed seed: random text (valid and invalid UTF-8, pieces of
// added tokens) and random ids never crash; valid text round-trips; invalid text is an error.
#include <random>

#include <catch2/catch.hpp>

#include "engine/text/utf8.h"
#include "tests/text/tokenizer_fixture.h"

namespace latentserve::engine::text {
namespace {

using testing::deepseek_tokenizer;

void append_code_point(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string random_text(std::mt19937& rng, const Tokenizer& tok, bool allow_invalid) {
  static const uint32_t ranges[][2] = {{0x20, 0x7E}, {0x09, 0x0D}, {0x30, 0x39}, {0x80, 0x24F}, {0x300, 0x36F},
                                       {0x4E00, 0x9FFF}, {0x3040, 0x30FF}, {0x0600, 0x06FF}, {0x2000, 0x206F},
                                       {0xE000, 0xE0FF}, {0xFFF0, 0xFFFF}, {0x1F300, 0x1FAFF}, {0x20000, 0x2A6DF},
                                       {0x85, 0x85}, {0xFEFF, 0xFEFF}, {0x3000, 0x3000}};
  const auto& added = tok.added_tokens().tokens();
  std::string s;
  const int parts = static_cast<int>(rng() % 12);
  for (int p = 0; p < parts; ++p) {
    const unsigned kind = rng() % 10;
    if (kind < 6) {
      const auto& r = ranges[rng() % std::size(ranges)];
      for (int n = static_cast<int>(1 + rng() % 8); n > 0; --n) {
        uint32_t cp = r[0] + rng() % (r[1] - r[0] + 1);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
        append_code_point(cp, s);
      }
    } else if (kind < 9) {
      // A whole added token, or a prefix/suffix of one cut at a character boundary or not.
      const std::string& c = added[rng() % added.size()].content;
      const unsigned how = rng() % 3;
      const size_t cut = rng() % (c.size() + 1);
      std::string piece = how == 0 ? c : how == 1 ? c.substr(0, cut) : c.substr(cut);
      if (!allow_invalid) piece = utf8_lossy(piece);
      s += piece;
    } else if (allow_invalid) {
      for (int n = static_cast<int>(1 + rng() % 3); n > 0; --n) s.push_back(static_cast<char>(rng() % 256));
    } else {
      s += "\r\n  \t";
    }
  }
  return s;
}

TEST_CASE("fuzz: valid text round-trips in every parse mode", "[tokenizer][fuzz]") {
  const Tokenizer& tok = deepseek_tokenizer();
  std::mt19937 rng(99);
  for (int t = 0; t < 1500; ++t) {
    const std::string text = random_text(rng, tok, false);
    INFO("text " << text);
    for (ParseSpecial mode : {ParseSpecial::kAll, ParseSpecial::kNonSpecialOnly, ParseSpecial::kNone}) {
      auto ids = tok.encode(text, false, mode);
      REQUIRE(ids.ok());
      CHECK(tok.decode(*ids, false).value() == text);
    }
  }
}

TEST_CASE("fuzz: invalid UTF-8 is an error at the right offset, never a crash", "[tokenizer][fuzz]") {
  const Tokenizer& tok = deepseek_tokenizer();
  std::mt19937 rng(123);
  int errors = 0;
  for (int t = 0; t < 3000; ++t) {
    const std::string text = random_text(rng, tok, true);
    auto ids = tok.encode(text, true);
    const size_t bad = first_invalid_utf8(text);
    if (bad == text.size()) {
      REQUIRE(ids.ok());
      REQUIRE(!ids->empty());
      CHECK(ids->front() == 0);  // add_special_tokens puts BOS first
      CHECK(tok.decode(*ids, false).value() == tok.bos_token() + text);
    } else {
      ++errors;
      REQUIRE(!ids.ok());
      CHECK(ids.error().message.find("byte offset " + std::to_string(bad)) != std::string::npos);
    }
  }
  CHECK(errors > 100);
}

TEST_CASE("fuzz: random ids decode to valid UTF-8 or a clear error", "[tokenizer][fuzz]") {
  const Tokenizer& tok = deepseek_tokenizer();
  std::mt19937 rng(5);
  for (int t = 0; t < 2000; ++t) {
    std::vector<int32_t> ids(rng() % 30);
    bool any_bad = false;
    for (auto& id : ids) {
      id = rng() % 50 == 0 ? static_cast<int32_t>(rng()) - (1 << 30) : static_cast<int32_t>(rng() % 129280);
      any_bad = any_bad || !tok.has_id(id);
    }
    auto text = tok.decode(ids, rng() % 2 == 0);
    REQUIRE(text.ok() == !any_bad);
    if (text.ok()) CHECK(is_valid_utf8(*text));
  }
}

}  // namespace
}  // namespace latentserve::engine::text
