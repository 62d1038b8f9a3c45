// The one-launch grouped expert GEMM (moe_grouped_gemm) against its CPU reference on fresh random
// weights and inputs: BF16 and FP8 block-scaled weights, both epilogues, F32 and BF16 outputs,
// experts with 0, 1 and non-multiple-of-tile row counts, widths and depths off the tile and off
// the 16-byte load path, partial FP8 scale blocks, dropped rows, up to the largest expert count,
// and more tiles than the persistent grid has blocks.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/moe_grouped_gemm.h"
#include "kernels/cuda/moe_layer.h"
#include "kernels/cuda/moe_router.h"
#include "kernels/cuda/quantize.h"
#include "cuda_test_util.h"

namespace {

namespace cuda = latentserve::kernels::cuda;
using latentserve::DType;
using namespace latentserve::test_cuda;

struct Case {
  DType w_dtype;
  cuda::MoeGemmEpilogue epilogue;
  DType y_dtype;
  std::vector<int32_t> counts;  // rows per expert
  int64_t n, k;
  bool gather;          // A rows through a_rows
  int64_t lda_pad = 0;  // lda = k + lda_pad
  int64_t ldy_pad = 0;  // ldy = output columns + ldy_pad
  int64_t dropped = 0;  // rows past offsets[E] (max_rows = Σ counts + dropped)
};

// Expert matrices [n, k] for both sides: host bytes (and packed FP8 scales) and device copies.
struct Experts {
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<std::vector<uint8_t>> fp8;
  std::vector<std::vector<float>> scales;  // packed: [ceil(n/128), weight_scale_ld(k)]
};

Experts random_experts(DType dtype, int64_t count, int64_t n, int64_t k, std::mt19937& rng) {
  Experts x;
  const float stddev = 1.0f / std::sqrt(float(k));
  for (int64_t e = 0; e < count; ++e) {
    if (dtype == DType::BF16) {
      x.bf16.push_back(random_bf16(size_t(n * k), stddev, rng).bits);
      continue;
    }
    // Each 128×128 block gets its own magnitude, so a wrong scale index shows.
    const int64_t br = cuda::ceil_div(n, 128), bc = cuda::ceil_div(k, 128);
    std::normal_distribution<float> normal(0.0f, stddev);
    std::uniform_real_distribution<float> log_mag(-2.0f, 2.0f);
    std::vector<float> mag(size_t(br * bc)), inv(size_t(br * bc), 0.0f), f(size_t(n * k));
    for (float& m : mag) m = std::exp2(log_mag(rng));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        const size_t b = size_t((r / 128) * bc + c / 128);
        f[size_t(r * k + c)] = normal(rng) * mag[b];
        inv[b] = std::max(inv[b], std::fabs(f[size_t(r * k + c)]) / 448.0f);
      }
    }
    std::vector<uint8_t> q(size_t(n * k));
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t c = 0; c < k; ++c) {
        q[size_t(r * k + c)] =
            latentserve::float_to_fp8_e4m3(f[size_t(r * k + c)] / inv[size_t((r / 128) * bc + c / 128)]);
      }
    }
    x.fp8.push_back(std::move(q));
    x.scales.push_back(cuda::pack_weight_scales(inv.data(), n, k));
  }
  return x;
}

