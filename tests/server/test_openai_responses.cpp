// The OpenAI handlers end to end on the tiny model: response shapes field by field, streamed
// and not, n > 1, logprobs, usage, tool calls and reasoning in responses, the small endpoints,
// and a client that disconnects mid-stream.
#include <thread>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/openai/handlers.h"
#include "server/openai/response_stream.h"
#include "server/openai/responses.h"
#include "test_openai_fixture.h"

using namespace latentserve;
using namespace latentserve::server::openai;
using json = nlohmann::ordered_json;

namespace {

std::shared_ptr<testing::RecordingWriter> call(Endpoint endpoint, const json& body) {
  auto writer = std::make_shared<testing::RecordingWriter>();
  const char* path = endpoint == Endpoint::kChat ? "/v1/chat/completions" : "/v1/completions";
  handle_generate(endpoint, testing::openai_context(), testing::post(path, body.dump()), writer);
  REQUIRE(writer->wait());
  return writer;
}

std::vector<json> parse_events(const testing::RecordingWriter& w) {
  std::vector<json> out;
  REQUIRE_FALSE(w.events.empty());
  CHECK(w.events.back() == "[DONE]");
  for (size_t i = 0; i + 1 < w.events.size(); ++i) out.push_back(json::parse(w.events[i]));
  return out;
}

const json kMessages = json::parse(R"([{"role": "user", "content": "Tell me a story."}])");

void check_usage(const json& usage, int64_t prompt, int64_t completion) {
  CHECK(usage["prompt_tokens"] == prompt);
  CHECK(usage["completion_tokens"] == completion);
  CHECK(usage["total_tokens"] == prompt + completion);
  CHECK(usage["prompt_tokens_details"]["cached_tokens"].is_number_integer());
}

}  // namespace

TEST_CASE("openai chat completion: the body field by field", "[openai]") {
  auto& ctx = testing::openai_context();
  const json body = {{"model", "tiny-test"}, {"messages", kMessages}, {"max_tokens", 6}, {"n", 2},
                     {"ignore_eos", true}, {"logprobs", true}, {"top_logprobs", 2}, {"seed", 3}};
  auto w = call(Endpoint::kChat, body);
  REQUIRE(w->status == 200);
  const json r = w->json();
  std::vector<std::string> keys;
  for (const auto& [k, v] : r.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"id", "object", "created", "model", "choices", "usage"});
  CHECK(r["id"].get<std::string>().rfind("chatcmpl-", 0) == 0);
  CHECK(r["object"] == "chat.completion");
  CHECK(r["created"].is_number_integer());
  CHECK(r["model"] == "tiny-test");
  REQUIRE(r["choices"].size() == 2);
  for (int i = 0; i < 2; ++i) {
    const json& c = r["choices"][i];
    CHECK(c["index"] == i);
    CHECK(c["message"]["role"] == "assistant");
    CHECK(c["message"]["content"].is_string());
    CHECK(c["finish_reason"] == "length");
    const json& content = c["logprobs"]["content"];
    REQUIRE(content.size() == 6);
    for (const auto& t : content) {
      CHECK(t["token"].is_string());
      CHECK(t["logprob"].get<double>() <= 0.0);
      CHECK(t["bytes"].is_array());
      REQUIRE(t["top_logprobs"].size() == 2);
      CHECK(t["top_logprobs"][0]["logprob"] >= t["top_logprobs"][1]["logprob"]);
      CHECK(t["top_logprobs"][0].contains("bytes"));
    }
  }
  const auto prompt = ctx.text->encode_chat(kMessages, nullptr, true);
  check_usage(r["usage"], int64_t(prompt->ids.size()), 12);

  auto plain = call(Endpoint::kChat, json{{"messages", kMessages}, {"max_tokens", 2}});
  CHECK(plain->json()["choices"][0]["logprobs"].is_null());
}

