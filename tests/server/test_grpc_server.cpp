// The gRPC API end to end: an in-process GrpcServer on a free loopback port over the tiny preset
// (random weights, the real DeepSeek-V3 tokenizer), driven through the generated C++ stubs.
#ifdef LATENTSERVE_WITH_GRPC

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <catch2/catch.hpp>
#include <grpcpp/grpcpp.h>

#include "engine/collected.h"
#include "engine/engine.h"
#include "models/deepseek_v3/model.h"
#include "models/make_model.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/latentserve.grpc.pb.h"
#include "server/grpc/grpc_server.h"

using namespace latentserve;
namespace v1 = latentserve::v1;
namespace fs = std::filesystem;

namespace {

struct TinyModel {
  std::unique_ptr<models::deepseek_v3::Model> model;
  std::shared_ptr<const engine::text::TextProcessor> text;
};

const TinyModel& tiny() {
  static TinyModel tiny = [] {
    const fs::path dir = fs::temp_directory_path() / ("latentserve-grpc-tiny-" + std::to_string(::getpid()));
    models::MakeModelOptions options;
    options.out_dir = dir.string();
    options.tokenizer_dir = std::string(LATENTSERVE_SOURCE_DIR) + "/assets/tokenizer/deepseek-v3";
    Status made = models::make_model(options);
    if (!made.ok()) FAIL(made.error().message);
    TinyModel t;
    auto model = models::deepseek_v3::Model::load(dir.string());
    if (!model.ok()) FAIL(model.error().message);
    auto text = engine::text::TextProcessor::load(dir.string());
    if (!text.ok()) FAIL(text.error().message);
    t.model = std::move(model).value();
    t.text = std::move(text).value();
    fs::remove_all(dir);
    return t;
  }();
  return tiny;
}

// An engine, its serving context and a gRPC server on it, torn down server first.
struct Served {
  std::unique_ptr<engine::Engine> engine;
  server::ServingContext context;
  std::unique_ptr<server::GrpcServer> grpc;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Latentserve::Stub> stub;

  explicit Served(int64_t max_num_seqs = 256, int64_t max_queued_requests = 1024) {
    const TinyModel& t = tiny();
    engine::EngineConfig config;
    config.log_startup = false;
    config.check_integrity_every_step = true;
    config.num_kv_blocks = 512;
    config.block_size = 16;
    config.scheduler.max_num_seqs = max_num_seqs;
    config.decoder_factory = t.text->decoder_factory();
    auto e = engine::Engine::create(*t.model, config);
    if (!e.ok()) FAIL(e.error().message);
    engine = std::move(e).value();
    context.engine = engine.get();
    context.text = t.text;
    context.model_name = "tiny";
    context.limits = config.limits;
    context.max_queued_requests = max_queued_requests;
    context.max_model_len = t.model->config().max_position_embeddings;
    context.vocab_size = t.model->config().vocab_size;
    auto started = server::GrpcServer::start(context, "127.0.0.1", 0);
    if (!started.ok()) FAIL(started.error().message);
    grpc = std::move(started).value();
    channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(grpc->port()), grpc::InsecureChannelCredentials());
    stub = v1::Latentserve::NewStub(channel);
  }
  ~Served() {
    stub.reset();
    channel.reset();
    grpc.reset();
  }
};

Served& served() {
  static Served s;
  return s;
}

struct Streamed {
  grpc::Status status;
  std::vector<v1::GenerateResponse> responses;
  std::map<int32_t, engine::CollectedCompletion> completions;  // responses added up, by index
  v1::Usage usage;
};

Streamed generate(v1::Latentserve::Stub& stub, const v1::GenerateRequest& request) {
  grpc::ClientContext call;
  call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub.Generate(&call, request);
  Streamed out;
  v1::GenerateResponse r;
  while (reader->Read(&r)) {
    auto& c = out.completions[r.index()];
    c.token_ids.insert(c.token_ids.end(), r.token_ids().begin(), r.token_ids().end());
    c.text += r.text();
    for (const auto& lp : r.logprobs()) {
      engine::TokenLogprobs row{lp.token(), lp.logprob(), {}};
      for (const auto& t : lp.top()) row.top.push_back({t.token(), t.logprob()});
      c.logprobs.push_back(std::move(row));
    }
    if (r.has_usage()) out.usage = r.usage();
    out.responses.push_back(r);
  }
  out.status = reader->Finish();
  return out;
}

