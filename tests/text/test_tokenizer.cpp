// Golden tests: every fixture case encodes to the ids Hugging Face's library gives and decodes back.
#include <catch2/catch.hpp>

#include "tests/text/tokenizer_fixture.h"

namespace latentserve::engine::text {
namespace {

using testing::deepseek_tokenizer;
using testing::read_jsonl;

std::vector<int32_t> ids_of(const nlohmann::json& v) { return v.get<std::vector<int32_t>>(); }

TEST_CASE("encode_cases.jsonl: ids, split-special ids, plain ids and decode round trips", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const auto cases = read_jsonl("encode_cases.jsonl");
  REQUIRE(cases.size() == 63);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    const std::string text = c["text"];
    INFO("case " << name);
    auto ids = tok.encode(text, c["add_special_tokens"].get<bool>());
    REQUIRE(ids.ok());
    CHECK(*ids == ids_of(c["ids"]));
    auto decoded = tok.decode(*ids, false);
    REQUIRE(decoded.ok());
    if (c["decode_roundtrip"].get<bool>()) CHECK(*decoded == text);
    if (c.contains("ids_split_special")) {
      auto split = tok.encode(text, false, ParseSpecial::kNonSpecialOnly);
      REQUIRE(split.ok());
      CHECK(*split == ids_of(c["ids_split_special"]));
      CHECK(tok.decode(*split, false).value() == text);
    }
    if (c.contains("ids_no_parse_special")) {
      auto plain = tok.encode(text, false, /*parse_special=*/false);
      REQUIRE(plain.ok());
      CHECK(*plain == ids_of(c["ids_no_parse_special"]));
      CHECK(tok.decode(*plain, false).value() == text);
      // One segment without parse_special is the same thing.
      CHECK(tok.encode_segments({TextSegment{text, false}}, false).value() == ids_of(c["ids_no_parse_special"]));
    }
  }
}

TEST_CASE("chat_cases.jsonl: the rendered prompt encodes to the golden ids", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const auto cases = read_jsonl("chat_cases.jsonl");
  REQUIRE(cases.size() == 8);
  for (const auto& c : cases) {
    INFO("case " << c["name"].get<std::string>());
    const std::string text = c["text"];
    CHECK(tok.encode(text, false).value() == ids_of(c["ids"]));
    CHECK(tok.encode_segments({TextSegment{text, true}}, false).value() == ids_of(c["ids"]));
    if (c.contains("ids_content_as_plain_text")) {
      // Mark every message content inside the rendered text as plain.
      std::vector<TextSegment> segments;
      size_t at = 0;
      for (const auto& m : c["messages"]) {
        if (!m.contains("content") || !m["content"].is_string()) continue;
        const std::string content = m["content"];
        const size_t found = text.find(content, at);
        REQUIRE(found != std::string::npos);
        segments.push_back({text.substr(at, found - at), true});
        segments.push_back({content, false});
        at = found + content.size();
      }
      segments.push_back({text.substr(at), true});
      CHECK(tok.encode_segments(segments, false).value() == ids_of(c["ids_content_as_plain_text"]));
    }
  }
}

TEST_CASE("segments: plain text flows across segment boundaries", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const std::string text = "Hello world, this is 12345 tokens\n\n  of text<｜User｜>again";
  const size_t marker = text.find("<｜User｜>");
  for (size_t cut = 0; cut + 7 <= marker; cut += 3) {
    std::vector<TextSegment> segments{{text.substr(0, cut), true}, {text.substr(cut, 7), false}, {text.substr(cut + 7), true}};
    // Cutting inside a character is not valid UTF-8 per segment; skip those cuts.
    auto ids = tok.encode_segments(segments, false);
    if (!ids.ok()) continue;
    INFO("cut " << cut);
    CHECK(*ids == tok.encode(text, false).value());
  }
  // An added token inside a plain segment stays text; split across segments it is never matched.
  auto plain = tok.encode_segments({{"a", true}, {"<｜User｜>", false}, {"b", true}}, false).value();
  CHECK(std::find(plain.begin(), plain.end(), 128803) == plain.end());
  auto split = tok.encode_segments({{"<｜Us", true}, {"er｜>", true}}, false).value();
  CHECK(split == std::vector<int32_t>{128803});
}

TEST_CASE("metadata from tokenizer_config.json and lookups", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  CHECK(tok.vocab_size() == 128815);
  CHECK(tok.bos_id() == 0);
  CHECK(tok.eos_id() == 1);
  CHECK(tok.bos_token() == "<｜begin▁of▁sentence｜>");
  CHECK(tok.chat_template().find("<｜Assistant｜>") != std::string::npos);
  CHECK(tok.token_to_id("<｜User｜>") == 128803);
  CHECK(tok.token_to_id("Ġthe") == 270);
  CHECK(tok.id_to_token(270) == "Ġthe");
  CHECK(tok.token_bytes(270) == " the");
  CHECK(!tok.token_to_id("no such token").has_value());
  CHECK(tok.is_special(0));
  CHECK(tok.is_special(128805));
  CHECK(!tok.is_special(128803));
  CHECK(!tok.is_special(270));
  // LlamaTokenizerFast with add_bos_token: BOS in front, as Hugging Face transformers does.
  CHECK(tok.encode("Hi", true).value() == std::vector<int32_t>{0, 23166});
  CHECK(tok.encode("Hi", false).value() == std::vector<int32_t>{23166});
}

TEST_CASE("decode: skip_special_tokens drops only special tokens; bad ids are errors", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const std::vector<int32_t> ids{0, 128803, 23166, 128804, 1, 128805};
  CHECK(tok.decode(ids, true).value() == "<｜User｜>Hi<｜Assistant｜>");
  CHECK(tok.decode(ids, false).value() == "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><｜end▁of▁sentence｜><|EOT|>");
  for (int32_t bad : {-1, 128815, 129279, INT32_MAX}) {
    const std::vector<int32_t> with_bad{23166, bad};
    auto r = tok.decode(with_bad, false);
    REQUIRE(!r.ok());
    CHECK(r.error().message.find(std::to_string(bad)) != std::string::npos);
  }
}

TEST_CASE("encode: invalid UTF-8 is an error naming the byte offset", "[tokenizer]") {
  const Tokenizer& tok = deepseek_tokenizer();
  const std::string bad = std::string("héllo ") + "\xC3\x28" + " world";
  auto r = tok.encode(bad, false);
  REQUIRE(!r.ok());
  CHECK(r.error().message.find("byte offset 7") != std::string::npos);
  auto seg = tok.encode_segments({{"ok", true}, {"\xF0\x9F\x98", false}}, false);
  REQUIRE(!seg.ok());
  CHECK(seg.error().message.find("segment 1") != std::string::npos);
}

}  // namespace
}  // namespace latentserve::engine::text
