// The OpenAI request parser: every field into the engine request, and every error with its
// status code and "param".
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/openai/handlers.h"
#include "server/openai/request.h"
#include "test_openai_fixture.h"

using namespace latentserve;
using namespace latentserve::server::openai;
using json = nlohmann::ordered_json;

namespace {

ApiResult<ParsedRequest> chat(json body) {
  if (!body.contains("messages")) body["messages"] = json::array({{{"role", "user"}, {"content", "Hi"}}});
  return parse_request(Endpoint::kChat, body, testing::openai_context());
}

ApiResult<ParsedRequest> completion(json body) {
  if (!body.contains("prompt")) body["prompt"] = "Hello";
  return parse_request(Endpoint::kCompletion, body, testing::openai_context());
}

// Parse, then the engine's checks, as the handler does.
ApiError error_of(Endpoint endpoint, const json& body) {
  auto parsed = endpoint == Endpoint::kChat ? chat(body) : completion(body);
  if (!parsed.ok()) return parsed.error();
  auto admitted = check_admission(*parsed, testing::openai_context());
  if (!admitted.ok()) return admitted.error();
  return ApiError{0, "accepted", "", ""};
}

}  // namespace

TEST_CASE("openai request: every sampling field reaches the engine request", "[openai]") {
  auto r = completion(json::parse(R"({
      "model": "tiny-test", "prompt": "Hello world", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
      "n": 2, "stop": ["a", "b"], "seed": 11, "presence_penalty": 0.5, "frequency_penalty": -0.5,
      "logit_bias": {"100": 2.5}, "logprobs": 3, "stream": true, "stream_options": {"include_usage": true},
      "user": "u", "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.2, "min_tokens": 2, "ignore_eos": true,
      "skip_special_tokens": false, "include_stop_str_in_output": true, "priority": 3, "unknown_field": [1]})"));
  REQUIRE(r.ok());
  const auto& p = r->request.params;
  CHECK(p.max_tokens == 7);
  CHECK(p.temperature == 0.5f);
  CHECK(p.top_p == 0.9f);
  CHECK(p.n == 2);
  CHECK(p.stop == std::vector<std::string>{"a", "b"});
  CHECK(*p.seed == 11);
  CHECK(p.presence_penalty == 0.5f);
  CHECK(p.frequency_penalty == -0.5f);
  CHECK(p.logit_bias.at(100) == 2.5f);
  CHECK(*p.logprobs == 3);
  CHECK(p.top_k == 5);
  CHECK(p.min_p == Approx(0.1f));
  CHECK(p.repetition_penalty == Approx(1.2f));
  CHECK(p.min_tokens == 2);
  CHECK(p.ignore_eos);
  CHECK_FALSE(p.skip_special_tokens);
  CHECK(p.include_stop_str_in_output);
  CHECK(p.priority == 3);
  CHECK(r->stream);
  CHECK(r->include_usage);
  CHECK(r->logprobs);
  const auto expected = testing::openai_context().text->encode_prompt("Hello world");
  CHECK(r->request.prompt_token_ids == *expected);

  auto c = chat(json::parse(R"({"max_completion_tokens": 9, "logprobs": true, "top_logprobs": 4, "stop": "x"})"));
  REQUIRE(c.ok());
  CHECK(c->request.params.max_tokens == 9);
  CHECK(*c->request.params.logprobs == 4);
  CHECK(c->request.params.stop == std::vector<std::string>{"x"});
  CHECK_FALSE(c->stream);
  auto no_logprobs = chat(json::parse(R"({"logprobs": false})"));
  REQUIRE(no_logprobs.ok());
  CHECK_FALSE(no_logprobs->request.params.logprobs.has_value());
  CHECK_FALSE(no_logprobs->logprobs);
}

TEST_CASE("openai request: prompts as text, token ids, one-element batches and chat messages", "[openai]") {
  auto& ctx = testing::openai_context();
  auto ids = completion(json{{"prompt", {5, 6, 7}}, {"max_tokens", 2}});
  REQUIRE(ids.ok());
  CHECK(ids->request.prompt_token_ids == std::vector<int32_t>{5, 6, 7});
  auto one = completion(json{{"prompt", json::array({"Hello"})}});
  REQUIRE(one.ok());
  CHECK(one->request.prompt_token_ids == *ctx.text->encode_prompt("Hello"));
  auto one_ids = completion(json{{"prompt", json::array({json::array({9, 8})})}});
  REQUIRE(one_ids.ok());
  CHECK(one_ids->request.prompt_token_ids == std::vector<int32_t>{9, 8});
  auto no_bos = completion(json{{"prompt", "Hello"}, {"add_special_tokens", false}});
  REQUIRE(no_bos.ok());
  CHECK(no_bos->request.prompt_token_ids == *ctx.text->encode_prompt("Hello", false));

  const json messages = json::parse(R"([{"role": "system", "content": "Be brief."},
      {"role": "developer", "content": "Rules."},
      {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2+2?"}]},
      {"role": "assistant", "content": "4"}, {"role": "user", "content": "Sure?"}])");
  auto c = chat(json{{"messages", messages}});
  REQUIRE(c.ok());
  const auto direct = ctx.text->encode_chat(messages, nullptr, true);
  REQUIRE(direct.ok());
  CHECK(c->request.prompt_token_ids == direct->ids);
  CHECK(c->prompt_param == "messages");
}