TEST_CASE("openai completion: the body and its logprobs", "[openai]") {
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 5}, {"ignore_eos", true}, {"logprobs", 2},
                     {"temperature", 0}};
  auto w = call(Endpoint::kCompletion, body);
  REQUIRE(w->status == 200);
  const json r = w->json();
  CHECK(r["id"].get<std::string>().rfind("cmpl-", 0) == 0);
  CHECK(r["object"] == "text_completion");
  REQUIRE(r["choices"].size() == 1);
  const json& c = r["choices"][0];
  CHECK(c["index"] == 0);
  CHECK(c["text"].is_string());
  CHECK(c["finish_reason"] == "length");
  const json& lp = c["logprobs"];
  REQUIRE(lp["tokens"].size() == 5);
  REQUIRE(lp["token_logprobs"].size() == 5);
  REQUIRE(lp["top_logprobs"].size() == 5);
  REQUIRE(lp["text_offset"].size() == 5);
  CHECK(lp["text_offset"][0] == 0);
  std::string joined;
  for (size_t i = 0; i < 5; ++i) {
    joined += lp["tokens"][i].get<std::string>();
    CHECK(lp["top_logprobs"][i].size() >= 1);
    CHECK(lp["top_logprobs"][i].size() <= 3);
    if (i > 0) CHECK(lp["text_offset"][i] >= lp["text_offset"][i - 1]);
  }
  CHECK(r["usage"]["completion_tokens"] == 5);
}

TEST_CASE("openai chat stream: chunks per choice, usage, [DONE]; same text as not streamed", "[openai]") {
  const json base = {{"messages", kMessages}, {"max_tokens", 8}, {"ignore_eos", true}, {"temperature", 0}, {"n", 2}};
  const json whole = call(Endpoint::kChat, base)->json();
  json body = base;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto w = call(Endpoint::kChat, body);
  CHECK(w->streaming);
  const auto events = parse_events(*w);
  std::map<int, std::string> content;
  std::map<int, int> role_chunks, finish_chunks;
  std::string id;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json& e = events[i];
    CHECK(e["object"] == "chat.completion.chunk");
    CHECK(e["model"] == "tiny-test");
    CHECK(e.contains("usage"));
    CHECK(e["usage"].is_null());
    if (id.empty()) id = e["id"];
    CHECK(e["id"] == id);
    REQUIRE(e["choices"].size() == 1);
    const json& c = e["choices"][0];
    const int index = c["index"];
    if (c["delta"].contains("role")) {
      CHECK(c["delta"] == json({{"role", "assistant"}, {"content", ""}}));
      CHECK(content[index].empty());  // the role comes first
      ++role_chunks[index];
    }
    if (!c["finish_reason"].is_null()) {
      CHECK(c["finish_reason"] == "length");
      CHECK(c["delta"] == json::object());
      ++finish_chunks[index];
    } else if (c["delta"].contains("content")) {
      content[index] += c["delta"]["content"].get<std::string>();
    }
  }
  const json& usage = events.back();
  CHECK(usage["choices"] == json::array());
  check_usage(usage["usage"], whole["usage"]["prompt_tokens"], 16);
  for (int i = 0; i < 2; ++i) {
    CHECK(role_chunks[i] == 1);
    CHECK(finish_chunks[i] == 1);
    CHECK(content[i] == whole["choices"][i]["message"]["content"]);
  }
}

TEST_CASE("openai completion stream: text chunks add up to the whole text", "[openai]") {
  const json base = {{"prompt", {10, 20, 30}}, {"max_tokens", 7}, {"ignore_eos", true}, {"temperature", 0}};
  const json whole = call(Endpoint::kCompletion, base)->json();
  json body = base;
  body["stream"] = true;
  auto w = call(Endpoint::kCompletion, body);
  const auto events = parse_events(*w);
  std::string text;
  int finishes = 0;
  for (const auto& e : events) {
    CHECK(e["object"] == "text_completion");
    CHECK_FALSE(e.contains("usage"));
    text += e["choices"][0]["text"].get<std::string>();
    if (!e["choices"][0]["finish_reason"].is_null()) ++finishes;
  }
  CHECK(finishes == 1);
  CHECK(events.back()["choices"][0]["finish_reason"] == "length");
  CHECK(text == whole["choices"][0]["text"]);
}

