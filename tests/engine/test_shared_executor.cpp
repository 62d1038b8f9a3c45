// Engines created one after another on one ModelExecutor (Engine::create with an executor): each
// gives the outputs of a fresh engine although the cache still holds its predecessor's latents,
// and the errors: too few cache layers for speculation, another block size, more blocks than the
// executor has, and an executor a live engine still uses.
#include "engine/device_executor.h"
#include "engine_harness.h"

using namespace latentserve;
using namespace latentserve::testing;
namespace ds = models::deepseek_v3;

namespace {

std::shared_ptr<ds::ModelExecutor> shared_cpu_executor(int64_t layers, int64_t block_size, int64_t blocks) {
  ds::ExecutorConfig c;
  c.device = ds::Device::kCpu;
  c.num_cache_layers = layers;
  c.block_size = block_size;
  c.num_blocks = blocks;
  auto made = engine::make_executor(tiny_model(), c);
  if (!made.ok()) FAIL(made.error().message);
  return std::shared_ptr<ds::ModelExecutor>(std::move(made).value());
}

engine::EngineConfig speculative(int32_t k) {
  engine::EngineConfig c = quiet_config();
  c.speculative.num_speculative_tokens = k;
  return c;
}

// Runs the prompts greedily on a new engine over `executor`, which is released again on return.
std::vector<std::vector<int32_t>> run_on(std::shared_ptr<ds::ModelExecutor> executor, engine::EngineConfig config,
                                         const std::vector<std::vector<int32_t>>& prompts, int max_tokens,
                                         engine::EngineStats* stats) {
  auto engine = engine::Engine::create(tiny_model(), std::move(executor), std::move(config));
  if (!engine.ok()) FAIL(engine.error().message);
  auto results = run_all(**engine, greedy_requests(prompts, max_tokens));
  check_all_blocks_free(**engine);
  *stats = (*engine)->stats();
  return tokens_of(results);
}

}  // namespace

TEST_CASE("shared executor: engines one after another give the outputs of fresh engines", "[engine]") {
  const auto& model = tiny_model();
  REQUIRE(model.num_mtp_layers() > 0);
  auto executor = shared_cpu_executor(model.num_cache_layers_with_mtp(), 16, 256);
  // Awkward lengths that fill blocks partly and wholly; the second set overwrites the first's blocks.
  const auto first = random_prompts(12, 1, 45, 301);
  const auto second = random_prompts(12, 1, 45, 302);
  const int max_tokens = 11;

  engine::EngineStats stats;
  const auto a = run_on(executor, quiet_config(), first, max_tokens, &stats);
  CHECK(a == run_greedy_engine(quiet_config(), first, max_tokens));

  // Speculating, on the cache the first engine wrote, over other prompts.
  const auto b = run_on(executor, speculative(2), second, max_tokens, &stats);
  CHECK(b == run_greedy_engine(speculative(2), second, max_tokens));
  CHECK(b == run_greedy_engine(quiet_config(), second, max_tokens));
  CHECK(stats.spec_drafted_tokens > 0);

  // The first prompts again, on fewer blocks than the pool: the stale latents of the first engine
  // are never taken for a prefix (this engine's prefix cache starts empty).
  engine::EngineConfig smaller = quiet_config();
  smaller.num_kv_blocks = 64;
  const auto c = run_on(executor, smaller, first, max_tokens, &stats);
  CHECK(stats.num_blocks == 64);
  CHECK(stats.prefix_hit_tokens == 0);
  CHECK(c == a);
  CHECK(executor.use_count() == 1);  // every engine let go of it
}

TEST_CASE("shared executor: the errors name what does not fit", "[engine]") {
  const auto& model = tiny_model();
  auto main_only = shared_cpu_executor(model.num_cache_layers(), 16, 32);

  auto no_mtp_layer = engine::Engine::create(model, main_only, speculative(1));
  REQUIRE_FALSE(no_mtp_layer.ok());
  CHECK_THAT(no_mtp_layer.error().message,
             Catch::Contains("cache holds " + std::to_string(model.num_cache_layers()) + " layers") &&
                 Catch::Contains("MTP"));

  engine::EngineConfig other_block = quiet_config();
  other_block.block_size = 32;
  auto mismatch = engine::Engine::create(model, main_only, other_block);
  REQUIRE_FALSE(mismatch.ok());
  CHECK_THAT(mismatch.error().message, Catch::Contains("32") && Catch::Contains("block size"));

  engine::EngineConfig too_many = quiet_config();
  too_many.num_kv_blocks = 33;
  auto over = engine::Engine::create(model, main_only, too_many);
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(over.error().message, Catch::Contains("num_kv_blocks 33"));

  auto none = engine::Engine::create(model, nullptr, quiet_config());
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.error().message, Catch::Contains("no executor"));

  engine::EngineConfig fits = quiet_config();
  fits.num_kv_blocks.reset();  // the executor's whole pool
  {
    // The failures above claimed nothing: the executor is free.
    auto first = engine::Engine::create(model, main_only, fits);
    REQUIRE(first.ok());
    CHECK((*first)->stats().num_blocks == 32);
    auto second = engine::Engine::create(model, main_only, fits);
    REQUIRE_FALSE(second.ok());
    CHECK_THAT(second.error().message, Catch::Contains("in use"));
    // The refused engine released nothing: the first one still holds the executor.
    CHECK_FALSE(engine::Engine::create(model, main_only, fits).ok());
  }
  auto after = engine::Engine::create(model, main_only, fits);
  REQUIRE(after.ok());
  engine::Request r;
  r.prompt_token_ids = {5, 6, 7};
  r.params.max_tokens = 4;
  r.params.temperature = 0.0f;
  auto results = run_all(**after, {r});
  CHECK(results[0].completions.at(0).tokens.size() == 4);
}