void check_case(const Case& c, std::mt19937& rng) {
  const bool silu = c.epilogue == cuda::MoeGemmEpilogue::kSiluMul;
  const int64_t E = int64_t(c.counts.size()), cols = silu ? c.n / 2 : c.n;
  const int64_t lda = c.k + c.lda_pad, ldy = cols + c.ldy_pad;
  std::vector<int32_t> offsets(size_t(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) offsets[size_t(e + 1)] = offsets[size_t(e)] + c.counts[size_t(e)];
  const int64_t used = offsets.back(), max_rows = used + c.dropped;
  INFO("w=" << latentserve::dtype_name(c.w_dtype) << " silu=" << silu << " y="
            << latentserve::dtype_name(c.y_dtype) << " experts=" << E << " rows=" << used
            << " n=" << c.n << " k=" << c.k << " lda=" << lda << " ldy=" << ldy
            << " gather=" << c.gather << " dropped=" << c.dropped);

  const Experts w = random_experts(c.w_dtype, E, c.n, c.k, rng);
  const int64_t a_count = c.gather ? std::max<int64_t>(max_rows / 3, 1) : std::max<int64_t>(max_rows, 1);
  const auto a = random_bf16(size_t(a_count * lda), 1.0f, rng);
  std::vector<int32_t> a_rows(size_t(std::max<int64_t>(max_rows, 1)));
  std::uniform_int_distribution<int32_t> pick(0, int32_t(a_count - 1));
  for (int32_t& r : a_rows) r = pick(rng);

  // Device side: each matrix in its own allocation, as separately loaded experts are.
  std::vector<std::unique_ptr<DeviceMemory>> mats, scales;
  std::vector<cuda::MoeExpertWeights> dev_table(static_cast<size_t>(E)), host_table(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    const bool fp8 = c.w_dtype == DType::F8_E4M3;
    mats.push_back(std::make_unique<DeviceMemory>(size_t(c.n * c.k) * (fp8 ? 1 : 2)));
    const void* host = fp8 ? static_cast<const void*>(w.fp8[size_t(e)].data())
                           : static_cast<const void*>(w.bf16[size_t(e)].data());
    const float* host_scales = fp8 ? w.scales[size_t(e)].data() : nullptr;
    if (fp8) {
      to_device(*mats.back(), w.fp8[size_t(e)]);
      scales.push_back(std::make_unique<DeviceMemory>(w.scales[size_t(e)].size() * 4));
      to_device(*scales.back(), w.scales[size_t(e)]);
    } else {
      to_device(*mats.back(), w.bf16[size_t(e)]);
    }
    const float* dev_scales = fp8 ? scales.back()->as<const float>() : nullptr;
    // The GEMM reads only the selected matrix; the other slot holds the same one.
    dev_table[size_t(e)] = {mats.back()->ptr, dev_scales, mats.back()->ptr, dev_scales};
    host_table[size_t(e)] = {host, host_scales, host, host_scales};
  }
  DeviceMemory d_table(dev_table.size() * sizeof(cuda::MoeExpertWeights)), d_offsets(offsets.size() * 4),
      d_a(a.bits.size() * 2), d_rows(a_rows.size() * 4);
  to_device(d_table, dev_table);
  to_device(d_offsets, offsets);
  to_device(d_a, a.bits);
  to_device(d_rows, a_rows);
  const size_t y_size = c.y_dtype == DType::F32 ? 4 : 2;
  const size_t y_bytes = size_t(std::max<int64_t>(max_rows, 1) * ldy) * y_size;
  DeviceMemory d_y(y_bytes);
  // 0x7f bytes: a value no output takes, so untouched entries show.
  require_ok(LS_CUDA_CHECK(cudaMemset(d_y.ptr, 0x7f, y_bytes)));

  cuda::MoeGroupedGemmParams p;
  p.w_dtype = c.w_dtype;
  p.experts = d_table.as<const cuda::MoeExpertWeights>();
  p.weight = (E % 2 == 0) ? cuda::MoeGemmWeight::kGateUp : cuda::MoeGemmWeight::kDown;
  p.num_experts = E;
  p.offsets = d_offsets.as<const int32_t>();
  p.max_rows = max_rows;
  p.a = d_a.ptr;
  p.lda = lda;
  p.a_rows = c.gather ? d_rows.as<const int32_t>() : nullptr;
  p.n = c.n;
  p.k = c.k;
  p.epilogue = c.epilogue;
  p.y = d_y.ptr;
  p.y_dtype = c.y_dtype;
  p.ldy = ldy;
  require_ok(cuda::moe_grouped_gemm(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  const auto raw = from_device<uint8_t>(d_y, y_bytes);

  std::vector<float> want(size_t(std::max<int64_t>(max_rows, 1) * ldy), 0.0f);
  cuda::moe_grouped_gemm_reference(p, host_table.data(), offsets.data(), a.bits.data(),
                                   c.gather ? a_rows.data() : nullptr, want.data());

  const auto got_at = [&](int64_t r, int64_t j) {
    const size_t i = size_t(r * ldy + j);
    if (c.y_dtype == DType::F32) {
      float v;
      std::memcpy(&v, raw.data() + i * 4, 4);
      return v;
    }
    uint16_t b;
    std::memcpy(&b, raw.data() + i * 2, 2);
    return latentserve::bf16_to_float(b);
  };
  const auto untouched = [&](int64_t r, int64_t j) {
    const size_t i = size_t(r * ldy + j) * y_size;
    return std::all_of(raw.begin() + long(i), raw.begin() + long(i + y_size),
                       [](uint8_t b) { return b == 0x7f; });
  };
  // BF16 outputs round to 8 bits; FP8 weights are rounded to BF16 after their scale.
  const double tolerance = (c.y_dtype == DType::BF16 || c.w_dtype == DType::F8_E4M3) ? 8e-3 : 1e-4;
  double worst = 0.0;
  int64_t bad = 0, stray = 0;
  for (int64_t r = 0; r < max_rows; ++r) {
    if (r >= used) {
      for (int64_t j = 0; j < ldy; ++j) stray += !untouched(r, j);
      continue;
    }
    double err = 0.0, norm = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      const double d = double(got_at(r, j)) - want[size_t(r * ldy + j)];
      err += d * d;
      norm += double(want[size_t(r * ldy + j)]) * want[size_t(r * ldy + j)];
    }
    for (int64_t j = cols; j < ldy; ++j) stray += !untouched(r, j);
    const double rel = std::sqrt(err / std::max(norm, 1e-30));
    worst = std::max(worst, rel);
    if (!(rel <= tolerance) && bad++ < 3) UNSCOPED_INFO("row " << r << ": relative L2 error " << rel);
  }
  INFO("worst relative L2 error " << worst << ", entries written outside the output " << stray);
  CHECK(bad == 0);
  CHECK(stray == 0);

  // No atomics and a fixed tile order: the same bits again.
  require_ok(cuda::moe_grouped_gemm(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  CHECK(from_device<uint8_t>(d_y, y_bytes) == raw);
}

std::vector<int32_t> random_counts(int64_t experts, int64_t rows, double empty_fraction,
                                   std::mt19937& rng) {
  std::vector<int32_t> counts(size_t(experts), 0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int64_t> live;
  for (int64_t e = 0; e < experts; ++e) {
    if (u(rng) >= empty_fraction) live.push_back(e);
  }
  if (live.empty()) live.push_back(0);
  std::uniform_int_distribution<size_t> pick(0, live.size() - 1);
  for (int64_t r = 0; r < rows; ++r) ++counts[size_t(live[pick(rng)])];
  return counts;
}

}  // namespace

TEST_CASE("cuda grouped MoE GEMM, BF16 weights, against the CPU reference", "[cuda][moe][gemm]") {
  std::mt19937 rng(std::random_device{}());
  const auto store = cuda::MoeGemmEpilogue::kStore;
  const auto silu = cuda::MoeGemmEpilogue::kSiluMul;
  // Rows 0, 1, off 16/64/128; n off the tile; k off the 64-wide k-tile; gathered rows; odd ldy
  // (no paired stores); rows dropped past the last expert.
  check_case({DType::BF16, store, DType::F32, {0, 1, 130, 17, 257}, 200, 136, true, 8, 3, 5}, rng);
  check_case({DType::BF16, silu, DType::BF16, {64, 0, 129, 3}, 144, 264, false, 0, 0, 0}, rng);
  check_case({DType::BF16, silu, DType::F32, {33, 200, 1}, 2 * 40, 128, true, 0, 1, 0}, rng);
  // k and lda off the 16-byte path: the element-wise loads.
  check_case({DType::BF16, store, DType::BF16, {5, 0, 70}, 72, 50, true, 3, 0, 2}, rng);
  check_case({DType::BF16, silu, DType::F32, {9, 140}, 2 * 20, 30, false, 1, 0, 0}, rng);
  // DeepSeek-V3's down depth (k = 2048) on a few rows.
  check_case({DType::BF16, store, DType::F32, {3, 0, 150, 0}, 136, 2048, false, 0, 0, 0}, rng);
}

TEST_CASE("cuda grouped MoE GEMM, FP8 block-scaled weights, against the CPU reference",
          "[cuda][moe][gemm]") {
  std::mt19937 rng(std::random_device{}());
  const auto store = cuda::MoeGemmEpilogue::kStore;
  const auto silu = cuda::MoeGemmEpilogue::kSiluMul;
  // k = 320: a partial 128-wide scale block (and a 64-wide k-tile in it); n = 384: three row blocks.
  check_case({DType::F8_E4M3, store, DType::F32, {1, 0, 0, 200, 127, 33}, 384, 320, true, 0, 0, 4}, rng);
  // Width 256 as stacked gate/up layers use (the up half starts on a scale block), k = 1040.
  check_case({DType::F8_E4M3, silu, DType::BF16, {5, 140, 0, 300}, 512, 1040, true, 0, 2, 0}, rng);
  // n = 100: one partial row block; k = 200: off the 16-byte path, a partial scale block.
  check_case({DType::F8_E4M3, store, DType::BF16, {77, 1, 0}, 100, 200, false, 0, 0, 0}, rng);
  check_case({DType::F8_E4M3, silu, DType::F32, {2, 19, 130, 0, 1}, 2 * 96, 200, true, 4, 0, 1}, rng);
}

TEST_CASE("cuda grouped MoE GEMM: many experts and more tiles than the grid", "[cuda][moe][gemm]") {
  std::mt19937 rng(std::random_device{}());
  const auto store = cuda::MoeGemmEpilogue::kStore;
  const auto silu = cuda::MoeGemmEpilogue::kSiluMul;
  // 256 experts with a quarter empty, and the largest expert count with most of them empty:
  // the block-wide prefix scan over every expert and the search through empty ones.
  check_case({DType::BF16, store, DType::F32, random_counts(256, 2000, 0.25, rng), 128, 128, true, 0, 0, 0}, rng);
  check_case({DType::F8_E4M3, silu, DType::BF16, random_counts(1024, 900, 0.9, rng), 256, 128, true, 0, 0, 7}, rng);
  // 8 experts × 3 row tiles × 16 column tiles: more tiles than blocks on any current GPU, so
  // blocks walk several tiles each.
  check_case({DType::BF16, store, DType::BF16, std::vector<int32_t>(8, 300), 2048, 64, false, 0, 0, 0}, rng);
}

TEST_CASE("cuda grouped MoE GEMM: bad parameters are errors", "[cuda][moe][gemm]") {
  DeviceMemory buf(1 << 16);
  cuda::MoeGroupedGemmParams p;
  p.experts = buf.as<const cuda::MoeExpertWeights>();
  p.num_experts = 4;
  p.offsets = buf.as<const int32_t>();
  p.max_rows = 8;
  p.a = p.y = buf.ptr;
  p.lda = 64;
  p.n = 64;
  p.k = 64;
  p.ldy = 64;
  cuda::MoeGroupedGemmParams q = p;
  q.w_dtype = DType::F32;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.y_dtype = DType::F8_E4M3;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.lda = 63;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.num_experts = cuda::kMoeMaxExperts + 1;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.epilogue = cuda::MoeGemmEpilogue::kSiluMul;
  q.n = 63;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.ldy = 63;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
  q = p;
  q.offsets = nullptr;
  CHECK(!cuda::moe_grouped_gemm(q, nullptr).ok());
}