TEST_CASE("openai responses: tool calls and reasoning from hand-written outputs", "[openai][tools]") {
  ParsedRequest parsed;
  parsed.endpoint = Endpoint::kChat;
  parsed.parse_tool_calls = true;
  parsed.parse_reasoning = true;
  const std::string text =
      "<think>Need weather.</think><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n"
      "```json\n{\"city\": \"Oslo\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
  engine::CollectedRequest result;
  result.completions[0].text = text;
  result.completions[0].finish_reason = engine::FinishReason::kStop;
  result.usage = {5, 9, 0};
  const ResponseMeta meta{"chatcmpl-x", 1, "tiny-test"};
  auto body = build_response(parsed, meta, result, nullptr);
  REQUIRE(body.ok());
  const json& choice = (*body)["choices"][0];
  CHECK(choice["finish_reason"] == "tool_calls");
  const json& m = choice["message"];
  CHECK(m["content"].is_null());
  CHECK(m["reasoning_content"] == "Need weather.");
  REQUIRE(m["tool_calls"].size() == 1);
  const json& call = m["tool_calls"][0];
  CHECK(call["id"].get<std::string>().rfind("call_", 0) == 0);
  CHECK(call["type"] == "function");
  CHECK(call["function"] == json({{"name", "get_weather"}, {"arguments", "{\"city\": \"Oslo\"}"}}));

  // The same text streamed one character at a time (whole UTF-8 characters).
  ResponseStream stream(parsed, meta, nullptr);
  std::vector<std::string> events;
  for (size_t at = 0; at < text.size();) {
    size_t end = at + 1;
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    engine::Output out;
    out.text = text.substr(at, end - at);
    out.token_ids = {1};
    if (end == text.size()) {
      out.finish_reason = engine::FinishReason::kStop;
      out.request_finished = true;
    }
    for (auto& e : stream.on_output(out)) events.push_back(std::move(e));
    at = end;
  }
  REQUIRE(events.back() == "[DONE]");
  std::string reasoning, arguments, finish;
  int starts = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i])["choices"][0];
    if (c["delta"].contains("reasoning_content")) reasoning += c["delta"]["reasoning_content"].get<std::string>();
    CHECK_FALSE((c["delta"].contains("content") && !c["delta"].contains("role")));
    if (c["delta"].contains("tool_calls")) {
      const json& t = c["delta"]["tool_calls"][0];
      CHECK(t["index"] == 0);
      if (t.contains("id")) {
        ++starts;
        CHECK(t["type"] == "function");
        CHECK(t["function"]["name"] == "get_weather");
      }
      arguments += t["function"]["arguments"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
  }
  CHECK(reasoning == "Need weather.");
  CHECK(starts == 1);
  CHECK(arguments == "{\"city\": \"Oslo\"}");
  CHECK(finish == "tool_calls");
}

