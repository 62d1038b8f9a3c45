// The cuBLASLt GEMMs against the CPU reference (kernels/cpu/matmul.h) on fresh random inputs at
// awkward sizes: BF16 weights, and FP8 weights with 128×128 block scales through both the
// block-scaled FP8 path and the dequantized BF16 fallback. Tolerances are derived from the
// arithmetic each path does, in terms of Σₖ|xₖ·wₖ| per output, so a wrong scale or layout (an
// O(1) error) cannot pass.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/quantize.h"
#include "cuda_test_util.h"

namespace {

using latentserve::DType;
namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using latentserve::test_cuda::device_copy;
using latentserve::test_cuda::require_ok;

cuda::MatmulContext& context() {
  static std::unique_ptr<cuda::MatmulContext> ctx = [] {
    auto made = cuda::MatmulContext::create();
    INFO((made.ok() ? std::string() : made.error().message));
    REQUIRE(made.ok());
    return std::move(made).value();
  }();
  return *ctx;
}

// A host matrix as the device sees it: `values` are exact (BF16-rounded when stored as BF16).
struct HostMatrix {
  std::vector<float> values;
  std::vector<uint16_t> bf16;
  DType dtype = DType::F32;
  const void* bytes() const {
    return dtype == DType::BF16 ? (const void*)bf16.data() : values.data();
  }
  size_t size_bytes() const { return values.size() * latentserve::dtype_size(dtype); }
};

// Rows of activations with per-token magnitudes spanning 2⁻⁴…2⁴, stored as `dtype`.
HostMatrix random_activations(int64_t m, int64_t ld, DType dtype, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_mag(-4.0f, 4.0f);
  HostMatrix h;
  h.dtype = dtype;
  h.values.resize(size_t(m * ld));
  for (int64_t i = 0; i < m; ++i) {
    const float mag = std::exp2(log_mag(rng));
    for (int64_t c = 0; c < ld; ++c) h.values[size_t(i * ld + c)] = normal(rng) * mag;
  }
  if (dtype == DType::BF16) {
    for (float& v : h.values) {
      h.bf16.push_back(latentserve::float_to_bf16(v));
      v = latentserve::bf16_to_float(h.bf16.back());
    }
  }
  return h;
}

// An FP8 weight made the way DeepSeek's checkpoints are: per 128×128 block, scale = amax/448.
struct HostFp8Weight {
  std::vector<uint8_t> codes;
  std::vector<float> scale_inv;  // [ceil(n/128), ceil(k/128)]
  std::vector<float> dequantized;
  int64_t n = 0, k = 0;
  cpu::WeightMatrix view() const {
    cpu::WeightMatrix w;
    w.dtype = DType::F8_E4M3;
    w.data = codes.data();
    w.rows = n;
    w.cols = k;
    w.scale_inv = scale_inv.data();
    return w;
  }
};

HostFp8Weight random_fp8_weight(int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::uniform_real_distribution<float> log_mag(-3.0f, 3.0f);
  HostFp8Weight w;
  w.n = n;
  w.k = k;
  const int64_t bn = cuda::ceil_div(n, 128), bk = cuda::ceil_div(k, 128);
  std::vector<float> block_mag(size_t(bn * bk));
  for (float& v : block_mag) v = std::exp2(log_mag(rng));
  std::vector<float> f(size_t(n * k));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c)
      f[size_t(r * k + c)] = normal(rng) * block_mag[size_t((r / 128) * bk + c / 128)];
  }
  w.scale_inv.assign(size_t(bn * bk), 0.0f);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      float& s = w.scale_inv[size_t((r / 128) * bk + c / 128)];
      s = std::max(s, std::fabs(f[size_t(r * k + c)]) / 448.0f);
    }
  }
  w.codes.resize(f.size());
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c) {
      const float s = w.scale_inv[size_t((r / 128) * bk + c / 128)];
      w.codes[size_t(r * k + c)] = latentserve::float_to_fp8_e4m3(f[size_t(r * k + c)] / s);
    }
  }
  w.dequantized.resize(f.size());
  cpu::dequantize(w.view(), w.dequantized.data());
  return w;
}

