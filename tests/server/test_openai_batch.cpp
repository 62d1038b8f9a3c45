// OpenAI's batch format through `latentserve generate`: each line answered with the same body
// the HTTP API sends, errors per line, generate's own lines still answered in its own format.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/openai/batch.h"
#include "test_openai_fixture.h"

using namespace latentserve;
using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

TEST_CASE("generate answers OpenAI batch lines with the HTTP API's bodies", "[openai][batch]") {
  const std::string model_dir = testing::openai_model_dir();
  const fs::path dir = fs::temp_directory_path() / ("latentserve-openai-batch-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const json lines[] = {
      {{"custom_id", "chat-1"}, {"method", "POST"}, {"url", "/v1/chat/completions"},
       {"body", {{"model", "tiny-test"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4},
                 {"ignore_eos", true}, {"n", 2}, {"logprobs", true}, {"top_logprobs", 1}}}},
      {{"custom_id", "cmpl-1"}, {"method", "POST"}, {"url", "/v1/completions"},
       {"body", {{"model", "tiny-test"}, {"prompt", "Once"}, {"max_tokens", 3}, {"ignore_eos", true}}}},
      {{"custom_id", "bad-model"}, {"method", "POST"}, {"url", "/v1/completions"},
       {"body", {{"model", "other"}, {"prompt", "x"}}}},
      {{"custom_id", "bad-url"}, {"method", "POST"}, {"url", "/v1/embeddings"}, {"body", json::object()}},
      {{"custom_id", "bad-field"}, {"method", "POST"}, {"url", "/v1/chat/completions"},
       {"body", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"top_p", 7}}}},
      {{"prompt_token_ids", {1, 2, 3}}, {"max_tokens", 2}, {"ignore_eos", true}},
  };
  {
    std::ofstream in(dir / "in.jsonl");
    for (const auto& l : lines) in << l.dump() << "\n";
  }
  const std::string cmd = std::string(LATENTSERVE_BINARY) + " generate --model " + model_dir +
                          " --served-model-name tiny-test --block-size 16 --num-kv-blocks 128 --input " +
                          (dir / "in.jsonl").string() + " --output " + (dir / "out.jsonl").string() + " 2> " +
                          (dir / "err.txt").string();
  const int status = std::system(cmd.c_str());
  std::ifstream err(dir / "err.txt");
  std::stringstream err_text;
  err_text << err.rdbuf();
  INFO(err_text.str());
  REQUIRE(WEXITSTATUS(status) == 0);
  std::ifstream out(dir / "out.jsonl");
  std::vector<json> results;
  for (std::string line; std::getline(out, line);) results.push_back(json::parse(line));
  REQUIRE(results.size() == 6);

  const json& chat = results[0];
  CHECK(chat["id"].get<std::string>().rfind("batch_req_", 0) == 0);
  CHECK(chat["custom_id"] == "chat-1");
  CHECK(chat["error"].is_null());
  CHECK(chat["response"]["status_code"] == 200);
  const json& body = chat["response"]["body"];
  CHECK(chat["response"]["request_id"] == body["id"]);
  CHECK(body["object"] == "chat.completion");
  CHECK(body["model"] == "tiny-test");
  REQUIRE(body["choices"].size() == 2);
  CHECK(body["choices"][1]["message"]["role"] == "assistant");
  CHECK(body["choices"][1]["logprobs"]["content"].size() == 4);
  CHECK(body["usage"]["completion_tokens"] == 8);

  const json& cmpl = results[1];
  CHECK(cmpl["custom_id"] == "cmpl-1");
  CHECK(cmpl["response"]["body"]["object"] == "text_completion");
  CHECK(cmpl["response"]["body"]["choices"][0]["finish_reason"] == "length");
  CHECK(cmpl["response"]["body"]["usage"]["completion_tokens"] == 3);

  CHECK(results[2]["response"]["status_code"] == 404);
  CHECK(results[2]["error"]["code"] == "model_not_found");
  CHECK(results[2]["response"]["body"]["error"]["param"] == "model");
  CHECK(results[3]["response"]["status_code"] == 404);
  CHECK(results[3]["response"]["body"]["error"]["param"] == "url");
  CHECK(results[4]["response"]["status_code"] == 400);
  CHECK(results[4]["response"]["body"]["error"]["param"] == "top_p");
  CHECK(results[4]["error"]["message"].get<std::string>().find("top_p") != std::string::npos);

  // generate's own format is unchanged.
  CHECK(results[5]["token_ids"].size() == 2);
  CHECK(results[5]["finish_reason"] == "length");
  fs::remove_all(dir);
}

TEST_CASE("batch lines are recognised and checked before any generation", "[openai][batch]") {
  auto& ctx = testing::openai_context();
  CHECK(server::openai::is_batch_line(json{{"custom_id", "a"}}));
  CHECK_FALSE(server::openai::is_batch_line(json{{"prompt", "a"}}));
  const json ok = {{"custom_id", "a"}, {"url", "/v1/completions"}, {"body", {{"prompt", {1, 2}}, {"max_tokens", 2}}}};
  auto item = server::openai::parse_batch_line(ok, ctx);
  REQUIRE(item.parsed);
  CHECK(item.parsed->request.prompt_token_ids == std::vector<int32_t>{1, 2});
  const std::pair<json, const char*> bad[] = {
      {{{"url", "/v1/completions"}, {"body", {{"prompt", "a"}}}}, "custom_id"},
      {{{"custom_id", "a"}, {"method", "GET"}, {"url", "/v1/completions"}, {"body", {{"prompt", "a"}}}}, "method"},
      {{{"custom_id", "a"}, {"url", "/v1/completions"}, {"body", "x"}}, "body"},
      {{{"custom_id", "a"}, {"url", "/v1/completions"}, {"body", {{"prompt", "a"}, {"stream", true}}}}, "stream"},
  };
  for (const auto& [line, param] : bad) {
    INFO(line.dump());
    auto b = server::openai::parse_batch_line(line, ctx);
    CHECK_FALSE(b.parsed);
    CHECK(b.error.param == param);
    const json out = server::openai::batch_output_line(b, nullptr, ctx);
    CHECK(out["response"]["status_code"] == b.error.status);
    CHECK(out["response"]["body"]["error"]["message"] == b.error.message);
    CHECK(out["error"]["message"] == b.error.message);
  }
}
