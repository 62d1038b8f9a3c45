// The CUDA ModelExecutor against the CPU Model on a 2-layer model of the lite preset (one dense and
// one MoE layer, DeepSeek-V2-Lite shapes: latent 512 + rope 64, so attention takes the
// tensor-core MLA kernel), in BF16 and FP8: a prefill of three prompts of different lengths in one
// batch, teacher-forced decode steps, then a mixed batch (a decode, a prefill continuing another
// sequence's first blocks, a fresh prompt). Prompts are fresh random token ids each run; logits are
// compared by relative L2 error per row and by top-1 where the CPU's top-2 margin is comfortable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "../models/model_harness.h"
#include "executor_test_util.h"

namespace {

using namespace latentserve;
using namespace latentserve::testing;
using namespace latentserve::test_executor;

constexpr int64_t kBlockSize = 32;  // prompts of 70 and 97 tokens span 3 and 4 blocks
constexpr int64_t kNumBlocks = 48;

// The CPU model and the GPU executor over caches of the test's geometry.
struct Pair : CpuGpuPair {
  explicit Pair(const Model& m) : CpuGpuPair(m, {m.num_cache_layers(), kBlockSize, kNumBlocks}) {}
};

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
