// DeepSeek-V3's own chat template renders every golden chat case exactly, and the rendered
// segments mark the text that came from the messages.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/text/chat_template.h"

using latentserve::engine::text::ChatRequest;
using latentserve::engine::text::ChatTemplate;
using latentserve::engine::text::RenderedPrompt;
using json = nlohmann::ordered_json;

namespace {

const std::string kDir = std::string(LATENTSERVE_SHARED_FIXTURES) + "/deepseek-v3-tokenizer";
const std::string kBos = "<｜begin▁of▁sentence｜>";
const std::string kEos = "<｜end▁of▁sentence｜>";

json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return json::parse(in);
}

const ChatTemplate& deepseek_v3() {
  static const ChatTemplate t = [] {
    auto parsed = ChatTemplate::parse(read_json(kDir + "/tokenizer_config.json")["chat_template"].get<std::string>());
    REQUIRE(parsed.ok());
    return std::move(*parsed);
  }();
  return t;
}

ChatRequest request(json messages, bool add_generation_prompt = true) {
  ChatRequest r;
  r.messages = std::move(messages);
  r.add_generation_prompt = add_generation_prompt;
  r.bos_token = kBos;
  r.eos_token = kEos;
  r.pad_token = kEos;
  return r;
}

std::string input_text(const RenderedPrompt& p) {
  std::string s;
  for (const auto& seg : p.segments) {
    if (seg.from_input) s += seg.text;
  }
  return s;
}

// Every string the messages supply, in the order DeepSeek-V3's template writes them.
void check_segments(const RenderedPrompt& p, const json& messages) {
  std::string joined;
  for (size_t i = 0; i < p.segments.size(); ++i) {
    joined += p.segments[i].text;
    CHECK_FALSE(p.segments[i].text.empty());
    if (i) CHECK(p.segments[i].from_input != p.segments[i - 1].from_input);
  }
  CHECK(joined == p.text);
  REQUIRE_FALSE(p.segments.empty());
  CHECK_FALSE(p.segments[0].from_input);
  CHECK(p.segments[0].text.rfind(kBos, 0) == 0);
  const std::string from_input = input_text(p);
  for (const auto& m : messages) {
    if (m["content"].is_string()) CHECK(from_input.find(m["content"].get<std::string>()) != std::string::npos);
    if (m.contains("tool_calls")) {
      for (const auto& call : m["tool_calls"]) {
        CHECK(from_input.find(call["function"]["name"].get<std::string>()) != std::string::npos);
        CHECK(from_input.find(call["function"]["arguments"].get<std::string>()) != std::string::npos);
      }
    }
  }
  for (const auto& seg : p.segments) {
    if (!seg.from_input) continue;
    for (const char* marker : {"<｜User｜>", "<｜Assistant｜>", "<｜tool▁call▁begin｜>", "<｜begin▁of▁sentence｜>"}) {
      CHECK(seg.text.find(marker) == std::string::npos);
    }
  }
}

}  // namespace

TEST_CASE("chat template: DeepSeek-V3 golden chat cases render exactly", "[chat_template]") {
  std::ifstream in(kDir + "/chat_cases.jsonl");
  REQUIRE(in.good());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    const json c = json::parse(line);
    INFO("case " << c["name"].get<std::string>());
    auto out = deepseek_v3().render(request(c["messages"], c["add_generation_prompt"].get<bool>()));
    if (!out.ok()) FAIL(out.error().message);
    CHECK(out->text == c["text"].get<std::string>());
    check_segments(*out, c["messages"]);
    if (c.contains("ids_content_as_plain_text")) {
      bool found = false;
      for (const auto& seg : out->segments) {
        if (seg.text.find(kEos) != std::string::npos) {
          CHECK(seg.from_input);
          found = true;
        }
      }
      CHECK(found);
    }
    ++n;
  }
  CHECK(n == 8);
}

TEST_CASE("chat template: template-written eos is not input, user-typed eos is", "[chat_template]") {
  const json messages = json::parse(R"([{"role":"user","content":"say <｜end▁of▁sentence｜>"},
                                        {"role":"assistant","content":"ok"}])");
  auto out = deepseek_v3().render(request(messages, false));
  REQUIRE(out.ok());
  REQUIRE(out->segments.size() == 5);
  CHECK(out->segments[1].text == "say <｜end▁of▁sentence｜>");
  CHECK(out->segments[1].from_input);
  CHECK(out->segments[3].text == "ok");
  CHECK(out->segments[4].text == kEos);
  CHECK_FALSE(out->segments[4].from_input);
}

