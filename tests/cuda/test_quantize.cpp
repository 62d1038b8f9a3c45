// The CUDA FP8 quantization kernels against their CPU twins: per-token-group activation
// quantization (codes and scales bit for bit), the weight dequantization the BF16 fallback uses,
// and F32 → BF16 conversion, at awkward sizes with padded strides whose padding must stay
// untouched.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/quantize.h"
#include "cuda_test_util.h"

namespace {

using latentserve::DType;
namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using latentserve::test_cuda::require_ok;

cuda::DeviceBuffer device_alloc(size_t bytes) {
  auto buf = cuda::DeviceBuffer::allocate(bytes, "test buffer");
  INFO((buf.ok() ? std::string() : buf.error().message));
  REQUIRE(buf.ok());
  return std::move(buf).value();
}

void upload(const cuda::DeviceBuffer& dst, const void* src, size_t bytes) {
  auto st = cuda::copy_to_device(dst.data(), src, bytes);
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());
}

void download(void* dst, const cuda::DeviceBuffer& src, size_t bytes) {
  auto st = cuda::copy_to_host(dst, src.data(), bytes);
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());
}

// Activations whose groups differ in magnitude by orders of magnitude (so scales differ), with
// occasional outliers, values small enough to land on E4M3 subnormals, and exact zeros.
std::vector<float> random_activations(int64_t rows, int64_t ld, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> log_mag(-6.0f, 4.0f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<float> x(size_t(rows * ld));
  for (int64_t r = 0; r < rows; ++r) {
    float mag = std::exp2(log_mag(rng));
    for (int64_t c = 0; c < ld; ++c) {
      if (c % 128 == 0) mag = std::exp2(log_mag(rng));
      const int u = pick(rng);
      float v = normal(rng) * mag;
      if (u == 0) v *= 50.0f;  // outlier: sets the group's scale
      if (u == 1) v *= 1e-4f;  // far below the scale: subnormal or zero code
      if (u == 2) v = 0.0f;
      x[size_t(r * ld + c)] = v;
    }
  }
  return x;
}

void check_quantize(int64_t rows, int64_t cols, DType xt, std::mt19937& rng) {
  CAPTURE(rows, cols, latentserve::dtype_name(xt));
  const int64_t ldx = cols + 3, ldq = cols + 5, scale_ld = cuda::activation_scale_ld(rows) + 4;
  const int64_t groups = cuda::ceil_div(cols, cuda::kFp8Group);
  std::vector<float> x = random_activations(rows, ldx, rng);
  std::vector<uint16_t> x_bf16;
  if (xt == DType::BF16) {  // the reference sees exactly what the device reads
    for (float& v : x) {
      x_bf16.push_back(latentserve::float_to_bf16(v));
      v = latentserve::bf16_to_float(x_bf16.back());
    }
  }
  std::vector<uint8_t> q_ref(size_t(rows * ldq), 0xa5);
  std::vector<float> s_ref(size_t(groups * scale_ld), -7.0f);
  cuda::quantize_fp8_per_token_group_reference(x.data(), ldx, rows, cols, q_ref.data(), ldq,
                                               s_ref.data(), scale_ld);

  const size_t x_bytes = x.size() * latentserve::dtype_size(xt);
  auto dx = device_alloc(x_bytes);
  auto dq = device_alloc(q_ref.size());
  auto ds = device_alloc(s_ref.size() * sizeof(float));
  upload(dx, xt == DType::BF16 ? (const void*)x_bf16.data() : (const void*)x.data(), x_bytes);
  // Sentinels: the padding must come back as it went in.
  std::vector<uint8_t> q_init(q_ref.size(), 0xa5);
  std::vector<float> s_init(s_ref.size(), -7.0f);
  upload(dq, q_init.data(), q_init.size());
  upload(ds, s_init.data(), s_init.size() * sizeof(float));

  cuda::QuantizeParams p;
  p.x = dx.data();
  p.x_dtype = xt;
  p.ldx = ldx;
  p.q = dq.as<uint8_t>();
  p.ldq = ldq;
  p.scales = ds.as<float>();
  p.scale_ld = scale_ld;
  p.rows = rows;
  p.cols = cols;
  require_ok(cuda::quantize_fp8_per_token_group(p, nullptr));
  std::vector<uint8_t> q(q_ref.size());
  std::vector<float> s(s_ref.size());
  download(q.data(), dq, q.size());
  download(s.data(), ds, s.size() * sizeof(float));

  int64_t bad_codes = 0, bad_scales = 0, bad_bound = 0;
  for (size_t i = 0; i < q.size(); ++i) bad_codes += q[i] != q_ref[i];
  for (size_t i = 0; i < s.size(); ++i) {
    bad_scales += latentserve::float_to_bits(s[i]) != latentserve::float_to_bits(s_ref[i]);
  }
  // The property the matmul tolerances rest on: |q·s − x| ≤ 2⁻⁴|x| (normal codes: 3 mantissa
  // bits, half-ulp) + 2⁻¹⁰·s (subnormal codes: quantum 2⁻⁹·s).
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const float sc = s[size_t((c / cuda::kFp8Group) * scale_ld + r)];
      const float xv = x[size_t(r * ldx + c)];
      const float back = latentserve::fp8_e4m3_to_float(q[size_t(r * ldq + c)]) * sc;
      if (!(std::fabs(back - xv) <= (0.0625f * std::fabs(xv) + sc * 0.0009765625f) * 1.0001f)) {
        ++bad_bound;
      }
    }
  }
  CHECK(bad_codes == 0);
  CHECK(bad_scales == 0);
  CHECK(bad_bound == 0);
}

}  // namespace

