// Loader checks on small hand-written tokenizer.json files: supported options work as in
// Hugging Face's library, unsupported or broken ones are errors that name the problem.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/text/byte_level.h"
#include "engine/text/tokenizer.h"

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

std::string byte_token(char c) { return bytes_to_byte_level(std::string(1, c)); }

// Byte tokens 0..255 plus "ab" (256), "abc" (257), "Ġa" (258), and three added tokens.
json small_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(static_cast<char>(b))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab[byte_token(' ') + "a"] = 258;
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                {"vocab", vocab}, {"merges", json::array({"a b", "ab c", byte_token(' ') + " a"})}};
  j["added_tokens"] = json::array({
      {{"id", 300}, {"content", "<s>"}, {"special", true}, {"normalized", false}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}},
      {{"id", 301}, {"content", "<m>"}, {"special", false}, {"normalized", true}, {"lstrip", true}, {"rstrip", true}, {"single_word", false}},
      {{"id", 302}, {"content", "<s>x"}, {"special", false}, {"normalized", true}, {"lstrip", false}, {"rstrip", false}, {"single_word", false}},
  });
  return j;
}

Result<Tokenizer> load(const json& j, const json& config = json()) {
  return Tokenizer::from_json(j.dump(), config.is_null() ? std::string() : config.dump());
}

std::string error_of(const json& j) {
  auto t = load(j);
  REQUIRE(!t.ok());
  return t.error().message;
}

std::vector<int32_t> bytes_ids(std::string_view s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

TEST_CASE("loader: merges in string and pair form give the same tokenizer", "[tokenizer][load]") {
  json j = small_tokenizer();
  auto a = load(j);
  REQUIRE(a.ok());
  j["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"}), json::array({byte_token(' '), "a"})});
  auto b = load(j);
  REQUIRE(b.ok());
  for (std::string text : {"abc abcd", "ab  a", "cab"}) {
    CHECK(a->encode(text, false).value() == b->encode(text, false).value());
  }
  CHECK(a->encode("abc", false).value() == std::vector<int32_t>{257});
  // Rank order: "a b" first, so " abc" never uses the "Ġ a" merge; " ab" neither, " a" does.
  CHECK(a->encode("x abc", false).value() == std::vector<int32_t>{'x', ' ', 257});
  CHECK(a->encode("x a", false).value() == std::vector<int32_t>{'x', 258});
  CHECK(a->vocab_size() == 303);
}

TEST_CASE("loader: ignore_merges takes whole words from the vocabulary", "[tokenizer][load]") {
  json j = small_tokenizer();
  j["model"]["merges"] = json::array({"a b"});
  CHECK(load(j)->encode("abc", false).value() == std::vector<int32_t>{256, 'c'});
  j["model"]["ignore_merges"] = true;
  CHECK(load(j)->encode("abc", false).value() == std::vector<int32_t>{257});
}

TEST_CASE("loader: added tokens with lstrip/rstrip, longest match and split_special", "[tokenizer][load]") {
  auto tok = load(small_tokenizer());
  REQUIRE(tok.ok());
  // lstrip/rstrip take the surrounding whitespace into the token.
  CHECK(tok->encode("q  <m>\t r", false).value() == std::vector<int32_t>{'q', 301, 'r'});
  // Tokens with normalized=false are matched first, so "<s>" wins over the longer "<s>x".
  CHECK(tok->encode("<s>x", false).value() == std::vector<int32_t>{300, 'x'});
  // With special tokens as plain text, the special "<s>" is still consumed by the matcher pass
  // that skips it, and then "<s>x" is found by the second pass.
  CHECK(tok->encode("<s>x", false, ParseSpecial::kNonSpecialOnly).value() == std::vector<int32_t>{302});
  CHECK(tok->encode("<s>", false, ParseSpecial::kNonSpecialOnly).value() == bytes_ids("<s>"));
  CHECK(tok->encode("<s>x", false, ParseSpecial::kNone).value() == bytes_ids("<s>x"));
  CHECK(tok->decode(std::vector<int32_t>{300, 301, 'a'}, true).value() == "<m>a");
}

