// The ModelExecutor layer: parse_device, the CPU executor against Model::forward / mtp_forward on
// the same batches (a prefill, then a decode over the cache it wrote), its sizing and errors, and
// make_executor's choice of device (asking for CUDA without a GPU is an error, never a crash).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/device_executor.h"
#include "engine_harness.h"
#include "models/latent_cache.h"

using namespace latentserve;
using namespace latentserve::testing;
namespace ds = models::deepseek_v3;

namespace {

ds::ExecutorConfig cpu_config(int64_t layers, int64_t block_size, int64_t blocks) {
  ds::ExecutorConfig c;
  c.device = ds::Device::kCpu;
  c.num_cache_layers = layers;
  c.block_size = block_size;
  c.num_blocks = blocks;
  return c;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  REQUIRE_FALSE(want.empty());
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE(std::isfinite(got[i]));
    worst = std::max(worst, std::abs(double(got[i]) - double(want[i])) / (1.0 + std::abs(double(want[i]))));
  }
  CHECK(worst <= 1e-5);
}

// Sequences of awkward lengths over shuffled, disjoint blocks; every row asks for logits so the
// comparison covers all of them.
struct RandomBatches {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> tables;
  models::Batch prefill, decode;

  RandomBatches(uint32_t seed, int64_t vocab, int64_t block_size, int64_t num_blocks) {
    std::mt19937 rng(seed);
    const int lengths[] = {7, 19, 33};
    std::vector<int32_t> pool(static_cast<size_t>(num_blocks));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    std::uniform_int_distribution<int32_t> token(0, int32_t(vocab) - 1);
    for (int len : lengths) {
      std::vector<int32_t> p(static_cast<size_t>(len));
      for (auto& t : p) t = token(rng);
      const int64_t need = (len + 2 + block_size - 1) / block_size;  // +1 decode, +1 MTP slot
      std::vector<int32_t> table(pool.end() - need, pool.end());
      pool.resize(pool.size() - size_t(need));
      models::append_sequence(prefill, p, 0, table, block_size, false);
      models::append_sequence(decode, {token(rng)}, len, table, block_size, true);
      prompts.push_back(std::move(p));
      tables.push_back(std::move(table));
    }
    prefill.logit_rows.resize(size_t(prefill.num_tokens()));
    std::iota(prefill.logit_rows.begin(), prefill.logit_rows.end(), 0);
  }
};

}  // namespace

TEST_CASE("parse_device accepts cpu, cuda and auto and names them back", "[executor]") {
  for (ds::Device d : {ds::Device::kCpu, ds::Device::kCuda, ds::Device::kAuto}) {
    auto parsed = ds::parse_device(ds::device_name(d));
    REQUIRE(parsed.ok());
    CHECK(*parsed == d);
  }
  for (const char* bad : {"bogus", "", "CPU", "gpu", "cuda:0", " cpu"}) {
    INFO(bad);
    auto parsed = ds::parse_device(bad);
    REQUIRE_FALSE(parsed.ok());
    std::string quoted = "'";
    quoted.append(bad).append("'");
    CHECK_THAT(parsed.error().message, Catch::Contains("cpu, cuda, auto") && Catch::Contains(quoted));
  }
}

TEST_CASE("the CPU executor gives Model::forward's logits and hidden states", "[executor]") {
  const auto& model = tiny_model();
  const auto& cfg = model.config();
  const int64_t bs = 5, blocks = 40;
  auto executor = ds::make_cpu_executor(model, cpu_config(model.num_cache_layers(), bs, blocks));
  REQUIRE(executor.ok());
  CHECK((*executor)->description() == "cpu");
  CHECK((*executor)->num_blocks() == blocks);
  CHECK((*executor)->block_size() == bs);
  CHECK((*executor)->cache_bytes() ==
        blocks * models::LatentCacheStorage::bytes_per_block(cfg, model.num_cache_layers(), bs));
  auto cache = models::LatentCacheStorage::allocate(cfg, model.num_cache_layers(), blocks, bs);
  REQUIRE(cache.ok());

  const RandomBatches b(std::random_device{}(), cfg.vocab_size, bs, blocks);
  for (const models::Batch* batch : {&b.prefill, &b.decode}) {  // the decode reads the prefill's cache
    auto got = (*executor)->forward(*batch);
    auto want = model.forward(*batch, *cache);
    REQUIRE(got.ok());
    REQUIRE(want.ok());
    CHECK(got->logits.size() == batch->logit_rows.size() * size_t(cfg.vocab_size));
    check_close(got->logits, want->logits, "logits");
    check_close(got->hidden, want->hidden, "hidden");
  }

  models::Batch bad = b.decode;
  bad.token_ids[0] = int32_t(cfg.vocab_size);
  CHECK_FALSE((*executor)->forward(bad).ok());
}

