// Split behaviors and regex semantics of the pre-tokenizer, against Hugging Face's documented
// examples and Oniguruma's meaning of \s.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/text/pre_tokenizer.h"
#include "engine/text/regex.h"

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

std::vector<std::string> split(const json& spec, std::string_view text) {
  auto pre = PreTokenizer::from_json(spec);
  REQUIRE(pre.ok());
  PreTokenizeScratch scratch;
  std::vector<std::string_view> pieces;
  REQUIRE(pre->split(text, scratch, pieces).ok());
  return {pieces.begin(), pieces.end()};
}

json split_spec(json pattern, const char* behavior, bool invert = false) {
  return {{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
}

using V = std::vector<std::string>;

TEST_CASE("pre_tokenizer: split behaviors (Hugging Face's the-final--countdown example)", "[pre_tokenizer]") {
  const json dash = {{"String", "-"}};
  const std::string text = "the-final--countdown";
  CHECK(split(split_spec(dash, "Removed"), text) == V{"the", "final", "countdown"});
  CHECK(split(split_spec(dash, "Isolated"), text) == V{"the", "-", "final", "-", "-", "countdown"});
  CHECK(split(split_spec(dash, "MergedWithPrevious"), text) == V{"the-", "final-", "-", "countdown"});
  CHECK(split(split_spec(dash, "MergedWithNext"), text) == V{"the", "-final", "-", "-countdown"});
  CHECK(split(split_spec(dash, "Contiguous"), text) == V{"the", "-", "final", "--", "countdown"});
  // invert: the pattern describes the pieces to keep apart, the rest is the delimiter.
  CHECK(split(split_spec({{"Regex", "[a-z]+"}}, "Removed", true), text) == V{"the", "final", "countdown"});
  CHECK(split(split_spec({{"Regex", "-"}}, "MergedWithPrevious", true), text) == V{"the", "-final", "-", "-countdown"});
  // A String pattern is literal.
  CHECK(split(split_spec({{"String", "."}}, "Isolated"), "a.b") == V{"a", ".", "b"});
}

TEST_CASE("pre_tokenizer: ByteLevel add_prefix_space and GPT-2 regex", "[pre_tokenizer]") {
  const json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  CHECK(split(bl, "Hello world's  end") == V{" Hello", " world", "'s", " ", " end"});
  const json seq = {{"type", "Sequence"},
                    {"pretokenizers", json::array({split_spec({{"Regex", "\\d"}}, "Isolated"),
                                                   {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}}})}};
  // The prefix space goes on every piece the earlier steps made.
  CHECK(split(seq, "a1 b") == V{" a", " 1", " b"});
  CHECK(!PreTokenizer::from_json({{"type", "ByteLevel"}, {"foo", 1}}).ok());
  CHECK(!PreTokenizer::from_json(split_spec({{"String", "-"}}, "Sideways")).ok());
}

TEST_CASE("regex: \\s means Unicode White_Space as in Oniguruma", "[pre_tokenizer]") {
  auto re = Regex::compile("\\s+", "test");
  REQUIRE(re.ok());
  std::vector<Span> m;
  REQUIRE(re->find_all("a\xC2\x85 b\xEF\xBB\xBF" "c\xE3\x80\x80", m).ok());  // NEL+space, BOM, ideographic space
  REQUIRE(m.size() == 2);
  CHECK((m[0].begin == 1 && m[0].end == 4));
  CHECK((m[1].begin == 9 && m[1].end == 12));
  CHECK(oniguruma_to_pcre2("[^\\s\\p{L}]\\S").value() == "[^\\t-\\r\\x{85}\\p{Z}\\p{L}][^\\t-\\r\\x{85}\\p{Z}]");
  CHECK(oniguruma_to_pcre2("[]\\s]").value() == "[]\\t-\\r\\x{85}\\p{Z}]");
  CHECK(!oniguruma_to_pcre2("[\\S]").ok());
  // Empty matches split but never repeat at the same place.
  auto empty = Regex::compile("x*", "test");
  m.clear();
  REQUIRE(empty->find_all("axxb", m).ok());
  REQUIRE(m.size() == 3);
  CHECK((m[0].begin == 0 && m[0].end == 0));
  CHECK((m[1].begin == 1 && m[1].end == 3));
  CHECK((m[2].begin == 4 && m[2].end == 4));
}

}  // namespace
}  // namespace latentserve::engine::text
