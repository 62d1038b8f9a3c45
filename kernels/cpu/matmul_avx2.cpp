// AVX2+FMA+F16C matmul: 8 floats per vector. Decode keeps all m ≤ 8 rows of x against 1-4 weight
// rows in at most 12 of the 16 ymm registers; prefill runs 4 × 2 micro tiles over packed FP32
// panels of 256 k. AVX2 has no masked byte loads, so
// ragged ends copy the few remaining elements into a zeroed stack buffer first. Weight widening is
// the same as the AVX-512 path: BF16 by shift, F16 by vcvtph2ps, FP8 E4M3 via F16 bits with 2^8
// folded into the block scale.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/matmul_packed.h"
#include "kernels/cpu/matmul_tiles.h"

namespace latentserve::kernels::cpu::detail {
namespace {

// The first n elements of p followed by zeros, as a full vector's worth of memory.
template <class E, int kWidth>
struct Padded {
  alignas(32) E v[kWidth];
  Padded(const E* p, int n) {
    std::memset(v, 0, sizeof v);
    std::memcpy(v, p, sizeof(E) * static_cast<size_t>(n));
  }
};

struct Avx2Isa {
  using Vec = __m256;
  static constexpr int kWidth = 8;
  static Vec zero() { return _mm256_setzero_ps(); }
  static Vec set1(float v) { return _mm256_set1_ps(v); }
  static Vec load_x(const float* p) { return _mm256_loadu_ps(p); }
  static Vec load_x_part(const float* p, int n) { return _mm256_load_ps(Padded<float, 8>(p, n).v); }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(Vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void store(float* p, Vec v) { _mm256_store_ps(p, v); }
  // Pins v to a register: otherwise GCC folds the x load into every fma that uses it, which costs
  // NR loads per x vector and makes the micro tiles load-bound.
  static Vec in_register(Vec v) {
    asm("" : "+x"(v));
    return v;
  }
  static constexpr bool kPrefetch = true;
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static constexpr int decode_weight_rows(int m) { return m <= 2 ? 4 : m == 3 ? 3 : m <= 6 ? 2 : 1; }
  static constexpr int kPrefillMR = 4, kPrefillNR = 2, kPrefillChunks = 32;
};

template <DType D>
struct Avx2Loader;

template <>
struct Avx2Loader<DType::F32> {
  using Elem = float;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 load_part(const float* p, int n) { return load(Padded<float, 8>(p, n).v); }
};

template <>
struct Avx2Loader<DType::BF16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static __m256 load(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static __m256 load_part(const uint16_t* p, int n) { return load(Padded<uint16_t, 8>(p, n).v); }
};

template <>
struct Avx2Loader<DType::F16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static __m256 load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static __m256 load_part(const uint16_t* p, int n) { return load(Padded<uint16_t, 8>(p, n).v); }
};

// E4M3 bits seeeemmm become F16 bits s0eeeemmm0000000 (value × 2^-8): sign-extend, shift left 7,
// clear bit 14. The NaN codes give magnitude bits 0x3f80; setting bit 14 there makes an F16 NaN.
template <>
struct Avx2Loader<DType::F8_E4M3> {
  using Elem = uint8_t;
  static constexpr bool kBlockScaled = true;
  static constexpr float kScaleFactor = 256.0f;
  static __m256 load(const uint8_t* p) {
    const __m128i b = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i h = _mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16(static_cast<int16_t>(0xbf80)));
    const __m128i all_ones = _mm_set1_epi16(0x3f80);
    const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(h, all_ones), all_ones);
    return _mm256_cvtph_ps(_mm_or_si128(h, _mm_and_si128(nan, _mm_set1_epi16(0x4000))));
  }
  static __m256 load_part(const uint8_t* p, int n) { return load(Padded<uint8_t, 8>(p, n).v); }
};

}  // namespace

void matmul_decode_avx2(const WeightMatrix& w, const MatmulBlock& b) {
  decode_dispatch<Avx2Isa, Avx2Loader>(w, b);
}

void matmul_prefill_avx2(const WeightMatrix& w, const MatmulBlock& b) {
  prefill_dispatch<Avx2Isa, Avx2Loader>(w, b);
}

}  // namespace latentserve::kernels::cpu::detail