v1::GenerateRequest ids_request(std::vector<int32_t> ids, int64_t max_tokens) {
  v1::GenerateRequest r;
  r.mutable_token_ids()->mutable_ids()->Add(ids.begin(), ids.end());
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_temperature(0.0f);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

// Waits until the engine has nothing running or waiting and every block is free.
bool engine_drained(engine::Engine& e) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < until) {
    const auto s = e.stats();
    if (s.num_running == 0 && s.num_waiting == 0 && s.num_requests_unfinished == 0 &&
        s.num_free_blocks == s.num_blocks) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// What the engine produces for the same prompt, read directly, to compare the stream against.
engine::CollectedRequest direct(std::vector<int32_t> prompt, engine::SamplingParams params) {
  auto handle = served().engine->submit({std::move(prompt), params});
  if (!handle.ok()) FAIL(handle.error().message);
  return engine::collect_all(*handle);
}

}  // namespace

TEST_CASE("grpc: a token-id prompt streams what the engine generates, token and text", "[grpc]") {
  Served& s = served();
  const std::vector<int32_t> prompt = {0, 19923, 29616, 2413, 774, 11, 4117};
  const auto streamed = generate(*s.stub, [&] {
    auto r = ids_request(prompt, 23);
    r.set_request_id("client-7");
    return r;
  }());
  REQUIRE(streamed.status.ok());
  engine::SamplingParams params;
  params.max_tokens = 23;
  params.temperature = 0.0f;
  params.ignore_eos = true;
  const auto expected = direct(prompt, params);
  REQUIRE(streamed.completions.size() == 1);
  const auto& got = streamed.completions.at(0);
  CHECK(got.token_ids == expected.completions.at(0).token_ids);
  CHECK(got.text == expected.completions.at(0).text);
  CHECK(got.token_ids.size() == 23);
  CHECK(streamed.responses.size() > 1);  // streamed, not one message
  for (const auto& r : streamed.responses) CHECK(r.request_id() == "client-7");
  const auto& last = streamed.responses.back();
  CHECK(last.finish_reason() == v1::FINISH_REASON_LENGTH);
  CHECK(streamed.usage.prompt_tokens() == int64_t(prompt.size()));
  CHECK(streamed.usage.completion_tokens() == 23);
  for (size_t i = 0; i + 1 < streamed.responses.size(); ++i) {
    CHECK(streamed.responses[i].finish_reason() == v1::FINISH_REASON_UNSPECIFIED);
    CHECK_FALSE(streamed.responses[i].has_usage());
  }
  auto decoded = tiny().text->tokenizer().decode(got.token_ids, true);
  REQUIRE(decoded.ok());
  CHECK(*decoded == got.text);
}

