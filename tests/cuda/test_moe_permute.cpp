// GPU MoE permutation, gather, SiLU-gated product and combine against plain CPU versions on fresh
// random inputs at awkward sizes. The permutation must be exact: offsets are the exclusive scan of
// the per-expert counts and each expert's rows keep the (token, k) order of ffn.cpp's CPU loop.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cpu/activation.h"
#include "kernels/cuda/moe_combine.h"
#include "kernels/cuda/moe_permute.h"
#include "cuda_test_util.h"

namespace {

namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using latentserve::DType;
using namespace latentserve::test_cuda;

// Distinct experts per token, drawn with a skew (low ids are hot, some experts stay empty).
std::vector<int32_t> random_ids(int64_t tokens, int64_t top_k, int64_t experts, std::mt19937& rng) {
  std::vector<int32_t> ids;
  std::vector<double> w(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e) w[size_t(e)] = 1.0 / double(1 + e % 17) + (e % 5 == 3 ? 0 : 0.01);
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<double> left = w;
    for (int64_t k = 0; k < top_k; ++k) {
      std::discrete_distribution<int32_t> pick(left.begin(), left.end());
      const int32_t e = pick(rng);
      left[size_t(e)] = 0.0;
      ids.push_back(e);
    }
  }
  return ids;
}

struct Permutation {
  std::vector<int32_t> offsets, source_token, permuted_row;
};

