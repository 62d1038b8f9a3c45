// Templates in the styles of the DeepSeek family and its relatives (tests/fixtures/chat_templates)
// render every conversation exactly as Python Jinja2 renders them, with user text marked as input.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/text/chat_template.h"

using latentserve::engine::text::ChatRequest;
using latentserve::engine::text::ChatTemplate;
using json = nlohmann::ordered_json;

namespace {

const std::string kDir = std::string(LATENTSERVE_TEST_FIXTURES) + "/chat_templates";

const ChatTemplate& load(const std::string& file) {
  static std::map<std::string, ChatTemplate> cache;
  auto it = cache.find(file);
  if (it != cache.end()) return it->second;
  std::ifstream in(kDir + "/" + file);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  auto t = ChatTemplate::parse(ss.str());
  if (!t.ok()) FAIL(t.error().message);
  return cache.emplace(file, std::move(*t)).first->second;
}

}  // namespace

TEST_CASE("chat template family: renders match Python Jinja2", "[chat_template]") {
  std::ifstream in(kDir + "/expected.jsonl");
  REQUIRE(in.good());
  std::string line;
  int rendered = 0, errors = 0;
  while (std::getline(in, line)) {
    const json c = json::parse(line);
    INFO(c["template"].get<std::string>() << " / " << c["name"].get<std::string>() << " / add_generation_prompt "
                                          << c["add_generation_prompt"].get<bool>());
    ChatRequest r;
    r.messages = c["messages"];
    r.tools = c["tools"];
    r.extra = c["extra"];
    r.add_generation_prompt = c["add_generation_prompt"];
    r.bos_token = "<｜begin▁of▁sentence｜>";
    r.eos_token = "<｜end▁of▁sentence｜>";
    r.pad_token = r.eos_token;
    auto out = load(c["template"]).render(r);
    if (c.contains("error")) {
      REQUIRE_FALSE(out.ok());
      CHECK(out.error().message == "rendering chat template: " + c["error"].get<std::string>());
      ++errors;
      continue;
    }
    if (!out.ok()) FAIL(out.error().message);
    CHECK(out->text == c["text"].get<std::string>());
    std::string joined;
    for (const auto& seg : out->segments) {
      joined += seg.text;
      if (!seg.from_input) continue;
      CHECK(seg.text.find("<｜User｜>") == std::string::npos);
      CHECK(seg.text.find("<|im_end|>") == std::string::npos);
    }
    CHECK(joined == out->text);
    for (const auto& m : c["messages"]) {
      if (m["role"] != "user") continue;
      const std::string content = m["content"];
      bool inside_input = false;
      for (const auto& seg : out->segments) inside_input = inside_input || (seg.from_input && seg.text.find(content) != std::string::npos);
      CHECK(inside_input);
    }
    ++rendered;
  }
  CHECK(rendered >= 30);
  CHECK(errors == 2);
}
