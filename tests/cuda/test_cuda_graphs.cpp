// CUDA-graph decode steps: an executor replaying graphs against one with graphs off, driven in
// lockstep over the same batches (fresh random prompts, then decode steps whose batch sizes pad
// to several buckets, one context crossing the captured block-table width so a bucket is
// re-captured). tiny-dsv3 exercises the generic MLA kernel, a 2-layer lite-preset model (BF16 and
// FP8) the tensor-core kernel with the fixed-shape plan. Also the host side: buckets, padding and
// the environment switch.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../models/model_harness.h"
#include "executor_test_util.h"
#include "models/cuda/cuda_executor.h"
#include "models/cuda/decode_graph.h"
#include "models/cuda/executor_state.h"

namespace {

using namespace latentserve;
using namespace latentserve::testing;
using namespace latentserve::test_executor;
namespace mc = latentserve::models::cuda;

constexpr int64_t kBlockSize = 16;
constexpr int64_t kBlocksPerSequence = 24;  // 384 tokens: room past the first captured width (256)
constexpr int64_t kSequences = 6;
constexpr int64_t kNumBlocks = kSequences * kBlocksPerSequence + 5;

std::unique_ptr<dsv3::ModelExecutor> executor(const Model& model, bool graphs) {
  mc::DecodeGraphOptions options;
  options.enabled = graphs;
  options.buckets = {1, 2, 4, 8};
  return cuda_executor(model, {model.num_cache_layers(), kBlockSize, kNumBlocks}, options);
}

// Rows of [rows, n] within `tol` relative L2 of each other, and no value that is not finite.
void compare_finite_rows(const std::vector<float>& got, const std::vector<float>& want, int64_t n, double tol,
                  const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (int64_t r = 0; r < int64_t(want.size()) / n; ++r) {
    const float* g = got.data() + r * n;
    INFO(what << " row " << r);
    CHECK(std::all_of(g, g + n, [](float v) { return std::isfinite(v); }));
    CHECK(relative_l2(g, want.data() + r * n, n) <= tol);
  }
}

struct Seq {
  std::vector<int32_t> table;
  int32_t cached = 0;
  int32_t next = 0;  // the token the next decode step feeds
  // The blocks holding `tokens` tokens: tables grow with the context, as the engine's do.
  std::vector<int32_t> blocks(int64_t tokens) const {
    return {table.begin(), table.begin() + (tokens + kBlockSize - 1) / kBlockSize};
  }
};

// Prefills kSequences random prompts (one of them long) on both executors, then runs decode steps
// over the first n sequences for each n in `sizes`, feeding the eager executor's greedy tokens to
// both and comparing every step's logits and hidden rows.
void run_lockstep(const Model& model, const std::vector<int>& sizes, double tol) {
  const int64_t V = model.config().vocab_size, H = model.config().hidden_size;
  auto eager = executor(model, false);
  auto graph = executor(model, true);
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int32_t> token(1, int32_t(V) - 1);
  std::vector<Seq> seqs(kSequences);
  Batch prefill;
  for (int64_t s = 0; s < kSequences; ++s) {
    // Blocks of each sequence interleaved with the others' so no table is contiguous.
    for (int64_t b = 0; b < kBlocksPerSequence; ++b) seqs[size_t(s)].table.push_back(int32_t(b * kSequences + s));
    const int32_t len = s == 0 ? 250 : 3 + int32_t(rng() % 40);
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = token(rng);
    models::append_sequence(prefill, p, 0, seqs[size_t(s)].blocks(len), kBlockSize, true);
    seqs[size_t(s)].cached = len;
  }
  auto want = eager->forward(prefill);
  auto got = graph->forward(prefill);
  REQUIRE(want.ok());
  REQUIRE(got.ok());
  compare_finite_rows(got->logits, want->logits, V, tol, "prefill logits");
  for (int64_t s = 0; s < kSequences; ++s) seqs[size_t(s)].next = argmax(want->logits.data() + s * V, V);

  int step = 0;
  for (int n : sizes) {
    Batch b;
    for (int s = 0; s < n; ++s) {
      Seq& q = seqs[size_t(s)];
      models::append_sequence(b, {q.next}, q.cached, q.blocks(q.cached + 1), kBlockSize, true);
    }
    auto w = eager->forward(b);
    auto g = graph->forward(b);
    if (!w.ok()) FAIL("eager: " << w.error().message);
    if (!g.ok()) FAIL("graph: " << g.error().message);
    const std::string what = "step " + std::to_string(step++) + " (" + std::to_string(n) + " sequences)";
    REQUIRE(g->logits.size() == size_t(n * V));
    REQUIRE(g->hidden.size() == size_t(n * H));
    compare_finite_rows(g->logits, w->logits, V, tol, what + " logits");
    compare_finite_rows(g->hidden, w->hidden, H, tol, what + " hidden");
    for (int s = 0; s < n; ++s) {
      seqs[size_t(s)].cached += 1;
      seqs[size_t(s)].next = argmax(w->logits.data() + s * V, V);
    }
  }
  const auto* cuda = dynamic_cast<const mc::CudaExecutor*>(graph.get());
  REQUIRE(cuda != nullptr);
  INFO(graph->description());
  CHECK(cuda->graph_replays() > 0);
  CHECK(dynamic_cast<const mc::CudaExecutor*>(eager.get())->graph_replays() == 0);
}

// Buckets 1, 4, 8 and 2 each see a warm-up run, a capture and replays; sequence 0 (250 cached)
// crosses 256 tokens, the first captured table width, during the steps.
// Both sides keep activations in BF16; matmuls of the padded batch may pick other cuBLASLt
// algorithms and the fixed MLA plan other splits, so rows agree to rounding, not bit for bit.
constexpr double kTol = 0.05;

const std::vector<int> kSizes = {1, 1, 1, 3, 4, 3, 5, 6, 5, 2, 2, 2, 1, 3, 6, 1, 1, 1, 1, 1, 1, 4, 4};

}  // namespace

