// Streaming detokenizer: on random id sequences (with tokens that split characters), every delta
// is valid UTF-8 and the deltas add up to decode() of all ids.
#include <random>

#include <catch2/catch.hpp>

#include "engine/text/byte_level.h"
#include "engine/text/detokenizer.h"
#include "engine/text/utf8.h"
#include "tests/text/tokenizer_fixture.h"

namespace latentserve::engine::text {
namespace {

using testing::deepseek_tokenizer;

// Ids of single-byte tokens for lead and continuation bytes, and of tokens whose bytes are not
// valid UTF-8 on their own (pieces of characters).
std::vector<int32_t> partial_character_ids(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (int b = 0x80; b <= 0xFF; ++b) {
    auto id = tok.token_to_id(bytes_to_byte_level(std::string(1, static_cast<char>(b))));
    REQUIRE(id.has_value());
    ids.push_back(*id);
  }
  for (int32_t id = 0; id < tok.vocab_size() && ids.size() < 2000; ++id) {
    if (tok.has_id(id) && !is_valid_utf8(tok.token_bytes(id))) ids.push_back(id);
  }
  return ids;
}

void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip) {
  Detokenizer detok(tok, skip);
  std::string streamed;
  for (int32_t id : ids) {
    auto delta = detok.push(id);
    REQUIRE(delta.ok());
    REQUIRE(is_valid_utf8(*delta));
    streamed += *delta;
  }
  const std::string tail = detok.flush();
  REQUIRE(is_valid_utf8(tail));
  streamed += tail;
  CHECK(streamed == tok.decode(ids, skip).value());
}

TEST_CASE("detokenizer: deltas are valid UTF-8 and add up to decode", "[detokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const auto partial = partial_character_ids(tok);
  const std::vector<int32_t> specials{0, 1, 2, 128000, 128803, 128804, 128805};
  std::mt19937 rng(2024);
  for (int t = 0; t < 400; ++t) {
    std::vector<int32_t> ids(rng() % 60);
    for (auto& id : ids) {
      const unsigned kind = rng() % 10;
      if (kind < 5) {
        id = partial[rng() % partial.size()];
      } else if (kind < 6) {
        id = specials[rng() % specials.size()];
      } else {
        do id = static_cast<int32_t>(rng() % tok.vocab_size()); while (!tok.has_id(id));
      }
    }
    check_stream(tok, ids, false);
    check_stream(tok, ids, true);
  }
}

TEST_CASE("detokenizer: a split emoji is held back, then emitted whole", "[detokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const std::string emoji = "\xF0\x9F\x98\x80";
  std::vector<int32_t> ids;
  for (char c : emoji) ids.push_back(*tok.token_to_id(bytes_to_byte_level(std::string(1, c))));
  Detokenizer detok(tok, false);
  CHECK(detok.push(ids[0]).value().empty());
  CHECK(detok.push(ids[1]).value().empty());
  CHECK(detok.push(ids[2]).value().empty());
  CHECK(detok.push(ids[3]).value() == emoji);
  // An unfinished character at the end comes out as U+FFFD.
  CHECK(detok.push(ids[0]).value().empty());
  CHECK(detok.flush() == kReplacementChar);
  // Unknown ids are errors and change nothing.
  CHECK(!detok.push(-5).ok());
  CHECK(!detok.push(tok.vocab_size()).ok());
}

}  // namespace
}  // namespace latentserve::engine::text
