// Tool-call and reasoning parsing on hand-written model outputs, whole and streamed in random
// fragments: the streamed deltas must add up to the whole result.
#include <random>

#include <catch2/catch.hpp>

#include "server/openai/choice_parser.h"

using namespace latentserve::server::openai;

namespace {

// Splits at UTF-8 character boundaries, as the engine's text deltas are.
std::vector<std::string> random_fragments(const std::string& text, std::mt19937& rng) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t len = std::uniform_int_distribution<size_t>(1, 12)(rng);
    size_t end = std::min(text.size(), at + len);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    out.push_back(text.substr(at, end - at));
    at = end;
  }
  return out;
}

struct Streamed {
  std::string reasoning, content;
  std::vector<ToolCall> calls;  // assembled from deltas
  std::vector<ToolCall> completed;
};

Streamed run(const std::vector<std::string>& pieces, bool reasoning, bool starts_inside, bool tools) {
  ChoiceParser parser(reasoning, starts_inside, tools);
  Streamed s;
  auto take = [&](const ChoiceDelta& d) {
    s.reasoning += d.reasoning;
    s.content += d.content;
    for (const auto& t : d.tool_calls) {
      if (!t.id.empty()) {
        REQUIRE(size_t(t.index) == s.calls.size());
        REQUIRE(t.arguments.empty());
        s.calls.push_back({t.id, t.name, ""});
      } else {
        REQUIRE(size_t(t.index) + 1 == s.calls.size());  // fragments follow their call's first delta
        REQUIRE(t.name.empty());
        s.calls.back().arguments += t.arguments;
      }
    }
  };
  for (const auto& p : pieces) take(parser.feed(p));
  take(parser.finish());
  s.completed = parser.tool_calls();
  return s;
}

const std::string kV3 =
    "Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
    "{\"location\": \"Paris\", \"unit\": \"c\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>"
    "get_time\n```json\n{\"tz\": \"CET\", \"fmt\": \"`hh`\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
const std::string kV31 =
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>search<｜tool▁sep｜>{\"q\": \"a <b> c\", \"n\": 3}<｜tool▁call▁end｜>"
    "<｜tool▁call▁begin｜>function<｜tool▁sep｜>{\"x\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>";

}  // namespace

TEST_CASE("tool calls: DeepSeek-V3 markup, whole output", "[openai][tools]") {
  const Streamed s = run({kV3}, false, false, true);
  CHECK(s.content == "Let me check.");
  REQUIRE(s.completed.size() == 2);
  CHECK(s.completed[0].name == "get_weather");
  CHECK(s.completed[0].arguments == "{\"location\": \"Paris\", \"unit\": \"c\"}");
  CHECK(s.completed[1].name == "get_time");
  CHECK(s.completed[1].arguments == "{\"tz\": \"CET\", \"fmt\": \"`hh`\"}");
  CHECK(s.completed[0].id.rfind("call_", 0) == 0);
  CHECK(s.completed[0].id.size() == 29);
  CHECK(s.completed[0].id != s.completed[1].id);
}

TEST_CASE("tool calls: DeepSeek-V3.1 markup, and a V3.1 function named \"function\"", "[openai][tools]") {
  const Streamed s = run({kV31}, false, false, true);
  CHECK(s.content.empty());
  REQUIRE(s.completed.size() == 2);
  CHECK(s.completed[0].name == "search");
  CHECK(s.completed[0].arguments == "{\"q\": \"a <b> c\", \"n\": 3}");
  CHECK(s.completed[1].name == "function");
  CHECK(s.completed[1].arguments == "{\"x\": 1}");
}

TEST_CASE("tool calls: text without markup, look-alikes, and calls cut short", "[openai][tools]") {
  const std::string plain = "a < b and <｜tool not a call <｜tool▁call";
  const Streamed s = run({plain}, false, false, true);
  CHECK(s.content == plain);
  CHECK(s.completed.empty());

  const std::string cut = "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```json\n{\"a\": ";
  const Streamed c = run({cut}, false, false, true);
  CHECK(c.content == "Sure.");
  CHECK(c.completed.empty());  // a call without its end marker is not a call
  REQUIRE(c.calls.size() == 1);
  CHECK(c.calls[0].name == "f");

  // Parsing off: the markup is content.
  const Streamed off = run({kV3}, false, false, false);
  CHECK(off.content == kV3);
}

TEST_CASE("tool calls: random fragments stream the same calls", "[openai][tools]") {
  std::random_device rd;
  for (int trial = 0; trial < 200; ++trial) {
    const unsigned seed = rd();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const std::string& text = trial % 2 ? kV3 : kV31;
    const Streamed whole = run({text}, false, false, true);
    const Streamed s = run(random_fragments(text, rng), false, false, true);
    CHECK(s.content == whole.content);
    REQUIRE(s.calls.size() == whole.completed.size());
    REQUIRE(s.completed.size() == whole.completed.size());
    for (size_t i = 0; i < s.calls.size(); ++i) {
      CHECK(s.calls[i].name == whole.completed[i].name);
      CHECK(s.calls[i].arguments == whole.completed[i].arguments);
      CHECK(s.calls[i].id == s.completed[i].id);
      CHECK(s.completed[i].arguments == whole.completed[i].arguments);
    }
  }
}

TEST_CASE("reasoning: <think> blocks split from content", "[openai][reasoning]") {
  struct Case {
    std::string text;
    bool starts_inside;
    std::string reasoning, content;
  };
  const Case cases[] = {
      {"<think>I should add.</think>The answer is 4.", false, "I should add.", "The answer is 4."},
      {"\n<think>x</think>y", false, "x", "y"},
      {"Hmm, 2+2.</think>\n\nIt is 4.", true, "Hmm, 2+2.", "\n\nIt is 4."},
      {"<think>again</think>done", true, "again", "done"},
      {"Plain <think>not at the start</think>", false, "", "Plain <think>not at the start</think>"},
      {"still thinking <", true, "still thinking <", ""},
      {"<think>cut off </thi", false, "cut off </thi", ""},
      {"<thin", false, "", "<thin"},
      {"", true, "", ""},
  };
  std::random_device rd;
  for (const auto& c : cases) {
    INFO(c.text);
    const Streamed whole = run({c.text}, true, c.starts_inside, false);
    CHECK(whole.reasoning == c.reasoning);
    CHECK(whole.content == c.content);
    for (int trial = 0; trial < 30; ++trial) {
      const unsigned seed = rd();
      INFO("seed " << seed);
      std::mt19937 rng(seed);
      const Streamed s = run(random_fragments(c.text, rng), true, c.starts_inside, false);
      CHECK(s.reasoning == c.reasoning);
      CHECK(s.content == c.content);
    }
  }
  // Reasoning off: the tags are content.
  CHECK(run({"<think>a</think>b"}, false, false, false).content == "<think>a</think>b");
}

TEST_CASE("reasoning then a tool call, streamed in random fragments", "[openai][reasoning][tools]") {
  const std::string text = "<think>The user wants weather.</think>" + kV3;
  std::random_device rd;
  for (int trial = 0; trial < 100; ++trial) {
    const unsigned seed = rd();
    INFO("seed " << seed);
    std::mt19937 rng(seed);
    const Streamed s = run(random_fragments(text, rng), true, false, true);
    CHECK(s.reasoning == "The user wants weather.");
    CHECK(s.content == "Let me check.");
    REQUIRE(s.calls.size() == 2);
    CHECK(s.calls[1].arguments == "{\"tz\": \"CET\", \"fmt\": \"`hh`\"}");
  }
}