TEST_CASE("openai request: max_tokens defaults to what the context and cache leave", "[openai]") {
  auto& ctx = testing::openai_context();
  auto r = completion(json{{"prompt", {1, 2, 3, 4, 5}}});
  REQUIRE(r.ok());
  const auto stats = ctx.engine->stats();
  const int64_t room = std::min(ctx.max_model_len, stats.num_blocks * stats.block_size);
  CHECK(r->request.params.max_tokens == room - 5);
  CHECK(check_admission(*r, ctx).ok());
  json long_prompt = json::array();
  for (int64_t i = 0; i < room; ++i) long_prompt.push_back(100);
  auto too_long = completion(json{{"prompt", long_prompt}});
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.error().status == 400);
  CHECK(too_long.error().param == "prompt");
  CHECK_THAT(too_long.error().message, Catch::Contains(std::to_string(room)));
}

TEST_CASE("openai request: errors carry their status and param", "[openai]") {
  struct Case {
    Endpoint endpoint;
    const char* body;
    int status;
    const char* param;
  };
  const Case cases[] = {
      {Endpoint::kChat, R"({"model": "other"})", 404, "model"},
      {Endpoint::kChat, R"({"model": 3})", 400, "model"},
      {Endpoint::kChat, R"({"messages": "hi"})", 400, "messages"},
      {Endpoint::kChat, R"({"messages": []})", 400, "messages"},
      {Endpoint::kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", 400, "messages"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", 400, "messages"},
      {Endpoint::kChat, R"({"max_tokens": "5"})", 400, "max_tokens"},
      {Endpoint::kChat, R"({"max_tokens": 0})", 400, "max_tokens"},
      {Endpoint::kChat, R"({"max_completion_tokens": 2.5})", 400, "max_completion_tokens"},
      {Endpoint::kChat, R"({"temperature": "hot"})", 400, "temperature"},
      {Endpoint::kChat, R"({"temperature": 2.5})", 400, "temperature"},
      {Endpoint::kChat, R"({"top_p": 0})", 400, "top_p"},
      {Endpoint::kChat, R"({"top_p": [1]})", 400, "top_p"},
      {Endpoint::kChat, R"({"n": 5})", 400, "n"},
      {Endpoint::kChat, R"({"n": 0})", 400, "n"},
      {Endpoint::kChat, R"({"n": true})", 400, "n"},
      {Endpoint::kChat, R"({"stop": [1]})", 400, "stop"},
      {Endpoint::kChat, R"({"stop": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]})", 400, "stop"},
      {Endpoint::kChat, R"({"seed": "x"})", 400, "seed"},
      {Endpoint::kChat, R"({"presence_penalty": 3})", 400, "presence_penalty"},
      {Endpoint::kChat, R"({"frequency_penalty": -2.5})", 400, "frequency_penalty"},
      {Endpoint::kChat, R"({"logit_bias": {"abc": 1}})", 400, "logit_bias"},
      {Endpoint::kChat, R"({"logit_bias": {"99999999": 1}})", 400, "logit_bias"},
      {Endpoint::kChat, R"({"logit_bias": []})", 400, "logit_bias"},
      {Endpoint::kChat, R"({"logprobs": 2})", 400, "logprobs"},
      {Endpoint::kChat, R"({"top_logprobs": 2})", 400, "top_logprobs"},
      {Endpoint::kChat, R"({"logprobs": true, "top_logprobs": 21})", 400, "top_logprobs"},
      {Endpoint::kChat, R"({"stream": "yes"})", 400, "stream"},
      {Endpoint::kChat, R"({"stream_options": {"include_usage": true}})", 400, "stream_options"},
      {Endpoint::kChat, R"({"stream": true, "stream_options": {"include_usage": 1}})", 400, "stream_options.include_usage"},
      {Endpoint::kChat, R"({"user": 5})", 400, "user"},
      {Endpoint::kChat, R"({"top_k": -2})", 400, "top_k"},
      {Endpoint::kChat, R"({"min_p": 1.5})", 400, "min_p"},
      {Endpoint::kChat, R"({"repetition_penalty": 0})", 400, "repetition_penalty"},
      {Endpoint::kChat, R"({"min_tokens": 9, "max_tokens": 3})", 400, "min_tokens"},
      {Endpoint::kChat, R"({"ignore_eos": 1})", 400, "ignore_eos"},
      {Endpoint::kChat, R"({"skip_special_tokens": "no"})", 400, "skip_special_tokens"},
      {Endpoint::kChat, R"({"include_stop_str_in_output": 0})", 400, "include_stop_str_in_output"},
      {Endpoint::kChat, R"({"priority": 1.5})", 400, "priority"},
      {Endpoint::kChat, R"({"tools": {}})", 400, "tools"},
      {Endpoint::kChat, R"({"tools": [{"type": "function"}]})", 400, "tools"},
      {Endpoint::kChat, R"({"tool_choice": "auto"})", 400, "tool_choice"},
      {Endpoint::kChat, R"({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"})", 400, "tool_choice"},
      {Endpoint::kChat, R"({"tools": [{"type": "function", "function": {"name": "f"}}],
                            "tool_choice": {"type": "function", "function": {"name": "g"}}})", 400, "tool_choice"},
      {Endpoint::kChat, R"({"response_format": {"type": "json_object"}})", 400, "response_format"},
      {Endpoint::kChat, R"({"max_tokens": 200000})", 400, "max_tokens"},
      {Endpoint::kCompletion, R"({"prompt": 5})", 400, "prompt"},
      {Endpoint::kCompletion, R"({"prompt": ["a", "b"]})", 400, "prompt"},
      {Endpoint::kCompletion, R"({"prompt": [1, -2]})", 400, "prompt"},
      {Endpoint::kCompletion, R"({"prompt": [1, 200000]})", 400, "prompt"},
      {Endpoint::kCompletion, R"({"prompt": []})", 400, "prompt"},
      {Endpoint::kCompletion, R"({"logprobs": 21})", 400, "logprobs"},
      {Endpoint::kCompletion, R"({"logprobs": true})", 400, "logprobs"},
      {Endpoint::kCompletion, R"({"echo": true})", 400, "echo"},
      {Endpoint::kCompletion, R"({"suffix": "x"})", 400, "suffix"},
      {Endpoint::kCompletion, R"({"add_special_tokens": "x"})", 400, "add_special_tokens"},
  };
  for (const auto& c : cases) {
    INFO(c.body);
    const ApiError e = error_of(c.endpoint, json::parse(c.body));
    CHECK(e.status == c.status);
    CHECK(e.param == c.param);
    CHECK_FALSE(e.message.empty());
  }
  // A prompt that fits with max_tokens over the context length names both numbers.
  const ApiError over = error_of(Endpoint::kCompletion, json{{"prompt", {1, 2, 3}}, {"max_tokens", 163838}});
  CHECK(over.status == 400);
  CHECK(over.param == "max_tokens");
  CHECK_THAT(over.message, Catch::Contains("3 tokens") && Catch::Contains("163838"));
}

