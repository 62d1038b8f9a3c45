// The CUDA kernels the model executor adds, each against its plain CPU twin on fresh random inputs
// at awkward sizes: row gather (every dtype pair, out-of-range rows), fused residual add + RMSNorm,
// absorbed MLA attention for any latent/rope width over a scrambled paged cache, and the per-head
// strided-batched GEMMs (both W layouts, strided rows as in the executor).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/add_rmsnorm.h"
#include "kernels/cuda/gather_rows.h"
#include "kernels/cuda/mla_attention_generic.h"
#include "models/cuda/head_gemm.h"
#include "cuda_test_util.h"

namespace {

namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using latentserve::DType;
using latentserve::bf16_to_float;
using latentserve::float_to_bf16;
using namespace latentserve::test_cuda;

std::vector<float> bf16_values(const std::vector<uint16_t>& bits) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) f[i] = bf16_to_float(bits[i]);
  return f;
}

}  // namespace

TEST_CASE("gather_rows copies indexed rows with a dtype change and zero-fills bad indices", "[cuda][executor]") {
  std::mt19937 rng(Catch::rngSeed() + 11);
  const int64_t src_rows = 37, cols = 259, ld_src = 263, rows = 23, ld_dst = 260;
  const auto src = random_bf16(size_t(src_rows * ld_src), 1.0f, rng);
  std::uniform_int_distribution<int64_t> pick(-2, src_rows + 1);  // some out of range
  std::vector<int64_t> idx64(rows);
  for (auto& i : idx64) i = pick(rng);
  std::vector<int32_t> idx32(idx64.begin(), idx64.end());
  for (DType src_t : {DType::BF16, DType::F32}) {
    for (DType dst_t : {DType::BF16, DType::F32}) {
      for (bool wide : {false, true}) {
        CAPTURE(std::string(latentserve::dtype_name(src_t)), std::string(latentserve::dtype_name(dst_t)), wide);
        DeviceMemory d_src(src.bits.size() * 4), d_dst(size_t(rows * ld_dst) * 4), d_idx(size_t(rows) * 8);
        if (src_t == DType::BF16) to_device(d_src, src.bits); else to_device(d_src, src.exact);
        if (wide) to_device(d_idx, idx64); else to_device(d_idx, idx32);
        cuda::GatherRowsParams p;
        p.src = d_src.ptr;
        p.src_dtype = src_t;
        p.ld_src = ld_src;
        p.num_src_rows = src_rows;
        if (wide) {
          p.index64 = d_idx.as<int64_t>();
        } else {
          p.index32 = d_idx.as<int32_t>();
        }
        p.dst = d_dst.ptr;
        p.dst_dtype = dst_t;
        p.ld_dst = ld_dst;
        p.rows = rows;
        p.cols = cols;
        require_ok(cuda::gather_rows(p, nullptr));
        require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
        std::vector<float> got(size_t(rows * ld_dst));
        if (dst_t == DType::F32) {
          got = from_device<float>(d_dst, got.size());
        } else {
          got = bf16_values(from_device<uint16_t>(d_dst, got.size()));
        }
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t s = idx64[size_t(r)];
          for (int64_t c = 0; c < cols; ++c) {
            const float want = (s < 0 || s >= src_rows) ? 0.0f : src.exact[size_t(s * ld_src + c)];
            REQUIRE(got[size_t(r * ld_dst + c)] == want);  // BF16 values are exact in both dtypes
          }
        }
      }
    }
  }
}

