// `latentserve generate`: request parsing, and the command end to end on the tiny-dsv3 fixture
// against the reference's greedy continuations.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/generate_command.h"

using namespace latentserve;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int exit_code;
  std::string stderr_text;
};

RunResult run_generate(const fs::path& dir, const std::string& input, const std::string& extra) {
  fs::create_directories(dir);
  std::ofstream(dir / "in.jsonl") << input;
  const std::string cmd = std::string(LATENTSERVE_BINARY) + " generate --model " LATENTSERVE_SHARED_FIXTURES
                          "/tiny-dsv3 --input " + (dir / "in.jsonl").string() + " --output " +
                          (dir / "out.jsonl").string() + " " + extra + " 2> " + (dir / "err.txt").string();
  const int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), read_file(dir / "err.txt")};
}

fs::path temp_dir(const std::string& name) {
  return fs::temp_directory_path() / ("latentserve-test-" + name + "-" + std::to_string(::getpid()));
}

}  // namespace

TEST_CASE("generate request lines are parsed and checked field by field", "[generate]") {
  auto ok = server::parse_generate_line(
      R"({"prompt_token_ids": [1, 2, 3], "max_tokens": 4, "logprobs": 2, "ignore_eos": true, "extra": 1,
          "temperature": 0.5, "top_k": 5, "top_p": 0.9, "seed": 7, "n": 2, "stop": "ab",
          "logit_bias": {"17": -3.5}, "stop_token_ids": [9]})",
      nullptr);
  REQUIRE(ok.ok());
  CHECK(ok->prompt_token_ids == std::vector<int32_t>{1, 2, 3});
  CHECK(ok->params.max_tokens == 4);
  CHECK(*ok->params.logprobs == 2);
  CHECK(ok->params.ignore_eos);
  CHECK(ok->params.temperature == 0.5f);
  CHECK(ok->params.top_k == 5);
  CHECK(*ok->params.seed == 7);
  CHECK(ok->params.n == 2);
  CHECK(ok->params.stop == std::vector<std::string>{"ab"});
  CHECK(ok->params.logit_bias.at(17) == -3.5f);
  CHECK(ok->params.stop_token_ids == std::vector<int32_t>{9});

  auto defaults = server::parse_generate_line(R"({"prompt_token_ids": [7]})", nullptr);
  REQUIRE(defaults.ok());
  CHECK(defaults->params.max_tokens == 16);
  CHECK_FALSE(defaults->params.logprobs.has_value());
  CHECK(defaults->params.temperature == 0.0f);  // offline generation is greedy unless asked
  CHECK_FALSE(defaults->params.ignore_eos);

  const std::pair<const char*, const char*> bad[] = {
      {"not json", "JSON"},
      {"[1, 2]", "object"},
      {R"({"max_tokens": 3})", "prompt_token_ids"},
      {R"({"prompt_token_ids": [1, "a"]})", "prompt_token_ids\"[1]"},
      {R"({"prompt_token_ids": [-4]})", "prompt_token_ids\"[0]"},
      {R"({"prompt_token_ids": [1], "max_tokens": 2.5})", "max_tokens"},
      {R"({"prompt_token_ids": [1], "ignore_eos": "yes"})", "ignore_eos"},
      {R"({"prompt_token_ids": [1], "temperature": "hot"})", "temperature"},
      {R"({"prompt_token_ids": [1], "stop": [1]})", "stop"},
      {R"({"prompt_token_ids": [1], "logit_bias": {"x": 1}})", "logit_bias"},
      {R"({"prompt_token_ids": [1], "prompt": "hi"})", "only one"},
      {R"({"prompt": "hello"})", "tokenizer"},
  };
  for (const auto& [line, field] : bad) {
    auto r = server::parse_generate_line(line, nullptr);
    INFO(line);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().message, Catch::Contains(field));
  }
}

