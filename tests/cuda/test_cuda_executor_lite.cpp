// The CUDA ModelExecutor against the CPU Model on a 2-layer model of the lite preset (one dense and
// one MoE layer, DeepSeek-V2-Lite shapes: latent 512 + rope 64, so attention takes the
// tensor-core MLA kernel), in BF16 and FP8: a prefill of three prompts of different lengths in one
// batch, teacher-forced decode steps, then a mixed batch (a decode, a prefill continuing another
// sequence's first blocks, a fresh prompt). Prompts are fresh random token ids each run; logits are
// compared by relative L2 error per row and by top-1 where the CPU's top-2 margin is comfortable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "../models/model_harness.h"
#include "models/cuda/cuda_executor.h"
#include "models/make_model.h"

namespace {

using namespace latentserve;
using namespace latentserve::testing;
namespace dsv3 = latentserve::models::deepseek_v3;
namespace fs = std::filesystem;

constexpr int64_t kBlockSize = 32;  // prompts of 70 and 97 tokens span 3 and 4 blocks
constexpr int64_t kNumBlocks = 48;

// The lite preset cut to 2 layers, made once per process; the files are removed once mapped.
const Model& lite_model(bool fp8) {
  static std::map<bool, std::unique_ptr<Model>> models;
  auto it = models.find(fp8);
  if (it != models.end()) return *it->second;
  const std::string dir = (fs::temp_directory_path() / ("latentserve-cuda-lite-" + std::string(fp8 ? "fp8-" : "bf16-") +
                                                        std::to_string(::getpid()))).string();
  models::MakeModelOptions m;
  m.preset = "lite";
  m.out_dir = dir;
  m.seed = std::random_device{}();
  m.fp8 = fp8;
  m.num_layers = 2;
  INFO("seed " << m.seed);
  const Status made = models::make_model(m);
  if (!made.ok()) FAIL(made.error().message);
  auto loaded = Model::load(dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!loaded.ok()) FAIL(loaded.error().message);
  REQUIRE((*loaded)->config().kv_lora_rank == 512);
  REQUIRE((*loaded)->config().qk_rope_head_dim == 64);
  REQUIRE((*loaded)->weights().layers.size() == 2);
  REQUIRE((*loaded)->weights().layers[0].mlp.has_value());
  REQUIRE((*loaded)->weights().layers[1].moe.has_value());
  return *models.emplace(fp8, std::move(loaded).value()).first->second;
}

// The CPU model and the GPU executor driven in lockstep over caches with the same geometry.
struct Pair {
  const Model& model;
  std::unique_ptr<dsv3::ModelExecutor> gpu;
  LatentCacheStorage cpu_cache;

  explicit Pair(const Model& m) : model(m), cpu_cache(allocate(m)) {
    dsv3::ExecutorConfig config;
    config.device = dsv3::Device::kCuda;
    config.num_cache_layers = m.num_cache_layers();
    config.block_size = kBlockSize;
    config.num_blocks = kNumBlocks;
    auto e = latentserve::models::cuda::make_cuda_executor(m, config);
    if (!e.ok()) FAIL(e.error().message);
    gpu = std::move(e).value();
  }
  static LatentCacheStorage allocate(const Model& m) {
    auto c = LatentCacheStorage::allocate(m.config(), m.num_cache_layers(), kNumBlocks, kBlockSize);
    REQUIRE(c.ok());
    return std::move(c).value();
  }
  std::pair<dsv3::ForwardOutput, dsv3::ForwardOutput> forward(const Batch& b) {
    auto cpu = model.forward(b, cpu_cache);
    if (!cpu.ok()) FAIL("CPU: " << cpu.error().message);
    auto gpu_out = gpu->forward(b);
    if (!gpu_out.ok()) FAIL("GPU: " << gpu_out.error().message);
    return {std::move(cpu).value(), std::move(gpu_out).value()};
  }
};

double relative_l2(const float* got, const float* want, int64_t n) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

double top2_margin(const float* v, int64_t n) {
  std::vector<float> s(v, v + n);
  std::partial_sort(s.begin(), s.begin() + 2, s.end(), std::greater<float>());
  return double(s[0] - s[1]);
}

struct Tolerance {
  double row;     // relative L2 error per row
  double margin;  // top-1 must agree where the CPU's top-2 margin is at least this
};

void compare_rows(const std::vector<float>& got, const std::vector<float>& want, int64_t n, const Tolerance& tol,
                  const std::string& what) {
  REQUIRE(got.size() == want.size());
  REQUIRE(!want.empty());
  const int64_t rows = int64_t(want.size()) / n;
  double worst = 0.0;
  int64_t compared_top1 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * n;
    const float* w = want.data() + r * n;
    const double err = relative_l2(g, w, n);
    worst = std::max(worst, err);
    INFO(what << " row " << r << " relative L2 error " << err);
    CHECK(err <= tol.row);
    if (top2_margin(w, n) >= tol.margin) {
      ++compared_top1;
      CHECK(argmax(g, n) == argmax(w, n));
    }
  }
  WARN(what << ": worst relative L2 error " << worst << " over " << rows << " rows, top-1 compared on "
            << compared_top1);
}

