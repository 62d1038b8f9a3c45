// `latentserve tokenize` lines against the DeepSeek-V3 tokenizer's golden cases: chat messages
// rendered by the checkpoint's template, with message content never turned into added tokens.
#include <fstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/tokenize_command.h"

using namespace latentserve;
using json = nlohmann::ordered_json;

namespace {

const engine::text::TextProcessor& processor() {
  static auto p = [] {
    auto loaded = engine::text::TextProcessor::load(std::string(LATENTSERVE_SHARED_FIXTURES) +
                                                    "/deepseek-v3-tokenizer");
    if (!loaded.ok()) FAIL(loaded.error().message);
    return std::move(loaded).value();
  }();
  return *p;
}

}  // namespace

TEST_CASE("tokenize: chat cases render and tokenize as the golden, content kept plain", "[tokenize]") {
  std::ifstream in(std::string(LATENTSERVE_SHARED_FIXTURES) + "/deepseek-v3-tokenizer/chat_cases.jsonl");
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    const json c = json::parse(line);
    const json request = {{"messages", c["messages"]}, {"add_generation_prompt", c["add_generation_prompt"]}};
    auto out = server::tokenize_line(request.dump(), processor());
    INFO(c["name"]);
    REQUIRE(out.ok());
    CHECK((*out)["text"] == c["text"]);
    CHECK((*out)["ids"] == (c.contains("ids_content_as_plain_text") ? c["ids_content_as_plain_text"] : c["ids"]));
    ++cases;
  }
  CHECK(cases == 8);
}

TEST_CASE("tokenize: text lines follow add_special_tokens and parse_special", "[tokenize]") {
  const std::string text = "Hello<｜end▁of▁sentence｜>world";
  auto parsed = server::tokenize_line(json({{"text", text}, {"add_special_tokens", false}}).dump(), processor());
  REQUIRE(parsed.ok());
  CHECK((*parsed)["ids"] == json::array({19923, 1, 29616}));
  auto with_bos = server::tokenize_line(json({{"text", text}}).dump(), processor());
  REQUIRE(with_bos.ok());
  CHECK((*with_bos)["ids"][0] == 0);
  auto plain = server::tokenize_line(
      json({{"text", text}, {"add_special_tokens", false}, {"parse_special", false}}).dump(), processor());
  REQUIRE(plain.ok());
  CHECK(std::find((*plain)["ids"].begin(), (*plain)["ids"].end(), 1) == (*plain)["ids"].end());
}

TEST_CASE("tokenize: bad lines say what is wrong", "[tokenize]") {
  const std::pair<std::string, const char*> bad[] = {
      {"{", "JSON"},
      {R"({"text": 5})", "text"},
      {R"({"text": "a", "messages": []})", "exactly one"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "role"},
      {R"({"text": "a", "parse_special": 1})", "parse_special"},
      {"{\"text\": \"\\ud800\"}", ""},
  };
  for (const auto& [line, needle] : bad) {
    auto out = server::tokenize_line(line, processor());
    INFO(line);
    if (std::string(needle).empty()) {
      // A lone surrogate escape is invalid JSON text for a UTF-8 string: an error either way.
      CHECK_FALSE(out.ok());
      continue;
    }
    REQUIRE_FALSE(out.ok());
    CHECK_THAT(out.error().message, Catch::Contains(needle));
  }
}