TEST_CASE("openai request: malformed bodies, invalid UTF-8 and a full queue", "[openai]") {
  auto& ctx = testing::openai_context();
  for (const std::string& body : {std::string("{"), std::string("[1]"), std::string("{\"messages\": \"\xff\xfe\"}"),
                                 std::string("{\"prompt\": \"a\xc3\"}")}) {
    auto r = parse_request(Endpoint::kCompletion, body, ctx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().status == 400);
  }
  const json err = error_json(bad_request("bad", "n"));
  CHECK(err == json::parse(R"({"error": {"message": "bad", "type": "invalid_request_error", "param": "n", "code": 400}})"));
  const json not_found = error_json(ApiError{404, "gone", "model", "model_not_found"});
  CHECK(not_found["error"]["code"] == "model_not_found");
  CHECK(not_found["error"]["type"] == "not_found_error");

  auto parsed = completion(json{{"prompt", {1, 2}}, {"max_tokens", 2}});
  REQUIRE(parsed.ok());
  const int64_t saved = ctx.max_queued_requests;
  ctx.max_queued_requests = 0;  // "already 0 waiting" is at the bound
  auto busy = check_admission(*parsed, ctx);
  ctx.max_queued_requests = saved;
  REQUIRE_FALSE(busy.ok());
  CHECK(busy.error().status == 429);
}