// out[i, n] = Σₖ a[i, k]·|w[n, k]| for non-negative a (used for Σ|x·w| and the quantization bound).
std::vector<double> abs_product(const std::vector<float>& a, int64_t lda, int64_t m,
                                const std::vector<float>& w, int64_t n, int64_t k) {
  std::vector<double> out(size_t(m * n));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t c = 0; c < k; ++c)
        s += double(a[size_t(i * lda + c)]) * std::fabs(w[size_t(j * k + c)]);
      out[size_t(i * n + j)] = s;
    }
  }
  return out;
}

std::vector<float> abs_values(const std::vector<float>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]);
  return out;
}

// Reads y back and counts outputs outside expected ± tol, and padding that changed.
int64_t count_bad(const cuda::DeviceBuffer& dy, DType yt, int64_t m, int64_t n, int64_t ldy,
                  const std::vector<float>& expected, const std::vector<double>& tol) {
  std::vector<float> got(size_t(m * ldy));
  std::vector<uint16_t> got_bf16(size_t(m * ldy));
  void* host = yt == DType::BF16 ? (void*)got_bf16.data() : (void*)got.data();
  require_ok(cuda::copy_to_host(host, dy.data(), size_t(m * ldy) * latentserve::dtype_size(yt)));
  int64_t bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < ldy; ++j) {
      const size_t at = size_t(i * ldy + j);
      if (j >= n) {  // padding: the 0x7f sentinel must survive
        bad += yt == DType::BF16 ? got_bf16[at] != 0x7f7fu
                                 : latentserve::float_to_bits(got[at]) != 0x7f7f7f7fu;
        continue;
      }
      const float g = yt == DType::BF16 ? latentserve::bf16_to_float(got_bf16[at]) : got[at];
      const double e = expected[size_t(i * n + j)];
      if (!(std::fabs(double(g) - e) <= tol[size_t(i * n + j)])) {
        if (bad < 3)
          UNSCOPED_INFO("y[" << i << "," << j << "] = " << g << ", want " << e << " ± "
                             << tol[size_t(i * n + j)]);
        ++bad;
      }
    }
  }
  return bad;
}

cuda::DeviceBuffer sentinel_output(int64_t m, int64_t ldy, DType yt) {
  const size_t bytes = size_t(m * ldy) * latentserve::dtype_size(yt);
  std::vector<uint8_t> fill(bytes, 0x7f);
  return device_copy(fill.data(), bytes);
}

// Relative rounding of one output store: BF16 keeps 8 significant bits.
double output_rounding(DType yt) {
  return yt == DType::BF16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -23);
}

// Worst-case relative error of an FP32 sum of k products (recursive summation), plus FP32 products.
double fp32_sum_error(int64_t k) {
  return double(k + 2) * std::ldexp(1.0, -24);
}

struct Shape {
  int64_t n, k;
};

// The shapes each m runs at: aligned, ragged K (320 = 2.5 blocks), ragged N (576), wide K and N.
std::vector<Shape> shapes_for(int64_t m) {
  std::vector<Shape> s = {{128, 128}, {256, 384}, {576, 320}, {128, 7168}};
  if (m <= 7) s.push_back({7168, 256});
  return s;
}

}  // namespace