TEST_CASE("cuda fp8 per-token-group quantization matches the CPU reference", "[cuda][quantize]") {
  std::mt19937 rng(Catch::rngSeed() + 101);
  for (int64_t rows : {1, 7, 64, 130}) {
    for (int64_t cols : {1, 100, 128, 320, 7168 + 16}) {
      for (DType xt : {DType::F32, DType::BF16}) check_quantize(rows, cols, xt, rng);
    }
  }
}

TEST_CASE("cuda fp8 quantization of an all-zero group gives scale 1 and zero codes",
          "[cuda][quantize]") {
  const int64_t rows = 3, cols = 256;
  std::vector<float> x(size_t(rows * cols), 0.0f);
  x[size_t(1 * cols + 200)] = -3.5f;  // row 1, group 1 is the only non-zero group
  auto dx = device_alloc(x.size() * 4), dq = device_alloc(x.size()), ds = device_alloc(2 * 4 * 4);
  upload(dx, x.data(), x.size() * 4);
  cuda::QuantizeParams p;
  p.x = dx.data();
  p.x_dtype = DType::F32;
  p.ldx = cols;
  p.q = dq.as<uint8_t>();
  p.ldq = cols;
  p.scales = ds.as<float>();
  p.scale_ld = 4;
  p.rows = rows;
  p.cols = cols;
  require_ok(cuda::quantize_fp8_per_token_group(p, nullptr));
  std::vector<uint8_t> q(x.size());
  std::vector<float> s(8);
  download(q.data(), dq, q.size());
  download(s.data(), ds, s.size() * 4);
  CHECK(s[0] == 1.0f);
  CHECK(s[4 + 1] == 3.5f / 448.0f);
  CHECK(q[size_t(1 * cols + 200)] == 0xfe);  // −448
  int64_t nonzero = 0;
  for (uint8_t v : q) nonzero += v != 0;
  CHECK(nonzero == 1);
}

