// Helpers for engine tests: the tiny-dsv3 model, random prompts, and running a set of requests
// through an Engine to completion.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/engine.h"
#include "models/deepseek_v3/model.h"

namespace latentserve::testing {

inline const models::deepseek_v3::Model& tiny_model() {
  static std::unique_ptr<models::deepseek_v3::Model> model = [] {
    auto m = models::deepseek_v3::Model::load(std::string(LATENTSERVE_SHARED_FIXTURES) + "/tiny-dsv3");
    if (!m.ok()) FAIL(m.error().message);
    return std::move(m).value();
  }();
  return *model;
}

inline std::vector<std::vector<int32_t>> random_prompts(int count, int min_len, int max_len,
                                                        uint32_t seed, int32_t vocab = 1024) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> p(size_t(std::uniform_int_distribution<int>(min_len, max_len)(rng)));
    for (auto& t : p) t = std::uniform_int_distribution<int32_t>(2, vocab - 1)(rng);
    prompts.push_back(std::move(p));
  }
  return prompts;
}

// Everything one completion produced.
struct Completion {
  std::vector<int32_t> tokens;
  std::string text;
  std::string finish_reason;
  std::string stop_reason;
  std::vector<engine::TokenLogprobs> logprobs;
};

struct RequestResult {
  std::map<int32_t, Completion> completions;  // by index
  engine::Usage usage;
};

inline engine::EngineConfig quiet_config() {
  engine::EngineConfig c;
  c.log_startup = false;
  // The engine tests compare with GreedyGenerator (the CPU) token for token; the CUDA executor
  // has its own tests.
  c.device = models::deepseek_v3::Device::kCpu;
  c.check_integrity_every_step = true;
  c.num_kv_blocks = 256;
  c.block_size = 16;
  return c;
}

// Submits every request at once and collects all outputs.
inline std::vector<RequestResult> run_all(engine::Engine& engine, const std::vector<engine::Request>& requests) {
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) {
    auto h = engine.submit(r);
    if (!h.ok()) FAIL(h.error().message);
    handles.push_back(std::move(h).value());
  }
  std::vector<RequestResult> results(requests.size());
  for (size_t i = 0; i < handles.size(); ++i) {
    while (true) {
      auto out = handles[i].next(std::chrono::seconds(120));
      REQUIRE(out.has_value());
      Completion& c = results[i].completions[out->index];
      c.tokens.insert(c.tokens.end(), out->token_ids.begin(), out->token_ids.end());
      c.text += out->text;
      c.logprobs.insert(c.logprobs.end(), out->logprobs.begin(), out->logprobs.end());
      if (out->finish_reason) {
        c.finish_reason = engine::finish_reason_name(*out->finish_reason);
        c.stop_reason = out->stop_reason;
      }
      if (out->request_finished) {
        results[i].usage = out->usage;
        break;
      }
    }
  }
  return results;
}

inline std::vector<engine::Request> greedy_requests(const std::vector<std::vector<int32_t>>& prompts,
                                                    int max_tokens) {
  std::vector<engine::Request> out;
  for (const auto& p : prompts) {
    engine::Request r;
    r.prompt_token_ids = p;
    r.params.temperature = 0.0f;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    out.push_back(r);
  }
  return out;
}

inline std::vector<std::vector<int32_t>> tokens_of(const std::vector<RequestResult>& results) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& r : results) out.push_back(r.completions.at(0).tokens);
  return out;
}

inline void check_all_blocks_free(const engine::Engine& engine) {
  engine.wait_idle();
  const auto stats = engine.stats();
  CHECK(stats.integrity_error == "");
  CHECK(stats.num_running == 0);
  CHECK(stats.num_waiting == 0);
  CHECK(stats.num_free_blocks == stats.num_blocks);
}

// A fresh engine with `config` runs the prompts greedily to the end; checks every block is free.
inline std::vector<std::vector<int32_t>> run_greedy_engine(engine::EngineConfig config,
                                                           const std::vector<std::vector<int32_t>>& prompts,
                                                           int max_tokens, engine::EngineStats* stats = nullptr) {
  auto engine = engine::Engine::create(tiny_model(), std::move(config));
  REQUIRE(engine.ok());
  auto results = run_all(*engine.value(), greedy_requests(prompts, max_tokens));
  check_all_blocks_free(*engine.value());
  if (stats) *stats = engine.value()->stats();
  return tokens_of(results);
}

}  // namespace latentserve::testing