TEST_CASE("latentserve generate reproduces the reference's greedy continuations", "[generate]") {
  std::ifstream golden_in(std::string(LATENTSERVE_SHARED_FIXTURES) + "/tiny-dsv3/golden.json");
  const auto golden = nlohmann::json::parse(golden_in);
  std::string input;
  for (const auto& g : golden["greedy"]) {
    nlohmann::json req = {{"prompt_token_ids", golden["prompts"][g["prompt"].get<size_t>()]},
                          {"max_tokens", 16},
                          {"logprobs", 3}};
    input += req.dump() + "\n\n";  // blank lines are skipped
  }
  const fs::path dir = temp_dir("generate");
  const RunResult run = run_generate(dir, input, "--block-size 16");
  INFO(run.stderr_text);
  REQUIRE(run.exit_code == 0);
  std::ifstream out(dir / "out.jsonl");
  std::string line;
  size_t k = 0;
  while (std::getline(out, line)) {
    const auto result = nlohmann::json::parse(line);
    const auto& g = golden["greedy"][k];
    CHECK(result["token_ids"] == g["new_tokens"]);
    CHECK(result["finish_reason"] == "length");
    REQUIRE(result["logprobs"].size() == 16);
    for (size_t j = 0; j < 16; ++j) {
      const auto& entries = result["logprobs"][j];
      REQUIRE(entries.size() == 3);
      CHECK(entries[0]["id"] == g["steps"][j]["ids"][0]);
      CHECK(entries[1]["id"] == g["steps"][j]["ids"][1]);
      CHECK(entries[0]["logprob"].get<double>() >= entries[1]["logprob"].get<double>());
      CHECK(entries[0]["logprob"].get<double>() <= 0.0);
    }
    ++k;
  }
  CHECK(k == golden["greedy"].size());
  fs::remove_all(dir);
}

TEST_CASE("latentserve generate names the bad line and writes nothing", "[generate]") {
  const fs::path dir = temp_dir("generate-bad");
  const RunResult run = run_generate(
      dir, "{\"prompt_token_ids\": [1, 2]}\n{\"prompt_token_ids\": [5000]}\n", "");
  CHECK(run.exit_code == 1);
  CHECK_THAT(run.stderr_text, Catch::Contains("in.jsonl:2:") && Catch::Contains("vocabulary"));
  CHECK_FALSE(fs::exists(dir / "out.jsonl"));

  const RunResult too_long = run_generate(
      dir, "{\"prompt_token_ids\": [1, 2], \"max_tokens\": 5000}\n", "");
  CHECK(too_long.exit_code == 1);
  CHECK_THAT(too_long.stderr_text, Catch::Contains("in.jsonl:1:") && Catch::Contains("4096"));

  const RunResult bad_option = run_generate(dir, "", "--frobnicate 3");
  CHECK(bad_option.exit_code == 2);
  CHECK_THAT(bad_option.stderr_text, Catch::Contains("--frobnicate"));
  fs::remove_all(dir);
}

TEST_CASE("latentserve generate --device: a bad value is refused, cpu runs and says so", "[generate]") {
  const fs::path dir = temp_dir("generate-device");
  const RunResult bogus = run_generate(dir, "{\"prompt_token_ids\": [1, 2]}\n", "--device bogus");
  CHECK(bogus.exit_code == 2);
  CHECK_THAT(bogus.stderr_text, Catch::Contains("--device") && Catch::Contains("'bogus'") &&
                                    Catch::Contains("cpu, cuda, auto"));
  CHECK_FALSE(fs::exists(dir / "out.jsonl"));

  const RunResult cpu = run_generate(dir, "{\"prompt_token_ids\": [3, 4, 5], \"max_tokens\": 2}\n",
                                     "--device cpu --num-kv-blocks 8 --block-size 16");
  INFO(cpu.stderr_text);
  CHECK(cpu.exit_code == 0);
  CHECK_THAT(cpu.stderr_text, Catch::Contains("device cpu"));
  CHECK(fs::exists(dir / "out.jsonl"));
  fs::remove_all(dir);
}