TEST_CASE("loader: post-processing from TemplateProcessing or the Llama config flags", "[tokenizer][load]") {
  json j = small_tokenizer();
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                                 {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                         {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}, {"tokens", {"<s>"}}}}}}};
  CHECK(load(j)->encode("a", true).value() == std::vector<int32_t>{300, 'a'});
  CHECK(load(j)->encode("a", false).value() == std::vector<int32_t>{'a'});
  json config = {{"tokenizer_class", "LlamaTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", {{"content", "<m>"}}},
                 {"add_bos_token", false}, {"add_eos_token", true}, {"chat_template", "{{ x }}"}};
  auto tok = load(small_tokenizer(), config);
  REQUIRE(tok.ok());
  CHECK(tok->encode("a", true).value() == std::vector<int32_t>{'a', 301});
  CHECK(tok->bos_id() == 300);
  CHECK(tok->eos_id() == 301);
  CHECK(tok->chat_template() == "{{ x }}");
}

TEST_CASE("loader: broken or unsupported tokenizer.json is an error naming the problem", "[tokenizer][load]") {
  json j = small_tokenizer();
  j.erase("model");
  CHECK_THAT(error_of(j), Catch::Contains("missing 'model'"));

  j = small_tokenizer();
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Whitespace"}}})}};
  CHECK_THAT(error_of(j), Catch::Contains("Whitespace"));

  j = small_tokenizer();
  j["model"]["merges"] = json::array({"ab"});
  CHECK_THAT(error_of(j), Catch::Contains("merges[0]"));
  j["model"]["merges"] = json::array({"a b", "x zz"});
  CHECK_THAT(error_of(j), Catch::Contains("merges[1]"));
  CHECK_THAT(error_of(j), Catch::Contains("'zz'"));
  j["model"]["merges"] = json::array({json::array({"a"})});
  CHECK_THAT(error_of(j), Catch::Contains("merges[0]"));
  j["model"]["merges"] = json::array({"b c"});  // "bc" is not in the vocabulary
  CHECK_THAT(error_of(j), Catch::Contains("'bc'"));

  j = small_tokenizer();
  j["normalizer"] = {{"type", "NFC"}};
  CHECK_THAT(error_of(j), Catch::Contains("NFC"));
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "Lowercase"}}})}};
  CHECK_THAT(error_of(j), Catch::Contains("Lowercase"));

  j = small_tokenizer();
  j["model"]["byte_fallback"] = true;
  CHECK_THAT(error_of(j), Catch::Contains("byte_fallback"));
  j = small_tokenizer();
  j["model"]["dropout"] = 0.1;
  CHECK_THAT(error_of(j), Catch::Contains("dropout"));
  j = small_tokenizer();
  j["model"]["type"] = "WordPiece";
  CHECK_THAT(error_of(j), Catch::Contains("WordPiece"));
  j = small_tokenizer();
  j["model"]["vocab"].erase(byte_token('\x07'));
  CHECK_THAT(error_of(j), Catch::Contains("byte 7"));

  j = small_tokenizer();
  j["added_tokens"][1]["single_word"] = true;
  CHECK_THAT(error_of(j), Catch::Contains("single_word"));

  j = small_tokenizer();
  j["decoder"] = nullptr;
  CHECK_THAT(error_of(j), Catch::Contains("decoder"));
  j = small_tokenizer();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  CHECK_THAT(error_of(j), Catch::Contains("RobertaProcessing"));
  j = small_tokenizer();
  j["truncation"] = {{"max_length", 5}};
  CHECK_THAT(error_of(j), Catch::Contains("truncation"));
  j = small_tokenizer();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}, {"invert", false}};
  CHECK_THAT(error_of(j), Catch::Contains("does not compile"));
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Isolated"}, {"invert", false}};
  CHECK_THAT(error_of(j), Catch::Contains("ByteLevel"));  // no byte-level step

  auto bad_json = Tokenizer::from_json("{\"model\": ", "");
  REQUIRE(!bad_json.ok());
  CHECK_THAT(bad_json.error().message, Catch::Contains("parse"));
  auto missing = Tokenizer::load("/nonexistent/dir");
  REQUIRE(!missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/dir/tokenizer.json"));
  auto bad_config = load(small_tokenizer(), json{{"bos_token", "<nope>"}});
  REQUIRE(!bad_config.ok());
  CHECK_THAT(bad_config.error().message, Catch::Contains("<nope>"));
}

}  // namespace
}  // namespace latentserve::engine::text
