// Portable matmul: the same decode loop and packed prefill tiles as the SIMD variants with one
// float per "vector". It is what runs on CPUs without AVX2/FMA/F16C, and the baseline the SIMD paths are
// tested against besides the reference.
#include <array>

#include "kernels/cpu/matmul_packed.h"
#include "kernels/cpu/matmul_tiles.h"

namespace latentserve::kernels::cpu::detail {
namespace {

struct ScalarIsa {
  using Vec = float;
  static constexpr int kWidth = 1;
  static Vec zero() { return 0.0f; }
  static Vec set1(float v) { return v; }
  static Vec load_x(const float* p) { return *p; }
  static Vec load_x_part(const float* p, int) { return *p; }  // never called: width 1 has no tail
  static Vec mul(Vec a, Vec b) { return a * b; }
  static Vec fma(Vec a, Vec b, Vec c) { return a * b + c; }
  static float sum(Vec v) { return v; }
  static void store(float* p, Vec v) { *p = v; }
  static Vec in_register(Vec v) { return v; }
  static constexpr bool kPrefetch = false;
  static void prefetch(const void*) {}
  static constexpr int decode_weight_rows(int) { return 2; }
  static constexpr int kPrefillMR = 4, kPrefillNR = 4, kPrefillChunks = 256;
};

// FP8 decoding by table: 256 entries, built once from the exact scalar conversion.
const std::array<float, 256>& fp8_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = fp8_e4m3_to_float(static_cast<uint8_t>(i));
    return t;
  }();
  return table;
}

template <DType D>
struct ScalarLoader;

template <>
struct ScalarLoader<DType::F32> {
  using Elem = float;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static float load(const float* p) { return *p; }
  static float load_part(const float* p, int) { return *p; }
};
template <>
struct ScalarLoader<DType::BF16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static float load(const uint16_t* p) { return bf16_to_float(*p); }
  static float load_part(const uint16_t* p, int) { return bf16_to_float(*p); }
};
template <>
struct ScalarLoader<DType::F16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static float load(const uint16_t* p) { return f16_to_float(*p); }
  static float load_part(const uint16_t* p, int) { return f16_to_float(*p); }
};
template <>
struct ScalarLoader<DType::F8_E4M3> {
  using Elem = uint8_t;
  static constexpr bool kBlockScaled = true;
  static constexpr float kScaleFactor = 1.0f;
  static float load(const uint8_t* p) { return fp8_table()[*p]; }
  static float load_part(const uint8_t* p, int) { return fp8_table()[*p]; }
};

}  // namespace

void matmul_decode_scalar(const WeightMatrix& w, const MatmulBlock& b) {
  decode_dispatch<ScalarIsa, ScalarLoader>(w, b);
}

void matmul_prefill_scalar(const WeightMatrix& w, const MatmulBlock& b) {
  prefill_dispatch<ScalarIsa, ScalarLoader>(w, b);
}

}  // namespace latentserve::kernels::cpu::detail
