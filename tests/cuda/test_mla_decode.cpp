// The CUDA MLA attention (absorbed form, paged BF16 cache) against the CPU reference
// mla_attention_absorbed_reference on random inputs: head counts 1, 3, 16, 128; contexts around
// the 64-token tile (1, 63, 64, 65) and long (4097); shuffled block tables; several sequences of
// different lengths; q_len 1 and > 1 (speculative verification, prefill with a cached prefix);
// no split, one cache tile per split, and the automatic plan; F32 and BF16 output; decode through
// the fixed-shape plan (mla_fixed_plan.h) with one, few and many splits, empty ones included.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cuda/mla_decode.h"
#include "kernels/cuda/mla_fixed_plan.h"
#include "kernels/cuda/mla_plan.h"
#include "cuda_test_util.h"

namespace {

using latentserve::DType;
using namespace latentserve::test_cuda;
namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;

constexpr int64_t kRank = 512, kRope = 64, kTokenDim = kRank + kRope;
constexpr int kNoSplit = 1 << 20;  // tiles_per_split longer than any context

struct Case {
  int64_t heads;
  std::vector<std::pair<int32_t, int32_t>> seqs;  // (query_len, context_len)
  int64_t block_size = 64;
  int tiles_per_split = 0;  // 0: automatic
  DType out_dtype = DType::F32;
  int fixed_splits = 0;  // > 0: the fixed-shape decode plan (mla_fixed_plan.h) with this many splits
};

// Physical blocks for every sequence, shuffled so no table is contiguous or in order.
std::vector<int32_t> shuffled_tables(const Case& c, int64_t stride, int64_t& num_blocks,
                                     std::mt19937& rng) {
  num_blocks = 3;  // a few blocks nobody uses
  for (auto [q, ctx] : c.seqs) num_blocks += (ctx + c.block_size - 1) / c.block_size;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::vector<int32_t> tables(c.seqs.size() * size_t(stride), -1);
  size_t next = 0;
  for (size_t s = 0; s < c.seqs.size(); ++s) {
    const int64_t n = (c.seqs[s].second + c.block_size - 1) / c.block_size;
    for (int64_t b = 0; b < n; ++b) tables[s * size_t(stride) + size_t(b)] = ids[next++];
  }
  return tables;
}

void run_case(const Case& c, std::mt19937& rng) {
  CAPTURE(c.heads, c.block_size, c.tiles_per_split, latentserve::dtype_name(c.out_dtype));
  std::string lengths;  // (query_len, context_len) per sequence
  for (auto [q, ctx] : c.seqs) {
    lengths.append(1, '(').append(std::to_string(q)).append(1, ',').append(std::to_string(ctx));
    lengths.append(1, ')');
  }
  CAPTURE(lengths);
  const int64_t H = c.heads;
  std::vector<cuda::MlaSequence> seqs;
  int32_t tokens = 0, max_ctx = 0;
  for (auto [q, ctx] : c.seqs) {
    seqs.push_back({tokens, q, ctx});
    tokens += q;
    max_ctx = std::max(max_ctx, ctx);
  }
  const int64_t stride = (max_ctx + c.block_size - 1) / c.block_size + 1;
  int64_t num_blocks = 0;
  const std::vector<int32_t> tables = shuffled_tables(c, stride, num_blocks, rng);
  const Bf16Data cache = random_bf16(size_t(num_blocks * c.block_size * kTokenDim), 1.0f, rng);
  const Bf16Data ql = random_bf16(size_t(tokens * H * kRank), 1.0f, rng);
  const Bf16Data qr = random_bf16(size_t(tokens * H * kRope), 1.0f, rng);
  const float scale = 0.1f;  // scores with a spread of ~2.4: peaked enough that a mask slip shows

  std::vector<float> expected(size_t(tokens * H * kRank));
  {
    std::vector<float> cache_f = cache.exact;
    std::vector<cpu::AttentionSequence> cs;
    for (size_t s = 0; s < seqs.size(); ++s) {
      cs.push_back({seqs[s].query_start, seqs[s].query_len, seqs[s].context_len,
                    tables.data() + s * size_t(stride)});
    }
    cpu::MlaAbsorbedParams rp;
    rp.q_latent = ql.exact.data();
    rp.q_rope = qr.exact.data();
    rp.cache = {cache_f.data(), num_blocks, c.block_size, kRank, kRope};
    rp.sequences = cs.data();
    rp.num_sequences = int32_t(cs.size());
    rp.heads = H;
    rp.softmax_scale = scale;
    rp.out_latent = expected.data();
    cpu::mla_attention_absorbed_reference(rp);
  }

  cuda::MlaPlanOptions opt;
  opt.tiles_per_split = c.tiles_per_split;
  auto plan = cuda::mla_plan(seqs.data(), int32_t(seqs.size()), H, opt);
  require_ok(plan.ok() ? latentserve::ok_status() : latentserve::Status(plan.error()));
  DeviceMemory workspace(plan->workspace_bytes());
  auto dplan = cuda::mla_plan_upload(*plan, workspace.ptr, plan->workspace_bytes(), nullptr);
  require_ok(dplan.ok() ? latentserve::ok_status() : latentserve::Status(dplan.error()));
  cuda::MlaFixedPlanShape shape;
  shape.num_sequences = int32_t(seqs.size());
  shape.heads = H;
  shape.splits = std::max(c.fixed_splits, 1);
  shape.max_context = int32_t(stride * c.block_size);
  std::vector<int32_t> positions;
  for (const cuda::MlaSequence& q : seqs) positions.push_back(q.context_len - 1);
  DeviceMemory d_positions(positions.size() * 4);
  DeviceMemory fixed_workspace(cuda::mla_fixed_plan_workspace_bytes(shape));
  if (c.fixed_splits > 0) {
    for (const cuda::MlaSequence& q : seqs) REQUIRE(q.query_len == 1);
    to_device(d_positions, positions);
    dplan = cuda::mla_fixed_plan(shape, d_positions.as<int32_t>(), fixed_workspace.ptr,
                                 cuda::mla_fixed_plan_workspace_bytes(shape), nullptr);
    require_ok(dplan.ok() ? latentserve::ok_status() : latentserve::Status(dplan.error()));
  }

  DeviceMemory d_cache(cache.bits.size() * 2), d_ql(ql.bits.size() * 2), d_qr(qr.bits.size() * 2);
  DeviceMemory d_tables(tables.size() * 4);
  const size_t out_elems = expected.size(), out_bytes = out_elems * latentserve::dtype_size(c.out_dtype);
  DeviceMemory d_out(out_bytes);
  to_device(d_cache, cache.bits);
  to_device(d_ql, ql.bits);
  to_device(d_qr, qr.bits);
  to_device(d_tables, tables);
  require_ok(LS_CUDA_CHECK(cudaMemset(d_out.ptr, 0xff, out_bytes)));  // NaN unless written

  cuda::MlaAttentionParams p;
  p.q_latent = d_ql.ptr;
  p.q_rope = d_qr.ptr;
  p.cache = d_cache.ptr;
  p.block_tables = d_tables.as<int32_t>();
  p.out = d_out.ptr;
  p.out_dtype = c.out_dtype;
  p.num_blocks = num_blocks;
  p.block_size = c.block_size;
  p.block_table_stride = stride;
  p.heads = H;
  p.softmax_scale = scale;
  require_ok(cuda::mla_attention(p, *dplan, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));

  std::vector<float> got(out_elems);
  if (c.out_dtype == DType::BF16) {
    const auto bits = from_device<uint16_t>(d_out, out_elems);
    for (size_t i = 0; i < out_elems; ++i) got[i] = latentserve::bf16_to_float(bits[i]);
  } else {
    got = from_device<float>(d_out, out_elems);
  }
  // BF16 inputs are exact in both; the GPU rounds P to BF16 (2^-9 relative per weight) and sums
  // in FP32, so outputs (averages of unit-scale values) differ by ~1e-3; BF16 output adds 2^-9.
  const float atol = 1.0e-2f, rtol = c.out_dtype == DType::BF16 ? 1.6e-2f : 1.0e-2f;
  int64_t bad = 0;
  float worst = 0.0f;
  for (size_t i = 0; i < out_elems; ++i) {
    const float err = std::fabs(got[i] - expected[i]);
    if (!(err <= atol + rtol * std::fabs(expected[i]))) ++bad;
    if (!(err <= worst)) worst = err;  // NaN shows as NaN
  }
  CAPTURE(worst, plan->work.size(), plan->merges.size());
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("cuda mla attention: decode, one token per sequence", "[cuda][mla]") {
  std::mt19937 rng(Catch::rngSeed() + 101);
  run_case({1, {{1, 1}}}, rng);
  for (int split : {kNoSplit, 1, 0}) {
    run_case({16, {{1, 63}, {1, 64}, {1, 65}, {1, 1}, {1, 130}}, 64, split}, rng);
  }
  run_case({128, {{1, 65}, {1, 1}, {1, 200}}, 64, 1, DType::BF16}, rng);
}

TEST_CASE("cuda mla attention: the fixed-shape decode plan", "[cuda][mla][fixed]") {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int32_t> len(1, 3000);
  // One split (no merge); splits past a short context's end (empty, ignored by the merge); as
  // many splits as the executor picks for one sequence on an H100/H200 (132/2).
  for (int splits : {1, 3, 66}) {
    run_case({128, {{1, 1}, {1, 65}, {1, 4097}}, 64, 0, DType::BF16, splits}, rng);
    run_case({16, {{1, len(rng)}, {1, len(rng)}, {1, 63}, {1, 256}, {1, len(rng)}}, 16, 0, DType::F32, splits}, rng);
  }
  run_case({3, {{1, len(rng)}, {1, 2}}, 48, 0, DType::F32, 7}, rng);
}

TEST_CASE("mla_fixed_plan: shapes and errors", "[cuda][mla][fixed]") {
  auto splits = cuda::mla_fixed_plan_splits(1, 128, 132);
  REQUIRE(splits.ok());
  CHECK(*splits == 66);
  CHECK(*cuda::mla_fixed_plan_splits(256, 128, 132) == 1);
  CHECK(*cuda::mla_fixed_plan_splits(1, 1, 1000) == cuda::kMlaFixedMaxSplits);
  CHECK(!cuda::mla_fixed_plan_splits(0, 128, 132).ok());
  cuda::MlaFixedPlanShape shape;
  shape.num_sequences = 4;
  shape.heads = 128;
  shape.splits = 0;
  DeviceMemory ws(1 << 20), positions(16);
  CHECK(!cuda::mla_fixed_plan(shape, positions.as<int32_t>(), ws.ptr, 1 << 20, nullptr).ok());
  shape.splits = 2;
  CHECK(!cuda::mla_fixed_plan(shape, positions.as<int32_t>(), ws.ptr, 64, nullptr).ok());
  CHECK(cuda::mla_fixed_plan(shape, positions.as<int32_t>(), ws.ptr, 1 << 20, nullptr)->num_work == 16);
}

TEST_CASE("cuda mla attention: long contexts with and without split-KV", "[cuda][mla]") {
  std::mt19937 rng(Catch::rngSeed() + 102);
  for (int split : {kNoSplit, 0, 1}) run_case({128, {{1, 4097}, {1, 64}}, 64, split}, rng);
  run_case({16, {{1, 4097}, {1, 1000}, {1, 63}}, 64, 5}, rng);
}

TEST_CASE("cuda mla attention: several query tokens per sequence (causal)", "[cuda][mla]") {
  std::mt19937 rng(Catch::rngSeed() + 103);
  // Speculative verification: 1 + K tokens at the end of each context.
  for (int split : {kNoSplit, 1}) {
    run_case({16, {{4, 70}, {3, 3}, {1, 200}, {2, 65}}, 16, split}, rng);
    run_case({128, {{4, 300}, {2, 64}}, 64, split, DType::BF16}, rng);
  }
  // Row tiles that cut through a token's heads and hold many tokens.
  run_case({3, {{50, 120}, {7, 7}}, 32, 0}, rng);
  run_case({1, {{130, 200}}, 64, 2}, rng);
}

TEST_CASE("cuda mla attention: prefill with a cached prefix", "[cuda][mla]") {
  std::mt19937 rng(Catch::rngSeed() + 104);
  run_case({16, {{200, 260}, {37, 37}, {1, 90}}, 64, 0}, rng);
  run_case({16, {{65, 129}}, 48, 1, DType::BF16}, rng);
}

TEST_CASE("mla_plan covers every row tile's causal context exactly once", "[cuda][mla][plan]") {
  std::mt19937 rng(Catch::rngSeed() + 105);
  std::uniform_int_distribution<int32_t> len(1, 5000), qlen(0, 9);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<cuda::MlaSequence> seqs;
    int32_t tokens = 0;
    const int n = 1 + trial % 7;
    for (int s = 0; s < n; ++s) {
      const int32_t q = qlen(rng), ctx = std::max(q, len(rng));
      seqs.push_back({tokens, q, ctx});
      tokens += q;
    }
    const int64_t heads = trial % 2 ? 128 : 5;
    cuda::MlaPlanOptions opt;
    opt.num_sms = 132;
    opt.tiles_per_split = trial % 3 == 0 ? 3 : 0;
    auto plan = cuda::mla_plan(seqs.data(), n, heads, opt);
    REQUIRE(plan.ok());
    // Per (sequence, row tile): the union of the work items' ranges is [0, kv_len) once each.
    std::map<std::pair<int32_t, int32_t>, std::vector<std::pair<int32_t, int32_t>>> by_tile;
    int partials = 0;
    for (const auto& w : plan->work) {
      by_tile[{w.seq, w.row_begin}].push_back({w.kv_begin, w.kv_end});
      if (w.partial >= 0) ++partials;
      CHECK(w.kv_begin < w.kv_end);
    }
    CHECK(partials == plan->num_partials);
    size_t tiles = 0;
    for (int s = 0; s < n; ++s) {
      const int64_t rows = int64_t(seqs[size_t(s)].query_len) * heads;
      for (int64_t r = 0; r < rows; r += 64, ++tiles) {
        auto& v = by_tile[{s, int32_t(r)}];
        std::sort(v.begin(), v.end());
        const int64_t last_token = (std::min<int64_t>(rows, r + 64) - 1) / heads;
        const int32_t kv_len =
            seqs[size_t(s)].context_len - seqs[size_t(s)].query_len + int32_t(last_token) + 1;
        REQUIRE_FALSE(v.empty());
        CHECK(v.front().first == 0);
        CHECK(v.back().second == kv_len);
        for (size_t k = 1; k < v.size(); ++k) CHECK(v[k].first == v[k - 1].second);
      }
    }
    CHECK(by_tile.size() == tiles);
    if (opt.tiles_per_split == 0 && tiles < 132) CHECK(plan->work.size() <= 132);
  }
}

TEST_CASE("mla_plan and mla_attention reject bad input with a message", "[cuda][mla]") {
  cuda::MlaSequence bad{0, 5, 4};
  auto plan = cuda::mla_plan(&bad, 1, 16, {});
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.error().message.find("context_len=4") != std::string::npos);

  cuda::MlaSequence ok{0, 1, 300};
  cuda::MlaPlanOptions opt;
  opt.num_sms = 132;
  plan = cuda::mla_plan(&ok, 1, 16, opt);
  REQUIRE(plan.ok());
  cuda::MlaDevicePlan dplan;
  dplan.heads = 16;
  dplan.max_context = 300;
  cuda::MlaAttentionParams p;
  p.heads = 16;
  p.block_size = 64;
  p.block_table_stride = 4;  // needs 5
  auto st = cuda::mla_attention(p, dplan, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("block_table_stride=4") != std::string::npos);
  p.heads = 8;
  st = cuda::mla_attention(p, dplan, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("heads=8") != std::string::npos);
}