TEST_CASE("CUDA graphs: buckets, padding and the environment switch", "[cuda][graphs]") {
  const std::vector<int64_t> buckets = {1, 2, 4, 8};
  CHECK(mc::decode_bucket(buckets, 1) == 1);
  CHECK(mc::decode_bucket(buckets, 3) == 4);
  CHECK(mc::decode_bucket(buckets, 8) == 8);
  CHECK(mc::decode_bucket(buckets, 9) == 0);
  CHECK(mc::graph_table_stride(1) == 16);
  CHECK(mc::graph_table_stride(17) == 32);
  CHECK(!mc::check_decode_graph_options({true, {1, 4, 4}}).ok());
  CHECK(!mc::check_decode_graph_options({true, {0, 2}}).ok());

  Batch b;
  models::append_sequence(b, {7}, 20, {3, 5}, kBlockSize, true);
  models::append_sequence(b, {9}, 2, {4}, kBlockSize, false);
  REQUIRE(b.validate(1000, 10, kBlockSize).ok());
  CHECK(mc::is_plain_decode(b));
  const Batch p = mc::pad_decode_batch(b, 4, 10, kBlockSize);
  CHECK(p.validate(1000, 11, kBlockSize).ok());
  CHECK(p.num_tokens() == 4);
  CHECK(p.sequences.size() == 4);
  CHECK(p.logit_rows.size() == 4);
  CHECK(p.logit_rows[0] == b.logit_rows[0]);
  CHECK(p.slot_mapping[3] == 10 * kBlockSize);
  Batch prefill;
  models::append_sequence(prefill, {1, 2}, 0, {0}, kBlockSize, true);
  CHECK(!mc::is_plain_decode(prefill));

  ::setenv("LATENTSERVE_CUDA_GRAPHS", "0", 1);
  CHECK(!mc::decode_graph_options_from_env().enabled);
  ::unsetenv("LATENTSERVE_CUDA_GRAPHS");
  CHECK(mc::decode_graph_options_from_env().enabled);
}

TEST_CASE("CUDA graphs: replayed decode steps match eager ones (tiny-dsv3, generic MLA kernel)",
          "[cuda][graphs][executor]") {
  run_lockstep(cached_model(tiny_dir()), kSizes, kTol);
}

TEST_CASE("CUDA graphs: replayed decode steps match eager ones (lite shapes, BF16 and FP8)",
          "[cuda][graphs][executor]") {
  run_lockstep(lite_model(false), kSizes, kTol);
  run_lockstep(lite_model(true), kSizes, kTol);
}
