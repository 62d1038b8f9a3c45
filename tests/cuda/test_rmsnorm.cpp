// The CUDA RMSNorm against the CPU reference, for every input/weight/output dtype pairing, at
// awkward row counts and widths (odd, one, not a multiple of the block, DeepSeek-V3's width + 3).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/rmsnorm.h"
#include "cuda_test_util.h"

namespace {

using latentserve::DType;
namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using latentserve::test_cuda::random_floats;

// A device buffer freed on scope exit.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) {
    auto st = LS_CUDA_CHECK(cudaMalloc(&ptr, bytes));
    REQUIRE(st.ok());
  }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Values as the device sees them: BF16 buffers hold the rounded values, `exact` their float form.
struct HostTensor {
  std::vector<float> exact;
  std::vector<uint16_t> bf16;
  DType dtype;

  HostTensor(std::vector<float> v, DType t) : dtype(t) {
    if (t == DType::BF16) {
      for (float& f : v) {
        bf16.push_back(latentserve::float_to_bf16(f));
        f = latentserve::bf16_to_float(bf16.back());
      }
    }
    exact = std::move(v);
  }
  const void* bytes() const { return dtype == DType::BF16 ? (const void*)bf16.data() : exact.data(); }
  size_t size_bytes() const { return exact.size() * latentserve::dtype_size(dtype); }
};

void check_case(int64_t rows, int64_t dim, DType xt, DType wt, DType yt, std::mt19937& rng) {
  CAPTURE(rows, dim, latentserve::dtype_name(xt), latentserve::dtype_name(wt),
          latentserve::dtype_name(yt));
  const int64_t ldx = dim + 5, ldy = dim + 2;  // padded strides: the padding must stay untouched
  HostTensor x(random_floats(size_t(rows * ldx), 0.3f, 2.0f, rng), xt);
  HostTensor w(random_floats(size_t(dim), 1.0f, 0.1f, rng), wt);
  std::vector<float> expected(size_t(rows * ldy), 0.0f);
  cpu::rmsnorm_reference(x.exact.data(), ldx, rows, dim, w.exact.data(), 1e-6f, expected.data(),
                         ldy);

  DeviceBuffer dx(x.size_bytes()), dw(w.size_bytes());
  const size_t y_bytes = size_t(rows * ldy) * latentserve::dtype_size(yt);
  DeviceBuffer dy(y_bytes);
  REQUIRE(LS_CUDA_CHECK(cudaMemcpy(dx.ptr, x.bytes(), x.size_bytes(), cudaMemcpyHostToDevice)).ok());
  REQUIRE(LS_CUDA_CHECK(cudaMemcpy(dw.ptr, w.bytes(), w.size_bytes(), cudaMemcpyHostToDevice)).ok());
  REQUIRE(LS_CUDA_CHECK(cudaMemset(dy.ptr, 0x7f, y_bytes)).ok());  // sentinel for the padding

  cuda::RmsNormParams p;
  p.x = dx.ptr;
  p.weight = dw.ptr;
  p.y = dy.ptr;
  p.x_dtype = xt;
  p.weight_dtype = wt;
  p.y_dtype = yt;
  p.rows = rows;
  p.dim = dim;
  p.ldx = ldx;
  p.ldy = ldy;
  p.eps = 1e-6f;
  auto launched = cuda::rmsnorm(p, nullptr);
  INFO((launched.ok() ? std::string() : launched.error().message));
  REQUIRE(launched.ok());
  REQUIRE(LS_CUDA_CHECK(cudaDeviceSynchronize()).ok());

  std::vector<float> got(size_t(rows * ldy));
  std::vector<uint16_t> got_bf16(size_t(rows * ldy));
  void* host = yt == DType::BF16 ? (void*)got_bf16.data() : (void*)got.data();
  REQUIRE(LS_CUDA_CHECK(cudaMemcpy(host, dy.ptr, y_bytes, cudaMemcpyDeviceToHost)).ok());
  if (yt == DType::BF16) {
    for (size_t i = 0; i < got.size(); ++i) got[i] = latentserve::bf16_to_float(got_bf16[i]);
  }
  // FP32 output: summation order differs (~1e-6 relative); BF16 output: one rounding (2^-8).
  const float rel = yt == DType::BF16 ? 4.0e-3f : 2.0e-5f;
  int64_t bad = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < dim; ++j) {
      const float e = expected[size_t(r * ldy + j)], g = got[size_t(r * ldy + j)];
      if (!(std::fabs(g - e) <= rel * std::fabs(e) + 1e-6f)) ++bad;
    }
    for (int64_t j = dim; j < ldy; ++j) {
      const float g = got[size_t(r * ldy + j)];
      if (yt == DType::F32 ? latentserve::float_to_bits(g) != 0x7f7f7f7fu
                           : got_bf16[size_t(r * ldy + j)] != 0x7f7fu) {
        ++bad;
      }
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("cuda rmsnorm matches the CPU reference", "[cuda][rmsnorm]") {
  std::mt19937 rng(Catch::rngSeed() + 11);
  const DType types[] = {DType::F32, DType::BF16};
  for (int64_t rows : {1, 3, 129}) {
    for (int64_t dim : {1, 7, 256, 7168 + 3}) {
      for (DType xt : types) {
        for (DType wt : types) {
          for (DType yt : types) check_case(rows, dim, xt, wt, yt, rng);
        }
      }
    }
  }
}

TEST_CASE("cuda rmsnorm rejects bad parameters with a message", "[cuda][rmsnorm]") {
  cuda::RmsNormParams p;
  p.rows = 2;
  p.dim = 8;
  p.ldx = 4;  // shorter than a row
  p.ldy = 8;
  auto st = cuda::rmsnorm(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("ldx=4") != std::string::npos);
  p.ldx = 8;
  p.x_dtype = DType::F8_E4M3;
  int dummy = 0;
  p.x = p.weight = p.y = &dummy;
  st = cuda::rmsnorm(p, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("F8_E4M3") != std::string::npos);
}

TEST_CASE("cuda_status names the call and location", "[cuda][device]") {
  auto st = LS_CUDA_CHECK(cudaErrorInvalidValue);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("cudaErrorInvalidValue") != std::string::npos);
  CHECK(st.error().message.find("test_rmsnorm.cpp:") != std::string::npos);
  CHECK(cuda::device_count() > 0);
}