TEST_CASE("cuda bf16 matmul matches the CPU reference", "[cuda][matmul]") {
  std::mt19937 rng(Catch::rngSeed() + 201);
  auto& ctx = context();
  for (int64_t m : {1, 7, 64, 130}) {
    for (Shape s : shapes_for(m)) {
      const int64_t n = s.n, k = s.k, ldx = k + 8;
      CAPTURE(m, n, k);
      HostMatrix x = random_activations(m, ldx, DType::BF16, rng);
      std::normal_distribution<float> normal(0.0f, 0.05f);
      HostMatrix w;
      w.dtype = DType::BF16;
      for (int64_t i = 0; i < n * k; ++i) {
        w.bf16.push_back(latentserve::float_to_bf16(normal(rng)));
        w.values.push_back(latentserve::bf16_to_float(w.bf16.back()));
      }
      cpu::WeightMatrix wm;
      wm.dtype = DType::BF16;
      wm.data = w.bf16.data();
      wm.rows = n;
      wm.cols = k;
      std::vector<float> expected(size_t(m * n));
      cpu::matmul_reference(x.values.data(), ldx, m, wm, expected.data(), n);
      const std::vector<double> abs_sum = abs_product(abs_values(x.values), ldx, m, w.values, n, k);

      auto dx = device_copy(x.bytes(), x.size_bytes());
      auto dw = device_copy(w.bytes(), w.size_bytes());
      for (DType yt : {DType::BF16, DType::F32}) {
        CAPTURE(latentserve::dtype_name(yt));
        const int64_t ldy = n + 8;
        auto dy = sentinel_output(m, ldy, yt);
        cuda::MatmulBf16Params p;
        p.x = dx.data();
        p.w = dw.data();
        p.y = dy.data();
        p.y_dtype = yt;
        p.m = m;
        p.n = n;
        p.k = k;
        p.ldx = ldx;
        p.ldy = ldy;
        require_ok(ctx.bf16(p, nullptr));
        std::vector<double> tol(expected.size());
        for (size_t i = 0; i < tol.size(); ++i) {
          tol[i] = output_rounding(yt) * std::fabs(expected[i]) +
                   (1.0 + output_rounding(yt)) * fp32_sum_error(k) * abs_sum[i] + 1e-30;
        }
        CHECK(count_bad(dy, yt, m, n, ldy, expected, tol) == 0);
      }
    }
  }
}