TEST_CASE("chat template: content parts are joined with newlines, object arguments serialized", "[chat_template]") {
  const json messages = json::parse(R"([
    {"role":"user","content":[{"type":"text","text":"first"},{"type":"text","text":"second"}]},
    {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
      "function":{"name":"f","arguments":{"b":1,"a":"x"}}}]}])");
  auto out = deepseek_v3().render(request(messages, false));
  REQUIRE(out.ok());
  CHECK(out->text == kBos + "<｜User｜>first\nsecond<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                            "<｜tool▁sep｜>f\n```json\n{\"b\":1,\"a\":\"x\"}\n```<｜tool▁call▁end｜>");
}

TEST_CASE("chat template: invalid messages are rejected with the place named", "[chat_template]") {
  struct Bad {
    const char* messages;
    const char* expect;
  };
  const Bad cases[] = {
      {R"({"role":"user"})", "messages must be an array"},
      {R"([])", "must not be empty"},
      {R"([{"content":"x"}])", "messages[0].role must be a string"},
      {R"([{"role":"wizard","content":"x"}])", "messages[0].role 'wizard'"},
      {R"([{"role":"user","content":5}])", "messages[0].content must be"},
      {R"([{"role":"user","content":"a"},{"role":"user","content":null}])", "messages[1].content must not be null"},
      {R"([{"role":"user","content":[{"type":"image_url","image_url":{}}]}])", "messages[0].content[0]: content parts of type 'image_url'"},
      {R"([{"role":"user","content":[{"type":"text"}]}])", "messages[0].content[0].text"},
      {R"([{"role":"assistant","content":null,"tool_calls":[{"function":{"arguments":"{}"}}]}])", "messages[0].tool_calls[0].function.name"},
      {R"([{"role":"assistant","content":null,"tool_calls":{}}])", "tool_calls must be an array"},
      {R"([{"role":"user","content":"x","tool_calls":[]}])", "only assistant messages may have tool_calls"},
      {R"([{"role":"tool","content":"x","tool_call_id":3}])", "messages[0].tool_call_id must be a string"},
  };
  for (const Bad& b : cases) {
    INFO(b.messages);
    auto out = deepseek_v3().render(request(json::parse(b.messages)));
    REQUIRE_FALSE(out.ok());
    CHECK(out.error().message.find(b.expect) != std::string::npos);
  }
}

TEST_CASE("chat template: unsupported syntax fails at parse time with line and column", "[chat_template]") {
  auto t = ChatTemplate::parse("{% for m in messages %}\n  {{ m.content | shout }}\n{% endfor %}");
  REQUIRE_FALSE(t.ok());
  CHECK(t.error().message == "chat template: template line 2, column 18: unknown filter 'shout'");
}

TEST_CASE("chat template: raise_exception reaches the caller verbatim", "[chat_template]") {
  auto t = ChatTemplate::parse(
      "{% for m in messages %}{% if m.role == 'system' and not loop.first %}"
      "{{ raise_exception('System message must come first') }}{% endif %}{{ m.content }}{% endfor %}");
  REQUIRE(t.ok());
  auto ok = t->render(request(json::parse(R"([{"role":"system","content":"s"},{"role":"user","content":"u"}])")));
  REQUIRE(ok.ok());
  CHECK(ok->text == "su");
  auto bad = t->render(request(json::parse(R"([{"role":"user","content":"u"},{"role":"system","content":"s"}])")));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "rendering chat template: System message must come first");
}

TEST_CASE("chat template: tools and extra variables reach the template", "[chat_template]") {
  auto t = ChatTemplate::parse(
      "{% if tools is not none %}{% for tool in tools %}{{ tool.function.name }}:{{ tool.function.parameters | tojson }}\n"
      "{% endfor %}{% endif %}{% if thinking %}<think>{% endif %}{{ messages[-1].content }}");
  REQUIRE(t.ok());
  ChatRequest r = request(json::parse(R"([{"role":"user","content":"hi"}])"));
  auto plain = t->render(r);
  REQUIRE(plain.ok());
  CHECK(plain->text == "hi");
  r.tools = json::parse(R"([{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}])");
  r.extra = json::parse(R"({"thinking": true})");
  auto full = t->render(r);
  REQUIRE(full.ok());
  CHECK(full->text == "get_time:{\"type\": \"object\", \"properties\": {}}\n<think>hi");
  // Tool definitions come from the request, so they are input; JSON punctuation is the template's.
  CHECK(full->segments[0].text == "get_time");
  CHECK(full->segments[0].from_input);
  CHECK(full->segments[1].text == ":{\"");
  CHECK_FALSE(full->segments[1].from_input);
}
