// Every template in tests/fixtures/jinja/cases.jsonl renders exactly as Python Jinja2 rendered it
// (set up as Hugging Face sets it up), or fails where Jinja2 failed.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/text/jinja_interpreter.h"

namespace jinja = latentserve::engine::text::jinja;

namespace {

std::vector<nlohmann::ordered_json> load_cases() {
  std::ifstream in(std::string(LATENTSERVE_TEST_FIXTURES) + "/jinja/cases.jsonl");
  REQUIRE(in.good());
  std::vector<nlohmann::ordered_json> cases;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) cases.push_back(nlohmann::ordered_json::parse(line));
  }
  return cases;
}

}  // namespace

TEST_CASE("jinja: templates render as Python Jinja2 renders them", "[jinja]") {
  const auto cases = load_cases();
  REQUIRE(cases.size() > 90);
  int rendered = 0, failed_as_expected = 0, rejected = 0;
  for (const auto& c : cases) {
    const std::string name = c["name"];
    INFO("case " << name << ": " << c["template"].get<std::string>());
    auto t = jinja::Template::parse(c["template"]);
    if (c.contains("syntax_error")) {
      REQUIRE_FALSE(t.ok());
      CHECK(t.error().message.find("template line ") == 0);
      ++rejected;
      continue;
    }
    if (!t.ok()) FAIL("parse failed: " << t.error().message);
    std::vector<std::pair<std::string, jinja::Value>> vars;
    for (auto it = c["context"].begin(); it != c["context"].end(); ++it) {
      vars.emplace_back(it.key(), jinja::Value::from_json(it.value(), false));
    }
    auto out = t->render(vars);
    if (c.contains("error")) {
      CHECK_FALSE(out.ok());
      ++failed_as_expected;
      continue;
    }
    if (!out.ok()) FAIL("render failed: " << out.error().message);
    CHECK(out->text() == c["expected"].get<std::string>());
    CHECK_FALSE(out->any_tagged());
    ++rendered;
  }
  CHECK(rendered > 70);
  CHECK(failed_as_expected >= 8);
  CHECK(rejected >= 10);
}