std::vector<int32_t> random_tokens(size_t n, int64_t vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> pick(2, int32_t(vocab) - 1);
  std::vector<int32_t> t(n);
  for (int32_t& v : t) v = pick(rng);
  return t;
}

// Blocks handed out in a scrambled order so paging is really exercised.
std::vector<int32_t> table(std::initializer_list<int32_t> blocks) { return blocks; }

// The CPU's greedy token after row `r` of a forward's logits.
int32_t next_token(const dsv3::ForwardOutput& out, int64_t r, int64_t vocab) {
  return argmax(out.logits.data() + r * vocab, vocab);
}

void run_lite_flow(const Model& model, const Tolerance& tol, const std::string& name) {
  const int64_t V = model.config().vocab_size, H = model.config().hidden_size;
  std::mt19937 rng(std::random_device{}());
  Pair pair(model);
  INFO(pair.gpu->description());

  // A: 5 tokens, B: 97 tokens, C: 70 tokens, all prefilled in one batch.
  std::vector<std::vector<int32_t>> seqs = {random_tokens(5, V, rng), random_tokens(97, V, rng),
                                            random_tokens(70, V, rng)};
  const std::vector<std::vector<int32_t>> tables = {table({17, 3}), table({9, 30, 2, 41, 11}),
                                                    table({25, 6, 38, 14})};
  Batch prefill;
  for (size_t s = 0; s < seqs.size(); ++s) {
    models::append_sequence(prefill, seqs[s], 0, tables[s], kBlockSize, true);
  }
  prefill.logit_rows.insert(prefill.logit_rows.begin(), {1, 40, 120});  // middle rows of A, B, C
  std::sort(prefill.logit_rows.begin(), prefill.logit_rows.end());
  auto [cpu0, gpu0] = pair.forward(prefill);
  compare_rows(gpu0.logits, cpu0.logits, V, tol, name + " prefill logits");
  compare_rows(gpu0.hidden, cpu0.hidden, H, {tol.row, 1e30}, name + " prefill hidden");

  // Teacher-forced decoding: every sequence gets the CPU's greedy token, whatever the GPU chose.
  std::vector<int32_t> last(3);
  for (size_t s = 0; s < 3; ++s) {
    const auto at = std::find(prefill.logit_rows.begin(), prefill.logit_rows.end(),
                              prefill.sequences[s].query_start + prefill.sequences[s].query_len - 1);
    last[s] = next_token(cpu0, at - prefill.logit_rows.begin(), V);
  }
  for (int step = 0; step < 4; ++step) {
    Batch d;
    for (size_t s = 0; s < 3; ++s) {
      models::append_sequence(d, {last[s]}, int32_t(seqs[s].size()), tables[s], kBlockSize, true);
      seqs[s].push_back(last[s]);
    }
    auto [cpu, gpu] = pair.forward(d);
    compare_rows(gpu.logits, cpu.logits, V, tol, name + " decode step " + std::to_string(step));
    for (size_t s = 0; s < 3; ++s) last[s] = next_token(cpu, int64_t(s), V);
  }

  // Mixed: A decodes; D shares B's first two blocks (64 tokens) and prefills 9 more; E is fresh.
  const std::vector<int32_t> d_table = {9, 30, 44, 45};
  const std::vector<int32_t> d_new = random_tokens(9, V, rng);
  const std::vector<int32_t> e = random_tokens(33, V, rng);
  Batch mixed;
  models::append_sequence(mixed, {last[0]}, int32_t(seqs[0].size()), tables[0], kBlockSize, true);
  models::append_sequence(mixed, d_new, 64, d_table, kBlockSize, true);
  models::append_sequence(mixed, e, 0, table({20, 21}), kBlockSize, true);
  mixed.logit_rows.push_back(4);  // a middle row of D as well
  std::sort(mixed.logit_rows.begin(), mixed.logit_rows.end());
  auto [cpu1, gpu1] = pair.forward(mixed);
  compare_rows(gpu1.logits, cpu1.logits, V, tol, name + " mixed batch");
}

}  // namespace

TEST_CASE("CUDA executor on a 2-layer lite model (tensor-core MLA): BF16 matches the CPU model",
          "[cuda][executor][model][lite]") {
  run_lite_flow(lite_model(false), {0.05, 0.5}, "BF16");
}

TEST_CASE("CUDA executor on a 2-layer lite model (tensor-core MLA): FP8 matches the CPU model on the same weights",
          "[cuda][executor][model][lite][fp8]") {
  // The block-scaled path also quantizes activations per token to FP8: a wider tolerance.
  run_lite_flow(lite_model(true), {0.15, 1.0}, "FP8");
}