Permutation permute_on_gpu(const std::vector<int32_t>& ids, int64_t tokens, int64_t top_k,
                           int64_t experts) {
  const int64_t n = tokens * top_k;
  DeviceMemory d_ids(size_t(n) * 4), d_off(size_t(experts + 1) * 4), d_src(size_t(n) * 4),
      d_row(size_t(n) * 4);
  const size_t scratch = cuda::moe_permute_scratch_bytes(tokens, top_k, experts);
  DeviceMemory d_scratch(scratch);
  to_device(d_ids, ids);
  require_ok(LS_CUDA_CHECK(cudaMemset(d_src.ptr, 0xff, size_t(n) * 4)));
  cuda::MoePermuteParams p;
  p.expert_ids = d_ids.as<int32_t>();
  p.tokens = tokens;
  p.top_k = top_k;
  p.num_experts = experts;
  p.offsets = d_off.as<int32_t>();
  p.source_token = d_src.as<int32_t>();
  p.permuted_row = d_row.as<int32_t>();
  p.scratch = d_scratch.ptr;
  p.scratch_bytes = scratch;
  require_ok(cuda::moe_permute(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  return {from_device<int32_t>(d_off, size_t(experts + 1)), from_device<int32_t>(d_src, size_t(n)),
          from_device<int32_t>(d_row, size_t(n))};
}

// The CPU permutation: ffn.cpp's order (tokens ascending, then k) within each expert.
Permutation permute_on_cpu(const std::vector<int32_t>& ids, int64_t tokens, int64_t top_k,
                           int64_t experts) {
  const int64_t n = tokens * top_k;
  Permutation p;
  p.offsets.assign(size_t(experts + 1), 0);
  for (int32_t e : ids)
    if (e >= 0 && e < experts) ++p.offsets[size_t(e) + 1];
  for (int64_t e = 0; e < experts; ++e) p.offsets[size_t(e) + 1] += p.offsets[size_t(e)];
  p.source_token.assign(size_t(n), -1);
  p.permuted_row.assign(size_t(n), -1);
  std::vector<int32_t> next(p.offsets.begin(), p.offsets.end() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t e = ids[size_t(i)];
    if (e < 0 || e >= experts) continue;
    const int32_t pos = next[size_t(e)]++;
    p.permuted_row[size_t(i)] = pos;
    p.source_token[size_t(pos)] = int32_t(i / top_k);
  }
  return p;
}

}  // namespace

TEST_CASE("cuda moe_permute: experts' rows are contiguous, in (token, k) order", "[cuda][moe]") {
  std::mt19937 rng(2701);
  struct Shape {
    int64_t tokens, top_k, experts;
  };
  for (const Shape s : {Shape{1, 1, 16}, Shape{7, 6, 64}, Shape{130, 8, 256}, Shape{1000, 8, 256},
                        Shape{1000, 1, 16}, Shape{5000, 6, 64}, Shape{300, 8, 1024}}) {
    INFO("tokens=" << s.tokens << " top_k=" << s.top_k << " experts=" << s.experts);
    const auto ids = random_ids(s.tokens, s.top_k, s.experts, rng);
    const Permutation want = permute_on_cpu(ids, s.tokens, s.top_k, s.experts);
    const Permutation got = permute_on_gpu(ids, s.tokens, s.top_k, s.experts);
    CHECK(got.offsets == want.offsets);
    CHECK(got.permuted_row == want.permuted_row);
    CHECK(got.source_token == want.source_token);
  }
}

TEST_CASE("cuda moe_permute: ids outside the experts are dropped", "[cuda][moe]") {
  std::mt19937 rng(2702);
  const int64_t tokens = 777, top_k = 6, experts = 64;
  auto ids = random_ids(tokens, top_k, experts, rng);
  std::uniform_int_distribution<size_t> at(0, ids.size() - 1);
  for (int i = 0; i < 50; ++i) ids[at(rng)] = i % 2 ? -1 : int32_t(experts + i);
  const Permutation want = permute_on_cpu(ids, tokens, top_k, experts);
  const Permutation got = permute_on_gpu(ids, tokens, top_k, experts);
  CHECK(want.offsets.back() < tokens * top_k);
  CHECK(got.offsets == want.offsets);
  CHECK(got.permuted_row == want.permuted_row);
  const size_t live = size_t(want.offsets.back());
  CHECK(std::equal(want.source_token.begin(), want.source_token.begin() + live,
                   got.source_token.begin()));
}

TEST_CASE("cuda moe_gather: permuted rows are the source rows", "[cuda][moe]") {
  std::mt19937 rng(2703);
  struct Shape {
    int64_t tokens, top_k, experts, hidden, ldx;
  };
  for (const Shape s : {Shape{7, 6, 16, 64, 64}, Shape{130, 8, 64, 7168, 7168},
                        Shape{61, 2, 16, 100, 103}}) {  // last: rows not 16-byte aligned
    INFO("tokens=" << s.tokens << " hidden=" << s.hidden << " ldx=" << s.ldx);
    auto ids = random_ids(s.tokens, s.top_k, s.experts, rng);
    ids[0] = -1;  // one dropped row: the row past the count must stay untouched
    const Permutation perm = permute_on_cpu(ids, s.tokens, s.top_k, s.experts);
    const int64_t rows = s.tokens * s.top_k, ldo = s.hidden + 8;
    const auto x = random_bf16(size_t(s.tokens * s.ldx), 1.0f, rng);
    DeviceMemory d_x(x.bits.size() * 2), d_src(size_t(rows) * 4), d_count(4),
        d_out(size_t(rows * ldo) * 2);
    to_device(d_x, x.bits);
    to_device(d_src, perm.source_token);
    to_device(d_count, std::vector<int32_t>{perm.offsets.back()});
    require_ok(LS_CUDA_CHECK(cudaMemset(d_out.ptr, 0x7f, size_t(rows * ldo) * 2)));
    cuda::MoeGatherParams p;
    p.x = d_x.ptr;
    p.ldx = s.ldx;
    p.source_token = d_src.as<int32_t>();
    p.row_count = d_count.as<int32_t>();
    p.out = d_out.ptr;
    p.ldo = ldo;
    p.max_rows = rows;
    p.hidden = s.hidden;
    require_ok(cuda::moe_gather(p, nullptr));
    const auto out = from_device<uint16_t>(d_out, size_t(rows * ldo));
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < ldo; ++c) {
        const uint16_t v = out[size_t(r * ldo + c)];
        const bool live = r < perm.offsets.back() && c < s.hidden;
        bad += live ? v != x.bits[size_t(perm.source_token[size_t(r)] * s.ldx + c)] : v != 0x7f7f;
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("cuda moe_silu_mul: silu(gate) · up against the CPU reference", "[cuda][moe]") {
  std::mt19937 rng(2704);
  for (const DType in : {DType::BF16, DType::F32}) {
    for (const DType outt : {DType::BF16, DType::F32}) {
      for (const int64_t width : {64, 200, 2048}) {
        const int64_t rows = 130, ld_in = 2 * width + 16, ld_out = width + 4, live = 97;
        INFO("in=" << latentserve::dtype_name(in) << " out=" << latentserve::dtype_name(outt)
                   << " width=" << width);
        const auto gu = random_bf16(size_t(rows * ld_in), 3.0f, rng);
        DeviceMemory d_in(size_t(rows * ld_in) * 4), d_out(size_t(rows * ld_out) * 4), d_count(4);
        if (in == DType::BF16) to_device(d_in, gu.bits); else to_device(d_in, gu.exact);
        to_device(d_count, std::vector<int32_t>{int32_t(live)});
        require_ok(LS_CUDA_CHECK(cudaMemset(d_out.ptr, 0, size_t(rows * ld_out) * 4)));
        cuda::MoeSiluMulParams p;
        p.gate_up = d_in.ptr;
        p.in_dtype = in;
        p.ld_in = ld_in;
        p.out = d_out.ptr;
        p.out_dtype = outt;
        p.ld_out = ld_out;
        p.rows = rows;
        p.width = width;
        p.row_count = d_count.as<int32_t>();
        require_ok(cuda::moe_silu_mul(p, nullptr));
        std::vector<float> want(size_t(rows * width));
        cpu::silu_mul_reference(gu.exact.data(), ld_in, gu.exact.data() + width, ld_in, rows,
                                width, want.data(), width);
        const auto f = from_device<float>(d_out, size_t(rows * ld_out));
        const auto b = from_device<uint16_t>(d_out, size_t(rows * ld_out));
        const double rel = outt == DType::BF16 ? std::ldexp(1.0, -8) : 1e-6;
        int64_t bad = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < width; ++c) {
            const size_t o = size_t(r * ld_out + c);
            const double g = outt == DType::BF16 ? latentserve::bf16_to_float(b[o]) : f[o];
            const double w = r < live ? want[size_t(r * width + c)] : 0.0;  // skipped rows: untouched
            bad += !(std::fabs(g - w) <= rel * std::fabs(w) + 1e-30);
          }
        }
        CHECK(bad == 0);
      }
    }
  }
}

TEST_CASE("cuda moe_combine: weighted sum of expert rows in token order", "[cuda][moe]") {
  std::mt19937 rng(2705);
  std::uniform_real_distribution<float> wdist(0.0f, 1.0f);
  struct Shape {
    int64_t tokens, top_k, experts, hidden;
  };
  for (const Shape s : {Shape{1, 1, 16, 64}, Shape{7, 6, 64, 7168}, Shape{130, 8, 256, 320},
                        Shape{1000, 8, 256, 96}}) {
    for (const bool with_shared : {false, true}) {
      INFO("tokens=" << s.tokens << " top_k=" << s.top_k << " hidden=" << s.hidden
                     << " shared=" << with_shared);
      auto ids = random_ids(s.tokens, s.top_k, s.experts, rng);
      ids.back() = -1;  // a dropped assignment adds nothing
      const Permutation perm = permute_on_cpu(ids, s.tokens, s.top_k, s.experts);
      const int64_t rows = s.tokens * s.top_k, ld_out = s.hidden + 3;
      const auto y = random_bf16(size_t(rows * s.hidden), 1.0f, rng);
      const auto shared = random_bf16(size_t(s.tokens * s.hidden), 1.0f, rng);
      std::vector<float> w(static_cast<size_t>(rows));
      for (float& v : w) v = wdist(rng);
      DeviceMemory d_y(y.bits.size() * 2), d_rows(size_t(rows) * 4), d_w(size_t(rows) * 4),
          d_shared(shared.exact.size() * 4), d_out(size_t(s.tokens * ld_out) * 4);
      to_device(d_y, y.bits);
      to_device(d_rows, perm.permuted_row);
      to_device(d_w, w);
      to_device(d_shared, shared.exact);
      cuda::MoeCombineParams p;
      p.expert_out = d_y.ptr;
      p.ld_y = s.hidden;
      p.permuted_row = d_rows.as<int32_t>();
      p.weights = d_w.as<float>();
      p.shared = with_shared ? d_shared.ptr : nullptr;
      p.shared_dtype = DType::F32;
      p.ld_shared = s.hidden;
      p.out = d_out.ptr;
      p.out_dtype = DType::F32;
      p.ld_out = ld_out;
      p.tokens = s.tokens;
      p.top_k = s.top_k;
      p.hidden = s.hidden;
      require_ok(cuda::moe_combine(p, nullptr));
      const auto got = from_device<float>(d_out, size_t(s.tokens * ld_out));
      int64_t bad = 0;
      for (int64_t t = 0; t < s.tokens; ++t) {
        for (int64_t c = 0; c < s.hidden; ++c) {
          double want = with_shared ? shared.exact[size_t(t * s.hidden + c)] : 0.0, mag = std::fabs(want);
          for (int64_t k = 0; k < s.top_k; ++k) {
            const int32_t r = perm.permuted_row[size_t(t * s.top_k + k)];
            if (r < 0) continue;
            const double term = double(w[size_t(t * s.top_k + k)]) * y.exact[size_t(r * s.hidden + c)];
            want += term;
            mag += std::fabs(term);
          }
          bad += !(std::fabs(got[size_t(t * ld_out + c)] - want) <= 2e-6 * mag + 1e-30);
        }
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("cuda moe permutation kernels: bad parameters are errors", "[cuda][moe]") {
  DeviceMemory buf(1 << 16);
  cuda::MoePermuteParams p;
  p.expert_ids = buf.as<int32_t>();
  p.tokens = 4;
  p.top_k = 2;
  p.num_experts = 2048;
  p.offsets = p.source_token = p.permuted_row = buf.as<int32_t>();
  p.scratch = buf.ptr;
  p.scratch_bytes = 1 << 16;
  CHECK(!cuda::moe_permute(p, nullptr).ok());  // too many experts
  p.num_experts = 16;
  p.scratch_bytes = 4;
  CHECK(!cuda::moe_permute(p, nullptr).ok());  // scratch too small
  cuda::MoeCombineParams c;
  c.expert_out = c.out = buf.ptr;
  c.permuted_row = buf.as<int32_t>();
  c.weights = buf.as<float>();
  c.tokens = 2;
  c.top_k = 33;
  c.hidden = 8;
  c.ld_y = c.ld_out = 8;
  CHECK(!cuda::moe_combine(c, nullptr).ok());  // top_k above 32
  cuda::MoeSiluMulParams s;
  s.gate_up = s.out = buf.ptr;
  s.rows = 2;
  s.width = 8;
  s.ld_in = 8;  // < 2·width
  s.ld_out = 8;
  CHECK(!cuda::moe_silu_mul(s, nullptr).ok());
}