TEST_CASE("cuda fp8 block-scaled matmul matches the CPU reference", "[cuda][matmul][fp8]") {
  std::mt19937 rng(Catch::rngSeed() + 202);
  auto& ctx = context();
  std::ostringstream paths_seen;
  for (int64_t m : {1, 7, 64, 130}) {
    for (Shape s : shapes_for(m)) {
      const int64_t n = s.n, k = s.k, ldx = k + 8, ldy = n + 8;
      CAPTURE(m, n, k);
      const HostFp8Weight w = random_fp8_weight(n, k, rng);
      const std::vector<float> packed = cuda::pack_weight_scales(w.scale_inv.data(), n, k);
      auto dcodes = device_copy(w.codes.data(), w.codes.size());
      auto dscales = device_copy(packed.data(), packed.size() * sizeof(float));
      for (DType xt : {DType::BF16, DType::F32}) {
        CAPTURE(latentserve::dtype_name(xt));
        HostMatrix x = random_activations(m, ldx, xt, rng);
        // The activations as the FP8 path sees them: quantized per token in 1×128 groups.
        const int64_t sld = cuda::activation_scale_ld(m), groups = cuda::ceil_div(k, 128);
        std::vector<uint8_t> q(size_t(m * k));
        std::vector<float> qs(size_t(groups * sld));
        cuda::quantize_fp8_per_token_group_reference(x.values.data(), ldx, m, k, q.data(), k,
                                                     qs.data(), sld);
        std::vector<float> xq(size_t(m * k)), group_scale(size_t(m * k));
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t c = 0; c < k; ++c) {
            group_scale[size_t(i * k + c)] = qs[size_t((c / 128) * sld + i)];
            xq[size_t(i * k + c)] = latentserve::fp8_e4m3_to_float(q[size_t(i * k + c)]) *
                                    group_scale[size_t(i * k + c)];
          }
        }
        std::vector<float> expected(size_t(m * n)), expected_q(size_t(m * n));
        cpu::matmul_reference(x.values.data(), ldx, m, w.view(), expected.data(), n);
        cpu::matmul_reference(xq.data(), k, m, w.view(), expected_q.data(), n);
        const std::vector<double> abs_sum =
            abs_product(abs_values(x.values), ldx, m, w.dequantized, n, k);
        const std::vector<double> abs_sum_q =
            abs_product(abs_values(xq), k, m, w.dequantized, n, k);
        const std::vector<double> scale_sum = abs_product(group_scale, k, m, w.dequantized, n, k);

        auto dx = device_copy(x.bytes(), x.size_bytes());
        for (DType yt : {DType::BF16, DType::F32}) {
          for (bool block_scaled : {true, false}) {
            CAPTURE(latentserve::dtype_name(yt), block_scaled);
            auto dy = sentinel_output(m, ldy, yt);
            cuda::MatmulFp8Params p;
            p.x = dx.data();
            p.x_dtype = xt;
            p.w = cuda::Fp8BlockWeight{dcodes.as<uint8_t>(), dscales.as<float>(), n, k};
            p.y = dy.data();
            p.y_dtype = yt;
            p.m = m;
            p.ldx = ldx;
            p.ldy = ldy;
            ctx.allow_block_scaled_fp8(block_scaled);
            require_ok(ctx.fp8(p, nullptr));
            const cuda::Fp8Path path = ctx.last_fp8_path();
            if (block_scaled && xt == DType::BF16 && yt == DType::BF16) {
              paths_seen << ' ' << m << 'x' << n << 'x' << k << ':' << cuda::fp8_path_name(path);
            }
            const double r_out = output_rounding(yt);
            std::vector<double> tol(expected.size()), tol_q(expected.size());
            for (size_t i = 0; i < tol.size(); ++i) {
              if (path == cuda::Fp8Path::kBlockScaled) {
                // Against the quantized activations only accumulation and the store differ.
                // Hopper's FP8 MMA accumulates with ~14 bits inside each 128-wide K block before
                // the FP32 promotion the block scales force (DeepSeek-V3 report §3.3.2): allow
                // 2⁻¹⁰.
                tol_q[i] =
                    r_out * std::fabs(expected_q[i]) + std::ldexp(1.0, -10) * abs_sum_q[i] + 1e-30;
                // Against the exact activations add the quantization error: per element at most
                // 2⁻⁴|x| (normal codes) + 2⁻¹⁰·s (subnormal codes), times |w|.
                tol[i] = tol_q[i] + std::ldexp(1.0, -4) * abs_sum[i] * 1.001 +
                         std::ldexp(1.0, -10) * scale_sum[i];
              } else {
                // BF16 weights (and F32 activations made BF16): two roundings of 2⁻⁹ per product.
                const double conv = xt == DType::F32 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -9);
                tol[i] = r_out * std::fabs(expected[i]) +
                         (conv + fp32_sum_error(k)) * (1.0 + r_out) * abs_sum[i] + 1e-30;
              }
            }
            if (!block_scaled) CHECK(path == cuda::Fp8Path::kDequantizedBf16);
            if (path == cuda::Fp8Path::kBlockScaled) {
              CHECK(count_bad(dy, yt, m, n, ldy, expected_q, tol_q) == 0);
            }
            CHECK(count_bad(dy, yt, m, n, ldy, expected, tol) == 0);
          }
        }
      }
    }
  }
  ctx.allow_block_scaled_fp8(true);
  WARN("fp8 paths taken (m x n x k: path):" << paths_seen.str());
}

TEST_CASE("cuda fp8 matmul takes the block-scaled path on Hopper", "[cuda][matmul][fp8]") {
  std::mt19937 rng(Catch::rngSeed() + 204);
  auto& ctx = context();
  if (ctx.compute_capability() != 90) {
    WARN("compute capability "
         << ctx.compute_capability()
         << ": cuBLASLt documents the 1x128/128x128 FP8 scale modes for 9.0 only");
    return;
  }
  const int64_t m = 64, n = 256, k = 384;
  const HostFp8Weight w = random_fp8_weight(n, k, rng);
  const std::vector<float> packed = cuda::pack_weight_scales(w.scale_inv.data(), n, k);
  auto dcodes = device_copy(w.codes.data(), w.codes.size());
  auto dscales = device_copy(packed.data(), packed.size() * sizeof(float));
  HostMatrix x = random_activations(m, k, DType::BF16, rng);
  auto dx = device_copy(x.bytes(), x.size_bytes());
  auto dy = sentinel_output(m, n, DType::BF16);
  cuda::MatmulFp8Params p;
  p.x = dx.data();
  p.w = cuda::Fp8BlockWeight{dcodes.as<uint8_t>(), dscales.as<float>(), n, k};
  p.y = dy.data();
  p.m = m;
  p.ldx = k;
  p.ldy = n;
  require_ok(ctx.fp8(p, nullptr));
  CHECK(std::string(cuda::fp8_path_name(ctx.last_fp8_path())) == "fp8-block-scaled");
}