TEST_CASE("add_rmsnorm matches its CPU reference", "[cuda][executor]") {
  std::mt19937 rng(Catch::rngSeed() + 12);
  struct Case { int64_t rows, dim; };
  for (Case c : {Case{1, 7}, Case{13, 256}, Case{5, 7171}, Case{64, 1000}}) {
    for (DType delta_t : {DType::F32, DType::BF16}) {
      for (DType y_t : {DType::F32, DType::BF16}) {
        for (bool add : {true, false}) {
          CAPTURE(c.rows, c.dim, std::string(latentserve::dtype_name(delta_t)),
                  std::string(latentserve::dtype_name(y_t)), add);
          const int64_t ld = c.dim + 3;
          std::vector<float> residual = random_floats(size_t(c.rows * ld), 0.0f, 2.0f, rng);
          const auto delta = random_bf16(size_t(c.rows * ld), 1.0f, rng);
          const std::vector<float> weight = random_floats(size_t(c.dim), 1.0f, 0.1f, rng);
          DeviceMemory d_res(residual.size() * 4), d_delta(delta.exact.size() * 4), d_w(weight.size() * 4),
              d_y(size_t(c.rows * ld) * 4);
          to_device(d_res, residual);
          if (delta_t == DType::F32) to_device(d_delta, delta.exact); else to_device(d_delta, delta.bits);
          to_device(d_w, weight);
          cuda::AddRmsNormParams p;
          p.residual = d_res.as<float>();
          p.ld_residual = ld;
          p.delta = add ? d_delta.ptr : nullptr;
          p.delta_dtype = delta_t;
          p.ld_delta = ld;
          p.weight = d_w.as<float>();
          p.y = d_y.ptr;
          p.y_dtype = y_t;
          p.ld_y = ld;
          p.rows = c.rows;
          p.dim = c.dim;
          p.eps = 1e-6f;
          require_ok(cuda::add_rmsnorm(p, nullptr));
          std::vector<float> want_y(size_t(c.rows * ld));
          cuda::add_rmsnorm_reference(residual.data(), ld, add ? delta.exact.data() : nullptr, ld,
                                      weight.data(), want_y.data(), ld, c.rows, c.dim, 1e-6f);
          const std::vector<float> got_res = from_device<float>(d_res, residual.size());
          std::vector<float> got_y = y_t == DType::F32 ? from_device<float>(d_y, want_y.size())
                                                       : bf16_values(from_device<uint16_t>(d_y, want_y.size()));
          const float y_tol = y_t == DType::F32 ? 1e-4f : 1e-2f;
          for (int64_t r = 0; r < c.rows; ++r) {
            for (int64_t j = 0; j < c.dim; ++j) {
              const size_t i = size_t(r * ld + j);
              REQUIRE(got_res[i] == residual[i]);  // one FP32 addition on both sides
              REQUIRE(std::fabs(got_y[i] - want_y[i]) <= y_tol * (1.0f + std::fabs(want_y[i])));
            }
          }
        }
      }
    }
  }
}

TEST_CASE("mla_attention_generic matches the CPU absorbed-MLA reference", "[cuda][executor]") {
  std::mt19937 rng(Catch::rngSeed() + 13);
  struct Case { int64_t heads, lora, rope, block_size; std::vector<std::pair<int32_t, int32_t>> seqs; };  // (query_len, context_len)
  const std::vector<Case> cases = {
      {4, 64, 16, 64, {{1, 1}, {7, 7}, {1, 70}, {5, 133}}},
      {3, 96, 32, 16, {{33, 33}, {1, 17}, {2, 64}}},
      {5, 512, 64, 7, {{1, 50}, {9, 9}}},
      {1, 1000, 100, 32, {{3, 40}}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.heads, c.lora, c.rope, c.block_size);
    const int64_t dim = c.lora + c.rope;
    std::vector<cpu::AttentionSequence> seqs;
    std::vector<std::vector<int32_t>> tables;
    int64_t tokens = 0, blocks_needed = 0, stride = 1;
    for (auto [q, ctx] : c.seqs) {
      cpu::AttentionSequence s;
      s.query_start = int32_t(tokens);
      s.query_len = q;
      s.context_len = ctx;
      seqs.push_back(s);
      tokens += q;
      const int64_t nb = (ctx + c.block_size - 1) / c.block_size;
      blocks_needed += nb;
      stride = std::max(stride, nb);
    }
    const int64_t num_blocks = blocks_needed + 3;
    std::vector<int32_t> order(static_cast<size_t>(num_blocks));
    for (int64_t i = 0; i < num_blocks; ++i) order[size_t(i)] = int32_t((i * 5 + 2) % num_blocks);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<int32_t> flat_tables(size_t(int64_t(seqs.size()) * stride), 0);
    std::vector<int32_t> token_seq, positions;
    size_t next = 0;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t nb = (seqs[i].context_len + c.block_size - 1) / c.block_size;
      tables.emplace_back(order.begin() + long(next), order.begin() + long(next + size_t(nb)));
      std::copy(tables.back().begin(), tables.back().end(), flat_tables.begin() + long(i * size_t(stride)));
      next += size_t(nb);
      seqs[i].block_table = tables.back().data();
      for (int32_t t = 0; t < seqs[i].query_len; ++t) {
        token_seq.push_back(int32_t(i));
        positions.push_back(seqs[i].context_len - seqs[i].query_len + t);
      }
    }
    const auto cache = random_bf16(size_t(num_blocks * c.block_size * dim), 1.0f, rng);
    const auto q_latent = random_bf16(size_t(tokens * c.heads * c.lora), 0.3f, rng);
    const auto q_rope = random_bf16(size_t(tokens * c.heads * c.rope), 0.3f, rng);
    std::vector<float> cache_f = cache.exact;
    std::vector<float> want(size_t(tokens * c.heads * c.lora));
    cpu::MlaAbsorbedParams ref;
    ref.q_latent = q_latent.exact.data();
    ref.q_rope = q_rope.exact.data();
    ref.cache = cpu::LatentCache{cache_f.data(), num_blocks, c.block_size, c.lora, c.rope};
    ref.sequences = seqs.data();
    ref.num_sequences = int32_t(seqs.size());
    ref.heads = c.heads;
    ref.softmax_scale = 1.0f / std::sqrt(float(c.lora / 4 + c.rope));
    ref.out_latent = want.data();
    cpu::mla_attention_absorbed_reference(ref);

    DeviceMemory d_cache(cache.bits.size() * 2), d_ql(q_latent.bits.size() * 2), d_qr(q_rope.bits.size() * 2),
        d_tables(flat_tables.size() * 4), d_seq(token_seq.size() * 4), d_pos(positions.size() * 4),
        d_out(want.size() * 4);
    to_device(d_cache, cache.bits);
    to_device(d_ql, q_latent.bits);
    to_device(d_qr, q_rope.bits);
    to_device(d_tables, flat_tables);
    to_device(d_seq, token_seq);
    to_device(d_pos, positions);
    cuda::MlaGenericParams p;
    p.q_latent = d_ql.ptr;
    p.q_rope = d_qr.ptr;
    p.cache = d_cache.ptr;
    p.block_tables = d_tables.as<int32_t>();
    p.token_sequence = d_seq.as<int32_t>();
    p.positions = d_pos.as<int32_t>();
    p.out = d_out.ptr;
    p.out_dtype = DType::F32;
    p.num_tokens = tokens;
    p.heads = c.heads;
    p.kv_lora_rank = c.lora;
    p.rope_dim = c.rope;
    p.num_blocks = num_blocks;
    p.block_size = c.block_size;
    p.block_table_stride = stride;
    p.softmax_scale = ref.softmax_scale;
    require_ok(cuda::mla_attention_generic(p, nullptr));
    const std::vector<float> got = from_device<float>(d_out, want.size());
    double worst = 0.0;
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    CAPTURE(worst);
    REQUIRE(worst < 2e-4);
  }
}