TEST_CASE("grpc: text and chat prompts are tokenized as Tokenize says", "[grpc]") {
  Served& s = served();
  v1::TokenizeRequest tok_text;
  tok_text.set_text("The quick brown fox");
  v1::TokenizeResponse text_ids;
  {
    grpc::ClientContext call;
    REQUIRE(s.stub->Tokenize(&call, tok_text, &text_ids).ok());
  }
  auto expected_text = tiny().text->encode_prompt("The quick brown fox");
  REQUIRE(expected_text.ok());
  CHECK(std::vector<int32_t>(text_ids.token_ids().begin(), text_ids.token_ids().end()) == *expected_text);

  v1::ChatPrompt chat;
  auto* sys = chat.add_messages();
  sys->set_role("system");
  sys->set_content("Be brief.");
  auto* user = chat.add_messages();
  user->set_role("user");
  user->set_content("What is 2+2?");
  v1::TokenizeRequest tok_chat;
  *tok_chat.mutable_chat() = chat;
  v1::TokenizeResponse chat_ids;
  {
    grpc::ClientContext call;
    REQUIRE(s.stub->Tokenize(&call, tok_chat, &chat_ids).ok());
  }
  CHECK(chat_ids.text().find("What is 2+2?") != std::string::npos);
  CHECK(chat_ids.text().find("<｜Assistant｜>") != std::string::npos);  // the generation prompt

  for (int kind = 0; kind < 2; ++kind) {
    v1::GenerateRequest request;
    if (kind == 0) request.set_text("The quick brown fox");
    if (kind == 1) *request.mutable_chat() = chat;
    request.mutable_sampling()->set_max_tokens(5);
    request.mutable_sampling()->set_temperature(0.0f);
    request.mutable_sampling()->set_ignore_eos(true);
    const auto streamed = generate(*s.stub, request);
    REQUIRE(streamed.status.ok());
    const auto& ids = kind == 0 ? text_ids.token_ids() : chat_ids.token_ids();
    CHECK(streamed.usage.prompt_tokens() == ids.size());
    engine::SamplingParams params;
    params.max_tokens = 5;
    params.temperature = 0.0f;
    params.ignore_eos = true;
    const auto expected = direct({ids.begin(), ids.end()}, params);
    CHECK(streamed.completions.at(0).token_ids == expected.completions.at(0).token_ids);
  }
}