TEST_CASE("cuda matmul reuses its cached plans", "[cuda][matmul]") {
  std::mt19937 rng(Catch::rngSeed() + 203);
  auto& ctx = context();
  const int64_t m = 5, n = 64, k = 96;
  HostMatrix x = random_activations(m, k, DType::BF16, rng);
  HostMatrix w = random_activations(n, k, DType::BF16, rng);
  auto dx = device_copy(x.bytes(), x.size_bytes()), dw = device_copy(w.bytes(), w.size_bytes());
  auto dy = sentinel_output(m, n + 16, DType::F32);
  cuda::MatmulBf16Params p;
  p.x = dx.data();
  p.w = dw.data();
  p.y = dy.data();
  p.y_dtype = DType::F32;
  p.m = m;
  p.n = n;
  p.k = k;
  p.ldx = k;
  p.ldy = n;
  require_ok(ctx.bf16(p, nullptr));
  const size_t plans = ctx.cached_plans();
  require_ok(ctx.bf16(p, nullptr));
  CHECK(ctx.cached_plans() == plans);
  p.ldy = n + 16;  // a new stride is a new plan
  require_ok(ctx.bf16(p, nullptr));
  CHECK(ctx.cached_plans() == plans + 1);
}

TEST_CASE("cuda matmul with k = 0 writes zeros", "[cuda][matmul]") {
  auto& ctx = context();
  const int64_t m = 3, n = 32, ldy = 40;
  auto dy = sentinel_output(m, ldy, DType::F32);
  uint16_t dummy_host[8] = {};
  auto dummy = device_copy(dummy_host, sizeof dummy_host);
  cuda::MatmulBf16Params p;
  p.x = p.w = dummy.data();
  p.y = dy.data();
  p.y_dtype = DType::F32;
  p.m = m;
  p.n = n;
  p.k = 0;
  p.ldx = 0;
  p.ldy = ldy;
  require_ok(ctx.bf16(p, nullptr));
  const std::vector<float> zeros(size_t(m * n), 0.0f);
  const std::vector<double> tol(zeros.size(), 0.0);
  CHECK(count_bad(dy, DType::F32, m, n, ldy, zeros, tol) == 0);
}

TEST_CASE("cuda matmul rejects bad parameters with a message", "[cuda][matmul]") {
  auto& ctx = context();
  int dummy = 0;
  cuda::MatmulBf16Params p;
  p.x = p.w = p.y = &dummy;
  p.m = 2;
  p.n = 16;
  p.k = 32;
  p.ldx = 16;  // shorter than k
  p.ldy = 16;
  auto st = ctx.bf16(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("ldx=16") != std::string::npos);
  p.ldx = 32;
  p.y_dtype = DType::F16;
  st = ctx.bf16(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("F16") != std::string::npos);

  cuda::MatmulFp8Params f;
  f.x = f.y = &dummy;
  f.w = cuda::Fp8BlockWeight{reinterpret_cast<const uint8_t*>(&dummy), nullptr, 16, 32};
  f.m = 2;
  f.ldx = 32;
  f.ldy = 16;
  st = ctx.fp8(f, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("w.scales") != std::string::npos);
  f.w.scales = reinterpret_cast<const float*>(&dummy);
  f.x_dtype = DType::F8_E4M3;
  st = ctx.fp8(f, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("x_dtype F8_E4M3") != std::string::npos);
}