TEST_CASE("openai handlers: errors, models, tokenize, detokenize", "[openai]") {
  auto& ctx = testing::openai_context();
  auto bad = call(Endpoint::kChat, json{{"messages", kMessages}, {"temperature", 9}});
  CHECK(bad->status == 400);
  CHECK(bad->json()["error"]["param"] == "temperature");
  auto missing = call(Endpoint::kChat, json{{"model", "gpt-4"}, {"messages", kMessages}});
  CHECK(missing->status == 404);
  CHECK(missing->json()["error"]["code"] == "model_not_found");

  auto models = std::make_shared<testing::RecordingWriter>();
  handle_models(ctx, testing::post("/v1/models", ""), models);
  CHECK(models->status == 200);
  const json m = models->json();
  CHECK(m["object"] == "list");
  REQUIRE(m["data"].size() == 1);
  CHECK(m["data"][0]["id"] == "tiny-test");
  CHECK(m["data"][0]["object"] == "model");
  CHECK(m["data"][0]["owned_by"] == "latentserve");
  CHECK(m["data"][0]["max_model_len"] == ctx.max_model_len);
  CHECK(m["data"][0]["created"] == 1700000000);

  auto tok = std::make_shared<testing::RecordingWriter>();
  handle_tokenize(ctx, testing::post("/tokenize", R"({"prompt": "Hello world"})"), tok);
  REQUIRE(tok->status == 200);
  const json t = tok->json();
  CHECK(t["tokens"] == json(*ctx.text->encode_prompt("Hello world")));
  CHECK(t["count"] == t["tokens"].size());
  CHECK(t["max_model_len"] == ctx.max_model_len);
  auto chat_tok = std::make_shared<testing::RecordingWriter>();
  handle_tokenize(ctx, testing::post("/tokenize", json{{"messages", kMessages}}.dump()), chat_tok);
  REQUIRE(chat_tok->status == 200);
  CHECK(chat_tok->json()["tokens"] == json(ctx.text->encode_chat(kMessages, nullptr, true)->ids));

  auto detok = std::make_shared<testing::RecordingWriter>();
  handle_detokenize(ctx, testing::post("/detokenize", json{{"tokens", t["tokens"]}}.dump()), detok);
  REQUIRE(detok->status == 200);
  CHECK(detok->json()["prompt"] == "<｜begin▁of▁sentence｜>Hello world");
  for (const char* body : {R"({"tokens": [1, -1]})", R"({"tokens": "x"})", R"({"tokens": [999999]})", "nope"}) {
    auto w = std::make_shared<testing::RecordingWriter>();
    handle_detokenize(ctx, testing::post("/detokenize", body), w);
    CHECK(w->status == 400);
  }
  auto bad_tok = std::make_shared<testing::RecordingWriter>();
  handle_tokenize(ctx, testing::post("/tokenize", R"({"prompt": 5})"), bad_tok);
  CHECK(bad_tok->status == 400);
}

TEST_CASE("openai stream: the engine thread only hands Outputs over; the writer's thread builds the events", "[openai]") {
  auto& ctx = testing::openai_context();
  const json base = {{"prompt", {11, 22, 33, 44}}, {"max_tokens", 6}, {"ignore_eos", true}, {"temperature", 0}};
  const json whole = call(Endpoint::kCompletion, base)->json();
  json body = base;
  body["stream"] = true;
  auto w = std::make_shared<testing::RecordingWriter>();
  w->hold_posts = true;
  handle_generate(Endpoint::kCompletion, ctx, testing::post("/v1/completions", body.dump()), w);
  ctx.engine->wait_idle();
  // The engine has pushed all 6 tokens and the end, yet no event exists: building them waits
  // for the writer's thread. The Outputs cost one hand-over, not one each.
  CHECK(w->events.empty());
  CHECK(w->num_posted() == 1);
  CHECK(w->run_posted() == 1);
  REQUIRE(w->wait(std::chrono::seconds(1)));
  CHECK(w->num_posted() == 0);
  const auto events = parse_events(*w);
  std::string text;
  for (const auto& e : events) text += e["choices"][0]["text"].get<std::string>();
  CHECK(text == whole["choices"][0]["text"]);
  CHECK(events.back()["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("openai stream: a client that disconnects has its request aborted and blocks freed", "[openai]") {
  auto& ctx = testing::openai_context();
  auto w = std::make_shared<testing::RecordingWriter>();
  const json body = {{"messages", kMessages}, {"max_tokens", 2000}, {"ignore_eos", true}, {"stream", true}};
  handle_generate(Endpoint::kChat, ctx, testing::post("/v1/chat/completions", body.dump()), w);
  REQUIRE(w->wait_events(3));
  w->disconnect();
  REQUIRE(w->wait());
  ctx.engine->wait_idle();
  const auto stats = ctx.engine->stats();
  CHECK(stats.num_running == 0);
  CHECK(stats.num_waiting == 0);
  CHECK(stats.num_free_blocks == stats.num_blocks);
  CHECK(stats.integrity_error.empty());
}
