// Helpers shared by the CUDA kernel tests: device allocations freed on scope exit, copies that
// REQUIRE success, random floats, and random BF16 data kept alongside its exact float value for
// the references.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"

namespace latentserve::test_cuda {

struct DeviceMemory {
  void* ptr = nullptr;
  explicit DeviceMemory(size_t bytes) {
    auto st = LS_CUDA_CHECK(cudaMalloc(&ptr, bytes == 0 ? 1 : bytes));
    INFO((st.ok() ? std::string() : st.error().message));
    REQUIRE(st.ok());
  }
  ~DeviceMemory() { cudaFree(ptr); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr);
  }
};

inline void require_ok(const Status& st) {
  INFO((st.ok() ? std::string() : st.error().message));
  REQUIRE(st.ok());
}

template <class T>
void to_device(const DeviceMemory& d, const std::vector<T>& h) {
  require_ok(LS_CUDA_CHECK(cudaMemcpy(d.ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice)));
}

template <class T>
std::vector<T> from_device(const DeviceMemory& d, size_t n) {
  std::vector<T> h(n);
  require_ok(LS_CUDA_CHECK(cudaMemcpy(h.data(), d.ptr, n * sizeof(T), cudaMemcpyDeviceToHost)));
  return h;
}

// A device buffer holding a copy of `bytes` host bytes.
inline kernels::cuda::DeviceBuffer device_copy(const void* host, size_t bytes) {
  auto buf = kernels::cuda::DeviceBuffer::allocate(bytes, "test buffer");
  INFO((buf.ok() ? std::string() : buf.error().message));
  REQUIRE(buf.ok());
  require_ok(kernels::cuda::copy_to_device(buf->data(), host, bytes));
  return std::move(buf).value();
}

inline std::vector<float> random_floats(size_t n, float mean, float stddev, std::mt19937& rng) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

// n normal values rounded to BF16: `bits` for the device, `exact` (their float values) for the CPU.
struct Bf16Data {
  std::vector<uint16_t> bits;
  std::vector<float> exact;
};

inline Bf16Data random_bf16(size_t n, float stddev, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, stddev);
  Bf16Data d;
  d.bits.resize(n);
  d.exact.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.bits[i] = float_to_bf16(dist(rng));
    d.exact[i] = bf16_to_float(d.bits[i]);
  }
  return d;
}

}  // namespace latentserve::test_cuda