TEST_CASE("cuda fp8 weight dequantization matches the CPU weight_at", "[cuda][quantize]") {
  std::mt19937 rng(Catch::rngSeed() + 102);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(1e-4f, 2e-2f);
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 1}, {130, 320}, {256, 7168}, {576, 200}}) {
    CAPTURE(rows, cols);
    std::vector<uint8_t> codes(size_t(rows * cols));
    for (uint8_t& c : codes) {
      c = uint8_t(byte(rng));
      if ((c & 0x7f) == 0x7f) c ^= 1;  // no NaN codes: real checkpoints have none
    }
    const int64_t br = cuda::ceil_div(rows, 128), bc = cuda::ceil_div(cols, 128);
    std::vector<float> scale_inv(size_t(br * bc));
    for (float& v : scale_inv) v = scale(rng);
    cpu::WeightMatrix w;
    w.dtype = DType::F8_E4M3;
    w.data = codes.data();
    w.rows = rows;
    w.cols = cols;
    w.scale_inv = scale_inv.data();
    const std::vector<float> packed = cuda::pack_weight_scales(scale_inv.data(), rows, cols);
    REQUIRE(int64_t(packed.size()) == br * cuda::weight_scale_ld(cols));

    auto dcodes = device_alloc(codes.size()), dscales = device_alloc(packed.size() * 4);
    auto dout = device_alloc(codes.size() * 2);
    upload(dcodes, codes.data(), codes.size());
    upload(dscales, packed.data(), packed.size() * 4);
    cuda::Fp8BlockWeight dw{dcodes.as<uint8_t>(), dscales.as<float>(), rows, cols};
    require_ok(cuda::dequantize_fp8_weight(dw, dout.data(), nullptr));
    std::vector<uint16_t> got(codes.size());
    download(got.data(), dout, got.size() * 2);
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        bad += got[size_t(r * cols + c)] != latentserve::float_to_bf16(cpu::weight_at(w, r, c));
      }
    }
    CHECK(bad == 0);
  }
}

TEST_CASE("cuda f32 to bf16 conversion rounds to nearest even", "[cuda][quantize]") {
  std::mt19937 rng(Catch::rngSeed() + 103);
  const int64_t rows = 7, cols = 333, ldx = 340, ldo = 350;
  std::vector<float> x = random_activations(rows, ldx, rng);
  auto dx = device_alloc(x.size() * 4), dout = device_alloc(size_t(rows * ldo) * 2);
  upload(dx, x.data(), x.size() * 4);
  std::vector<uint16_t> init(size_t(rows * ldo), 0x1234);
  upload(dout, init.data(), init.size() * 2);
  require_ok(cuda::convert_f32_to_bf16(dx.as<float>(), ldx, rows, cols, dout.data(), ldo, nullptr));
  std::vector<uint16_t> got(init.size());
  download(got.data(), dout, got.size() * 2);
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < ldo; ++c) {
      const uint16_t want = c < cols ? latentserve::float_to_bf16(x[size_t(r * ldx + c)]) : 0x1234;
      bad += got[size_t(r * ldo + c)] != want;
    }
  }
  CHECK(bad == 0);
}

TEST_CASE("cuda fp8 quantization rejects bad parameters with a message", "[cuda][quantize]") {
  cuda::QuantizeParams p;
  p.rows = 4;
  p.cols = 256;
  p.ldx = 256;
  p.ldq = 128;  // shorter than a row
  p.scale_ld = 4;
  auto st = cuda::quantize_fp8_per_token_group(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("ldq=128") != std::string::npos);
  p.ldq = 256;
  p.x_dtype = DType::I32;
  st = cuda::quantize_fp8_per_token_group(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("I32") != std::string::npos);
}

TEST_CASE("device buffer allocation failure is a status, not a crash", "[cuda][device_buffer]") {
  auto huge = cuda::DeviceBuffer::allocate(size_t(1) << 52, "an impossible buffer");
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().message.find("an impossible buffer") != std::string::npos);
  CHECK(huge.error().message.find("cudaErrorMemoryAllocation") != std::string::npos);
  // The device is still usable afterwards.
  auto small = cuda::DeviceBuffer::allocate(4096, "a small buffer");
  REQUIRE(small.ok());
  CHECK(small->size() == 4096);
  cuda::DeviceBuffer moved = std::move(small).value();
  CHECK_FALSE(moved.empty());
  REQUIRE(moved.reserve(1 << 20).ok());
  CHECK(moved.size() == size_t(1) << 20);
}