TEST_CASE("grpc: chat with tool calls renders through the template", "[grpc]") {
  Served& s = served();
  v1::TokenizeRequest request;
  auto* chat = request.mutable_chat();
  chat->set_tools_json(R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  auto* user = chat->add_messages();
  user->set_role("user");
  user->set_content("Weather in Paris?");
  auto* assistant = chat->add_messages();
  assistant->set_role("assistant");
  auto* call_msg = assistant->add_tool_calls();
  call_msg->set_id("call_1");
  call_msg->set_name("get_weather");
  call_msg->set_arguments(R"({"city": "Paris"})");
  auto* tool = chat->add_messages();
  tool->set_role("tool");
  tool->set_tool_call_id("call_1");
  tool->set_content("18 degrees");
  v1::TokenizeResponse response;
  grpc::ClientContext call;
  REQUIRE(s.stub->Tokenize(&call, request, &response).ok());
  CHECK(response.text().find("get_weather") != std::string::npos);
  CHECK(response.text().find("Paris") != std::string::npos);
  CHECK(response.text().find("18 degrees") != std::string::npos);
  CHECK(response.token_ids_size() > 20);
}

TEST_CASE("grpc: logprobs and n > 1 come back per completion", "[grpc]") {
  Served& s = served();
  auto request = ids_request({0, 5501, 1025, 88, 13}, 6);
  request.mutable_sampling()->set_logprobs(3);
  const auto greedy = generate(*s.stub, request);
  REQUIRE(greedy.status.ok());
  const auto& c = greedy.completions.at(0);
  REQUIRE(c.logprobs.size() == c.token_ids.size());
  for (size_t i = 0; i < c.token_ids.size(); ++i) {
    CHECK(c.logprobs[i].token == c.token_ids[i]);
    REQUIRE(c.logprobs[i].top.size() == 3);
    CHECK(c.logprobs[i].top[0].token == c.token_ids[i]);  // greedy takes the most likely
    CHECK(c.logprobs[i].logprob == Approx(c.logprobs[i].top[0].logprob));
    CHECK(c.logprobs[i].top[0].logprob >= c.logprobs[i].top[1].logprob);
    CHECK(c.logprobs[i].logprob <= 0.0f);
  }

  auto sampled = ids_request({0, 5501, 1025, 88, 13}, 9);
  sampled.mutable_sampling()->set_n(3);
  sampled.mutable_sampling()->set_temperature(1.0f);
  sampled.mutable_sampling()->set_seed(1234);
  const auto many = generate(*s.stub, sampled);
  REQUIRE(many.status.ok());
  REQUIRE(many.completions.size() == 3);
  for (const auto& [index, completion] : many.completions) {
    CHECK(completion.token_ids.size() == 9);
    CHECK(completion.logprobs.empty());
  }
  CHECK(many.usage.completion_tokens() == 27);
  int finished = 0;
  for (const auto& r : many.responses) finished += r.finish_reason() == v1::FINISH_REASON_LENGTH;
  CHECK(finished == 3);
  const auto again = generate(*s.stub, sampled);  // seeded: the same three completions
  REQUIRE(again.status.ok());
  for (int i = 0; i < 3; ++i) CHECK(again.completions.at(i).token_ids == many.completions.at(i).token_ids);
}

TEST_CASE("grpc: stop strings end a completion with the stop reason", "[grpc]") {
  Served& s = served();
  auto request = ids_request({0, 19923, 29616}, 40);
  const auto free_run = generate(*s.stub, request);
  REQUIRE(free_run.status.ok());
  const std::string text = free_run.completions.at(0).text;
  REQUIRE(text.size() >= 4);
  // A stop string taken from the middle of what greedy decoding writes anyway: two whole UTF-8
  // characters (proto strings must be valid UTF-8).
  size_t begin = text.size() / 2;
  while (begin > 0 && (uint8_t(text[begin]) & 0xC0) == 0x80) --begin;
  size_t end = begin;
  for (int chars = 0; chars < 2 && end < text.size(); ++chars) {
    do ++end; while (end < text.size() && (uint8_t(text[end]) & 0xC0) == 0x80);
  }
  const std::string stop = text.substr(begin, end - begin);
  request.mutable_sampling()->add_stop(stop);
  const auto stopped = generate(*s.stub, request);
  REQUIRE(stopped.status.ok());
  CHECK(stopped.responses.back().finish_reason() == v1::FINISH_REASON_STOP);
  CHECK(stopped.responses.back().stop_reason() == stop);
  CHECK(stopped.completions.at(0).text == text.substr(0, text.find(stop)));
}

TEST_CASE("grpc: bad requests get INVALID_ARGUMENT or NOT_FOUND with the reason", "[grpc]") {
  Served& s = served();
  struct Case {
    const char* name;
    std::function<void(v1::GenerateRequest&)> edit;
    grpc::StatusCode code;
    const char* says;
  };
  const Case cases[] = {
      {"negative temperature", [](auto& r) { r.mutable_sampling()->set_temperature(-0.5f); },
       grpc::StatusCode::INVALID_ARGUMENT, "temperature"},
      {"n over max_n", [](auto& r) { r.mutable_sampling()->set_n(17); }, grpc::StatusCode::INVALID_ARGUMENT,
       "n must be in [1, 16], got 17"},
      {"top_p zero", [](auto& r) { r.mutable_sampling()->set_top_p(0.0f); }, grpc::StatusCode::INVALID_ARGUMENT,
       "top_p"},
      {"logprobs over 20", [](auto& r) { r.mutable_sampling()->set_logprobs(21); },
       grpc::StatusCode::INVALID_ARGUMENT, "logprobs"},
      {"logit_bias outside the vocabulary", [](auto& r) { (*r.mutable_sampling()->mutable_logit_bias())[129280] = 1; },
       grpc::StatusCode::INVALID_ARGUMENT, "logit_bias"},
      {"token outside the vocabulary", [](auto& r) { r.mutable_token_ids()->add_ids(200000); },
       grpc::StatusCode::INVALID_ARGUMENT, "200000"},
      {"no prompt", [](auto& r) { r.clear_prompt(); }, grpc::StatusCode::INVALID_ARGUMENT, "token_ids, text or chat"},
      {"empty prompt", [](auto& r) { r.mutable_token_ids()->clear_ids(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "empty"},
      {"over the context", [](auto& r) { r.mutable_sampling()->set_max_tokens(5000); },
       grpc::StatusCode::INVALID_ARGUMENT, "4096"},
      {"bad chat role", [](auto& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("wizard");
         m->set_content("hi");
       }, grpc::StatusCode::INVALID_ARGUMENT, "wizard"},
      {"bad tools JSON", [](auto& r) {
         auto* m = r.mutable_chat()->add_messages();
         m->set_role("user");
         m->set_content("hi");
         r.mutable_chat()->set_tools_json("[{");
       }, grpc::StatusCode::INVALID_ARGUMENT, "tools_json"},
      {"unknown model", [](auto& r) { r.set_model("gpt-9"); }, grpc::StatusCode::NOT_FOUND, "gpt-9"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto request = ids_request({0, 11, 12}, 4);
    c.edit(request);
    const auto result = generate(*s.stub, request);
    CHECK(result.status.error_code() == c.code);
    CHECK(result.status.error_message().find(c.says) != std::string::npos);
    CHECK(result.responses.empty());
  }
  v1::TokenizeRequest empty;
  v1::TokenizeResponse response;
  grpc::ClientContext call;
  CHECK(s.stub->Tokenize(&call, empty, &response).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(engine_drained(*s.engine));
}

TEST_CASE("grpc: cancelling mid-stream aborts the request and frees its blocks", "[grpc]") {
  Served& s = served();
  const auto before = s.engine->stats().generated_tokens;
  grpc::ClientContext call;
  auto reader = s.stub->Generate(&call, ids_request({0, 700, 701, 702, 703}, 3000));
  v1::GenerateResponse r;
  int read = 0;
  while (read < 3 && reader->Read(&r)) ++read;
  REQUIRE(read == 3);
  call.TryCancel();
  while (reader->Read(&r)) {
  }
  CHECK(reader->Finish().error_code() == grpc::StatusCode::CANCELLED);
  REQUIRE(engine_drained(*s.engine));
  CHECK(s.engine->stats().generated_tokens - before < 3000);
  CHECK(s.engine->stats().integrity_error.empty());
}

TEST_CASE("grpc: ListModels and the health service", "[grpc]") {
  Served& s = served();
  v1::ListModelsResponse models;
  {
    grpc::ClientContext call;
    REQUIRE(s.stub->ListModels(&call, v1::ListModelsRequest(), &models).ok());
  }
  REQUIRE(models.models_size() == 1);
  CHECK(models.models(0).id() == "tiny");
  CHECK(models.models(0).max_model_len() == 4096);
  CHECK(models.models(0).vocab_size() == 129280);

  auto health = grpc::health::v1::Health::NewStub(s.channel);
  for (const char* service : {"", "latentserve.v1.Latentserve"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    grpc::ClientContext call;
    REQUIRE(health->Check(&call, request, &response).ok());
    CHECK(response.status() == grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

TEST_CASE("grpc: a full queue is RESOURCE_EXHAUSTED; shutdown cancels what is left", "[grpc]") {
  // One sequence at a time, at most one waiting: the third long request finds the queue full.
  Served s(/*max_num_seqs=*/1, /*max_queued_requests=*/1);
  std::vector<std::unique_ptr<grpc::ClientContext>> calls;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>>> readers;
  for (int i = 0; i < 2; ++i) {
    calls.push_back(std::make_unique<grpc::ClientContext>());
    readers.push_back(s.stub->Generate(calls.back().get(), ids_request({0, 40 + i, 41, 42}, 3000)));
  }
  v1::GenerateResponse r;
  REQUIRE(readers[0]->Read(&r));  // the first runs
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (s.engine->stats().num_waiting < 1 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const auto rejected = generate(*s.stub, ids_request({0, 50, 51}, 4));
  CHECK(rejected.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);

  s.grpc->shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  for (auto& reader : readers) {
    while (reader->Read(&r)) {
    }
    const grpc::Status status = reader->Finish();
    CHECK_FALSE(status.ok());  // cut off at the deadline, 3000 tokens unfinished
  }
  CHECK(engine_drained(*s.engine));
}

#endif  // LATENTSERVE_WITH_GRPC
