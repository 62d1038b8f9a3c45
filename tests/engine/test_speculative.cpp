// Speculative decoding with the MTP module on the tiny-dsv3 model: greedy outputs equal those
// without speculation (K = 1, 2, 3, alone and batched), drafts forced to agree at a known rate
// are accepted at that rate, and every block is free after rejections and preemptions.
#include <map>

#include "engine_harness.h"

using namespace latentserve;
using namespace latentserve::testing;

namespace {

// The main model's greedy continuation of each prompt, recorded from a run without speculation.
engine::DraftOracle reference_oracle(const std::vector<std::vector<int32_t>>& prompts,
                                     const std::vector<std::vector<int32_t>>& outputs) {
  auto table = std::make_shared<std::map<std::vector<int32_t>, std::vector<int32_t>>>();
  for (size_t i = 0; i < prompts.size(); ++i) (*table)[prompts[i]] = outputs[i];
  return [table](std::span<const int32_t> prompt, std::span<const int32_t> out) -> std::optional<int32_t> {
    auto it = table->find(std::vector<int32_t>(prompt.begin(), prompt.end()));
    if (it == table->end() || out.size() >= it->second.size()) return std::nullopt;
    if (!std::equal(out.begin(), out.end(), it->second.begin())) return std::nullopt;
    return it->second[out.size()];
  };
}

engine::EngineConfig speculative_config(int32_t k, double forced = -1.0, engine::DraftOracle oracle = {}) {
  engine::EngineConfig c = quiet_config();
  c.speculative.num_speculative_tokens = k;
  c.speculative.forced_acceptance = forced;
  c.speculative.oracle = std::move(oracle);
  return c;
}


}  // namespace

TEST_CASE("speculative: greedy outputs equal no speculation for 64 prompts, K = 1, 2, 3", "[speculative]") {
  const auto prompts = random_prompts(64, 1, 40, 61);
  const int max_tokens = 9;
  const auto reference = run_greedy_engine(quiet_config(), prompts, max_tokens);
  const auto oracle = reference_oracle(prompts, reference);
  for (int32_t k : {1, 2, 3}) {
    INFO("K = " << k);
    // The model's own drafts (random weights: nearly all rejected) and drafts forced to agree half
    // the time, batched; forced drafts one sequence at a time.
    engine::EngineStats natural_stats, forced_stats;
    CHECK(run_greedy_engine(speculative_config(k), prompts, max_tokens, &natural_stats) == reference);
    CHECK(run_greedy_engine(speculative_config(k, 0.5, oracle), prompts, max_tokens, &forced_stats) == reference);
    engine::EngineConfig alone = speculative_config(k, 0.5, oracle);
    alone.scheduler.max_num_seqs = 1;
    CHECK(run_greedy_engine(alone, prompts, max_tokens) == reference);

    CHECK(natural_stats.spec_drafted_tokens > 0);
    REQUIRE(forced_stats.spec_drafted_per_position.size() == size_t(k));
    CHECK(forced_stats.spec_accepted_tokens > 0);
    CHECK(forced_stats.spec_accepted_tokens < forced_stats.spec_drafted_tokens);
    // Position 0 is drafted every verify step: accepted with probability 0.5 exactly.
    const double n0 = double(forced_stats.spec_drafted_per_position[0]);
    CHECK(std::abs(forced_stats.spec_acceptance_rate(0) - 0.5) < 4.0 * std::sqrt(0.25 / n0));
    CHECK(forced_stats.spec_mean_tokens_per_step() > 1.0);
    CHECK(forced_stats.generated_tokens == int64_t(prompts.size()) * max_tokens);
  }
}

TEST_CASE("speculative: drafts forced to always agree give 1 + K tokens per step", "[speculative]") {
  const auto prompts = random_prompts(8, 3, 20, 62);
  const int max_tokens = 13;  // 1 prefill token + 4 steps of 3
  const auto reference = run_greedy_engine(quiet_config(), prompts, max_tokens);
  engine::EngineStats stats;
  CHECK(run_greedy_engine(speculative_config(2, 1.0, reference_oracle(prompts, reference)), prompts, max_tokens,
                   &stats) == reference);
  CHECK(stats.spec_accepted_tokens == stats.spec_drafted_tokens);
  CHECK(stats.spec_mean_tokens_per_step() == Approx(3.0));
  engine::EngineStats never;
  CHECK(run_greedy_engine(speculative_config(2, 0.0, reference_oracle(prompts, reference)), prompts, max_tokens,
                   &never) == reference);
  CHECK(never.spec_accepted_tokens == 0);
  CHECK(never.spec_mean_tokens_per_step() == Approx(1.0));
}

TEST_CASE("speculative: many rejections, preemptions, chunking and a shared prefix free every block",
          "[speculative]") {
  auto prefix = random_prompts(1, 37, 37, 63)[0];  // 2 full blocks of 16 and a bit
  auto prompts = random_prompts(16, 2, 30, 64);
  for (size_t i = 0; i < prompts.size(); i += 2) prompts[i].insert(prompts[i].begin(), prefix.begin(), prefix.end());
  const int max_tokens = 14;
  const auto reference = run_greedy_engine(quiet_config(), prompts, max_tokens);
  for (int32_t k : {1, 3}) {  // chained and not
    INFO("K = " << k);
    engine::EngineConfig small = speculative_config(k, 0.3, reference_oracle(prompts, reference));
    small.num_kv_blocks = 12;  // 192 slots for 16 sequences of up to 81 tokens
    small.scheduler.max_num_batched_tokens = 24;
    engine::EngineStats stats;
    CHECK(run_greedy_engine(small, prompts, max_tokens, &stats) == reference);
    CHECK(stats.num_preemptions > 0);
    CHECK(stats.prefix_hit_tokens > 0);
    CHECK(stats.spec_drafted_tokens > stats.spec_accepted_tokens);
    CHECK(stats.spec_accepted_tokens > 0);
  }
}

TEST_CASE("speculative: aborts mid-generation free every block", "[speculative]") {
  auto engine = engine::Engine::create(tiny_model(), speculative_config(3));
  REQUIRE(engine.ok());
  auto requests = greedy_requests(random_prompts(6, 5, 30, 65), 200);
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) handles.push_back(std::move(engine->get()->submit(r)).value());
  for (auto& h : handles) REQUIRE(h.next(std::chrono::seconds(60)).has_value());
  handles.clear();
  check_all_blocks_free(**engine);
}

TEST_CASE("speculative: configuration errors", "[speculative]") {
  engine::EngineConfig bad = speculative_config(17);
  auto too_many = engine::Engine::create(tiny_model(), bad);
  REQUIRE_FALSE(too_many.ok());
  CHECK_THAT(too_many.error().message, Catch::Contains("num-speculative-tokens"));
  bad = speculative_config(1, 1.5);
  REQUIRE_FALSE(engine::Engine::create(tiny_model(), bad).ok());

  // The cache must also hold the reserved draft slots.
  engine::EngineConfig c = speculative_config(3);
  c.num_kv_blocks = 4;  // 64 slots
  auto engine = engine::Engine::create(tiny_model(), c);
  REQUIRE(engine.ok());
  engine::Request r;
  r.prompt_token_ids = {5, 6, 7};
  r.params.max_tokens = 60;  // 63 tokens + 3 reserved slots > 64
  auto too_big = (*engine)->submit(r);
  REQUIRE_FALSE(too_big.ok());
  CHECK_THAT(too_big.error().message, Catch::Contains("whole cache"));
}
