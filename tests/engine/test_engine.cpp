// The engine end to end on the tiny-dsv3 model: batching, chunked prefill, prefix caching and
// preemption never change greedy outputs; aborts and finishes free every block.
#include "engine/greedy_generator.h"
#include "engine_harness.h"

using namespace latentserve;
using namespace latentserve::testing;

TEST_CASE("engine: 32 prompts batched equal one at a time and the unbatched generator", "[engine]") {
  const auto prompts = random_prompts(32, 1, 40, 11);
  const int max_tokens = 6;
  engine::EngineConfig one = quiet_config();
  one.scheduler.max_num_seqs = 1;
  const auto alone = run_greedy_engine(one, prompts, max_tokens);
  const auto together = run_greedy_engine(quiet_config(), prompts, max_tokens);
  CHECK(alone == together);

  engine::GreedyGenerator baseline(tiny_model(), 16);
  for (size_t i = 0; i < prompts.size(); ++i) {
    engine::GreedyRequest r;
    r.prompt_token_ids = prompts[i];
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    auto g = baseline.generate(r);
    REQUIRE(g.ok());
    INFO("prompt " << i);
    CHECK(g->token_ids == together[i]);
  }
}

TEST_CASE("engine: chunked prefill gives the same outputs", "[engine]") {
  const auto prompts = random_prompts(12, 20, 70, 12);
  engine::EngineConfig chunked = quiet_config();
  chunked.scheduler.max_num_batched_tokens = 16;
  CHECK(run_greedy_engine(chunked, prompts, 5) == run_greedy_engine(quiet_config(), prompts, 5));
}

TEST_CASE("engine: prefix cache on and off agree, and a shared prefix is computed once", "[engine]") {
  // 8 prompts sharing a 48-token prefix (3 blocks of 16), each with its own tail.
  auto prefix = random_prompts(1, 48, 48, 13)[0];
  auto tails = random_prompts(8, 3, 9, 14);
  std::vector<std::vector<int32_t>> prompts;
  int64_t total_prompt = 0;
  for (const auto& t : tails) {
    auto p = prefix;
    p.insert(p.end(), t.begin(), t.end());
    total_prompt += int64_t(p.size());
    prompts.push_back(p);
  }
  engine::EngineConfig off = quiet_config();
  off.enable_prefix_cache = false;
  engine::EngineStats off_stats, on_stats;
  const auto without = run_greedy_engine(off, prompts, 4, &off_stats);

  // With the cache on, run the first prompt alone, then the rest: they reuse its prefix blocks.
  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  auto first = run_all(**engine, greedy_requests({prompts[0]}, 4));
  std::vector<std::vector<int32_t>> rest(prompts.begin() + 1, prompts.end());
  auto others = run_all(**engine, greedy_requests(rest, 4));
  check_all_blocks_free(**engine);
  on_stats = (*engine)->stats();

  CHECK(first[0].completions.at(0).tokens == without[0]);
  for (size_t i = 0; i < rest.size(); ++i) {
    CHECK(others[i].completions.at(0).tokens == without[i + 1]);
    CHECK(others[i].usage.cached_tokens == 48);
  }
  CHECK(first[0].usage.cached_tokens == 0);
  CHECK(off_stats.prompt_tokens == total_prompt);
  CHECK(on_stats.prompt_tokens == total_prompt - 48 * int64_t(rest.size()));
  CHECK(on_stats.prefix_hit_tokens == 48 * int64_t(rest.size()));
}

TEST_CASE("engine: preemption with a tiny cache gives the same outputs", "[engine]") {
  const auto prompts = random_prompts(10, 10, 40, 15);
  engine::EngineConfig small = quiet_config();
  small.num_kv_blocks = 8;  // 128 tokens for 10 sequences of up to 52 tokens
  engine::EngineStats stats;
  const auto squeezed = run_greedy_engine(small, prompts, 12, &stats);
  CHECK(stats.num_preemptions > 0);
  CHECK(squeezed == run_greedy_engine(quiet_config(), prompts, 12));
}

TEST_CASE("engine: aborting mid-generation frees every block", "[engine]") {
  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  auto requests = greedy_requests(random_prompts(6, 5, 30, 16), 200);
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) handles.push_back(std::move(engine->get()->submit(r)).value());
  // Read a first output from each, then abort half explicitly and drop the rest.
  for (auto& h : handles) REQUIRE(h.next(std::chrono::seconds(60)).has_value());
  for (size_t i = 0; i < 3; ++i) {
    handles[i].abort();
    bool aborted = false;
    while (auto out = handles[i].next(std::chrono::seconds(60))) {
      if (out->request_finished) {
        aborted = out->finish_reason == engine::FinishReason::kAbort;
        break;
      }
    }
    CHECK(aborted);
  }
  handles.clear();
  check_all_blocks_free(**engine);
}

TEST_CASE("engine: invalid requests are rejected at submit", "[engine]") {
  engine::EngineConfig c = quiet_config();
  c.num_kv_blocks = 4;  // 64 tokens
  auto engine = engine::Engine::create(tiny_model(), c);
  REQUIRE(engine.ok());
  engine::Request r;
  r.prompt_token_ids = {5, 6, 7};
  r.params.max_tokens = 100;
  auto too_big = (*engine)->submit(r);
  REQUIRE_FALSE(too_big.ok());
  CHECK_THAT(too_big.error().message, Catch::Contains("whole cache"));

  r.params.max_tokens = 5000;
  auto too_long = (*engine)->submit(r);
  REQUIRE_FALSE(too_long.ok());
  CHECK_THAT(too_long.error().message, Catch::Contains("5000") && Catch::Contains("4096"));

  r.params.max_tokens = 4;
  r.prompt_token_ids = {5, 1024};
  auto bad_id = (*engine)->submit(r);
  REQUIRE_FALSE(bad_id.ok());
  CHECK_THAT(bad_id.error().message, Catch::Contains("vocabulary"));

  r.prompt_token_ids = {5};
  r.params.stop = {"x"};
  auto no_tokenizer = (*engine)->submit(r);
  REQUIRE_FALSE(no_tokenizer.ok());
  CHECK_THAT(no_tokenizer.error().message, Catch::Contains("stop strings"));

  r.params.stop.clear();
  r.params.temperature = -1;
  auto bad_temp = (*engine)->submit(r);
  REQUIRE_FALSE(bad_temp.ok());
  CHECK_THAT(bad_temp.error().message, Catch::Contains("temperature"));
  check_all_blocks_free(**engine);
}

TEST_CASE("engine: alive while its loop runs", "[engine]") {
  auto engine = engine::Engine::create(tiny_model(), quiet_config());
  REQUIRE(engine.ok());
  CHECK((*engine)->alive());
  auto results = run_all(**engine, greedy_requests(random_prompts(2, 3, 5, 17), 2));
  CHECK((*engine)->alive());
}