TEST_CASE("the CPU executor's MTP forward equals Model::mtp_forward", "[executor]") {
  const auto& model = tiny_model();
  const auto& cfg = model.config();
  REQUIRE(model.num_mtp_layers() > 0);
  const int64_t bs = 4, blocks = 48, layers = model.num_cache_layers_with_mtp();
  auto executor = ds::make_cpu_executor(model, cpu_config(layers, bs, blocks));
  REQUIRE(executor.ok());
  auto cache = models::LatentCacheStorage::allocate(cfg, layers, blocks, bs);
  REQUIRE(cache.ok());

  const RandomBatches b(std::random_device{}(), cfg.vocab_size, bs, blocks);
  auto main_out = (*executor)->forward(b.prefill);
  REQUIRE(main_out.ok());
  REQUIRE(model.forward(b.prefill, *cache).ok());
  // MTP position i reads h_i and the token at i + 1 (as the engine builds it).
  models::Batch mtp;
  std::vector<float> hidden;
  const int64_t H = cfg.hidden_size;
  for (size_t s = 0; s < b.prompts.size(); ++s) {
    const auto& p = b.prompts[s];
    const int32_t start = b.prefill.sequences[s].query_start;
    hidden.insert(hidden.end(), main_out->hidden.begin() + start * H,
                  main_out->hidden.begin() + (start + int64_t(p.size()) - 1) * H);
    models::append_sequence(mtp, std::vector<int32_t>(p.begin() + 1, p.end()), 0, b.tables[s], bs, true);
  }
  auto got = (*executor)->mtp_forward(mtp, hidden, 0);
  auto want = model.mtp_forward(mtp, hidden, *cache, 0);
  REQUIRE(got.ok());
  REQUIRE(want.ok());
  check_close(got->logits, want->logits, "mtp logits");
  check_close(got->hidden, want->hidden, "mtp hidden");
  CHECK_FALSE((*executor)->mtp_forward(mtp, hidden, model.num_mtp_layers()).ok());
}

TEST_CASE("the CPU executor sizes its pool and refuses what cannot work", "[executor]") {
  const auto& model = tiny_model();
  const int64_t layers = model.num_cache_layers();
  const int64_t per_block = models::LatentCacheStorage::bytes_per_block(model.config(), layers, 16);

  ds::ExecutorConfig by_memory = cpu_config(layers, 16, 0);
  by_memory.num_blocks.reset();
  by_memory.cache_memory = 7 * per_block + per_block / 2;
  auto sized = ds::make_cpu_executor(model, by_memory);
  REQUIRE(sized.ok());
  CHECK((*sized)->num_blocks() == 7);

  by_memory.num_blocks = 3;  // an exact count overrides the memory
  auto exact = ds::make_cpu_executor(model, by_memory);
  REQUIRE(exact.ok());
  CHECK((*exact)->num_blocks() == 3);

  ds::ExecutorConfig tiny_memory = cpu_config(layers, 16, 0);
  tiny_memory.num_blocks.reset();
  tiny_memory.cache_memory = per_block - 1;
  auto none = ds::make_cpu_executor(model, tiny_memory);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(none.error().message, Catch::Contains("no block"));

  CHECK_FALSE(ds::make_cpu_executor(model, cpu_config(layers, 16, 0)).ok());
  CHECK_FALSE(ds::make_cpu_executor(model, cpu_config(layers, 0, 4)).ok());
  auto too_many_layers = ds::make_cpu_executor(model, cpu_config(model.num_cache_layers_with_mtp() + 1, 16, 4));
  REQUIRE_FALSE(too_many_layers.ok());
  CHECK_THAT(too_many_layers.error().message, Catch::Contains("num_cache_layers"));
  CHECK_FALSE(ds::make_cpu_executor(model, cpu_config(0, 16, 4)).ok());
}

TEST_CASE("make_executor: cpu runs on the CPU, cuda without a GPU is an error, auto falls to the CPU",
          "[executor]") {
  const auto& model = tiny_model();
  ds::ExecutorConfig c = cpu_config(model.num_cache_layers(), 16, 8);
  auto cpu = engine::make_executor(model, c);
  REQUIRE(cpu.ok());
  CHECK((*cpu)->description() == "cpu");

  c.device = ds::Device::kCuda;
  auto cuda = engine::make_executor(model, c);
  c.device = ds::Device::kAuto;
  auto automatic = engine::make_executor(model, c);
  if (engine::cuda_device_present()) {
    WARN("a CUDA device is present: checking that cuda and auto both run there");
    REQUIRE(cuda.ok());
    CHECK_THAT((*cuda)->description(), Catch::StartsWith("cuda"));
    REQUIRE(automatic.ok());
    CHECK_THAT((*automatic)->description(), Catch::StartsWith("cuda"));
    return;
  }
  REQUIRE_FALSE(cuda.ok());
  CHECK_THAT(cuda.error().message, Catch::Contains("cuda") && Catch::Contains("--device cpu"));
  if (!engine::built_with_cuda_executor()) CHECK_THAT(cuda.error().message, Catch::Contains("without nvcc"));
  REQUIRE(automatic.ok());
  CHECK((*automatic)->description() == "cpu");
}

TEST_CASE("an engine asked for CUDA on a machine without it fails to start with the reason", "[executor]") {
  if (engine::cuda_device_present()) {
    WARN("skipped: a CUDA device is present");
    return;
  }
  engine::EngineConfig config = quiet_config();
  config.device = ds::Device::kCuda;
  auto e = engine::Engine::create(tiny_model(), config);
  REQUIRE_FALSE(e.ok());
  CHECK_THAT(e.error().message, Catch::Contains("cuda"));

  config.device = ds::Device::kAuto;
  auto automatic = engine::Engine::create(tiny_model(), config);
  REQUIRE(automatic.ok());
  CHECK((*automatic)->stats().device == "cpu");
  CHECK((*automatic)->stats().num_blocks == 256);
}