TEST_CASE("the per-head GEMM matches its CPU reference for both W layouts", "[cuda][executor]") {
  std::mt19937 rng(Catch::rngSeed() + 14);
  auto gemm = latentserve::models::cuda::PerHeadGemm::create();
  require_ok(gemm.ok() ? latentserve::ok_status() : latentserve::Status(gemm.error()));
  struct Case { int64_t tokens, heads, nope, v, lora; };
  for (Case c : {Case{1, 4, 32, 32, 64}, Case{37, 3, 24, 40, 72}, Case{130, 5, 128, 128, 512}}) {
    for (bool transpose : {false, true}) {
      CAPTURE(c.tokens, c.heads, c.nope, c.v, c.lora, transpose);
      // As the executor: W_UK / W_UV inside kv_b [heads * (nope + v), lora]; x rows strided.
      const auto kv_b = random_bf16(size_t(c.heads * (c.nope + c.v) * c.lora), 0.1f, rng);
      latentserve::models::cuda::PerHeadGemmParams p;
      p.tokens = c.tokens;
      p.heads = c.heads;
      p.transpose_w = transpose;
      p.ldw = c.lora;
      p.w_head_stride = (c.nope + c.v) * c.lora;
      const int64_t w_offset = transpose ? c.nope * c.lora : 0;
      p.k = transpose ? c.lora : c.nope;
      p.n = transpose ? c.v : c.lora;
      p.x_head_stride = p.k + 3;  // gaps between heads, as q's rope part leaves
      p.ldx = c.heads * p.x_head_stride + 1;
      p.y_head_stride = p.n;
      p.ldy = c.heads * p.n;
      const auto x = random_bf16(size_t(c.tokens * p.ldx), 1.0f, rng);
      std::vector<float> want(size_t(c.tokens * p.ldy));
      latentserve::models::cuda::per_head_gemm_reference(p, x.exact.data(), kv_b.exact.data() + w_offset,
                                                         want.data());
      DeviceMemory d_x(x.bits.size() * 2), d_w(kv_b.bits.size() * 2), d_y(want.size() * 2);
      to_device(d_x, x.bits);
      to_device(d_w, kv_b.bits);
      p.x = d_x.ptr;
      p.w = d_w.as<uint16_t>() + w_offset;
      p.y = d_y.ptr;
      require_ok((*gemm)->run(p, nullptr));
      const std::vector<float> got = bf16_values(from_device<uint16_t>(d_y, want.size()));
      for (size_t i = 0; i < want.size(); ++i) {
        REQUIRE(std::fabs(got[i] - want[i]) <= 1e-2f * (1.0f + std::fabs(want[i])));
      }
    }
  }
}
