// AVX-512 matmul: 16 floats per vector. Decode keeps all m ≤ 8 rows of x against 3-4 weight rows
// in up to 24 of the 32 zmm registers; prefill runs 8 × 3 micro tiles over packed FP32 panels of
// 256 k. Ragged ends use masked loads, which never touch memory past the row. Weights widen to
// FP32 on load: BF16 a line at a time into even and odd elements (one shift, one AND), F16 by
// vcvtph2ps, FP8 E4M3 by re-packing its bits as F16 (exact for every code, subnormals included) and
// folding the missing 2^8 into the block scale. FP32 accumulation throughout. avx512bf16's
// vdpbf16ps is not used: it would round x to BF16 (keeping FP32-grade x takes two of them, x split
// into a high and a low BF16), and it measured a quarter of the vfmadd231ps rate on this family.
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_ps is self-initialised on purpose).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernels/cpu/matmul_packed.h"
#include "kernels/cpu/matmul_tiles.h"

namespace latentserve::kernels::cpu::detail {
namespace {

inline __mmask16 first_n(int n) { return static_cast<__mmask16>((1u << n) - 1u); }

struct Avx512Isa {
  using Vec = __m512;
  static constexpr int kWidth = 16;
  static Vec zero() { return _mm512_setzero_ps(); }
  static Vec set1(float v) { return _mm512_set1_ps(v); }
  static Vec load_x(const float* p) { return _mm512_loadu_ps(p); }
  static Vec load_x_part(const float* p, int n) { return _mm512_maskz_loadu_ps(first_n(n), p); }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
  static float sum(Vec v) { return _mm512_reduce_add_ps(v); }
  static void store(float* p, Vec v) { _mm512_store_ps(p, v); }
  // Pins v to a register: otherwise GCC folds the x load into every fma that uses it, which costs
  // NR loads per x vector and makes the micro tiles load-bound.
  static Vec in_register(Vec v) {
    asm("" : "+v"(v));
    return v;
  }
  static constexpr bool kPrefetch = true;
  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  // m = 1, 2 run six concurrent weight streams (more than four measured faster from DRAM).
  static constexpr int decode_weight_rows(int m) { return m <= 2 ? 6 : m <= 6 ? 4 : 3; }
  static constexpr int kPrefillMR = 8, kPrefillNR = 3, kPrefillChunks = 32;
};

template <DType D>
struct Avx512Loader;

template <>
struct Avx512Loader<DType::F32> {
  using Elem = float;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
  static __m512 load_part(const float* p, int n) { return _mm512_maskz_loadu_ps(first_n(n), p); }
};

// BF16 in even/odd order: a 32-bit lane of a 64-byte line holds W[k + 2l] in its low half and
// W[k + 2l + 1] in its high half, so one shift gives the even elements as FP32 and one AND the odd
// ones: two operations per 32 weights instead of a widening move and a shift per 16. x is packed
// in the same order (pack_x_line), and each lane accumulates x_even * w_even, then x_odd * w_odd,
// per 32-element line (matmul_internal.h).
template <>
struct Avx512Loader<DType::BF16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr bool kEvenOdd = true;
  static constexpr float kScaleFactor = 1.0f;
  static __m512 even(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
  static __m512 odd(__m512i v) {
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
  // Separately, so a caller can finish with the even half before it widens the odd one.
  static __m512 load_even(const uint16_t* p) { return even(_mm512_loadu_si512(p)); }
  static __m512 load_odd(const uint16_t* p) { return odd(_mm512_loadu_si512(p)); }
  static uint64_t load_line(const uint16_t* p, __m512 out[2]) {
    out[0] = load_even(p);
    out[1] = load_odd(p);
    return 0;
  }
  // The first n < 32 elements, zeros after them.
  static uint64_t load_line_part(const uint16_t* p, int n, __m512 out[2]) {
    const __m512i v = _mm512_maskz_loadu_epi16(static_cast<__mmask32>((1u << n) - 1u), p);
    out[0] = even(v);
    out[1] = odd(v);
    return 0;
  }
  // x[0, n) (n ≤ 32, zeros after) as 16 even then 16 odd elements.
  static void pack_x_line(const float* x, int n, float* out) {
    const __m512 lo = n >= 16 ? _mm512_loadu_ps(x) : _mm512_maskz_loadu_ps(first_n(n), x);
    const __m512 hi = n >= 32 ? _mm512_loadu_ps(x + 16)
                      : n > 16 ? _mm512_maskz_loadu_ps(first_n(n - 16), x + 16)
                               : _mm512_setzero_ps();
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(lo, even, hi));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(lo, odd, hi));
  }
};

template <>
struct Avx512Loader<DType::F16> {
  using Elem = uint16_t;
  static constexpr bool kBlockScaled = false;
  static constexpr float kScaleFactor = 1.0f;
  static __m512 load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static __m512 load_part(const uint16_t* p, int n) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_n(n), p));
  }
};

// E4M3 bits seeeemmm become F16 bits s0eeeemmm0000000, the same value times 2^-8: sign-extend to
// 16 bits, shift left 7 (the sign lands on bits 15 and 14) and clear bit 14. Three cheap integer ops,
// exact for every code including subnormals; the two NaN codes (s1111111) would land on a finite
// F16, so the conversion is masked to produce NaN there.
template <>
struct Avx512Loader<DType::F8_E4M3> {
  using Elem = uint8_t;
  static constexpr bool kBlockScaled = true;
  static constexpr float kScaleFactor = 256.0f;
  static __m512 widen(__m128i bytes) {
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7),
                                       _mm256_set1_epi16(static_cast<int16_t>(0xbf80)));
    const __m128i magnitude = _mm_and_si128(bytes, _mm_set1_epi8(0x7f));
    const __mmask16 finite = _mm_cmpneq_epi8_mask(magnitude, _mm_set1_epi8(0x7f));
    return _mm512_mask_cvtph_ps(_mm512_set1_ps(__builtin_nanf("")), finite, h);
  }
  static __m512 load(const uint8_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m512 load_part(const uint8_t* p, int n) { return widen(_mm_maskz_loadu_epi8(first_n(n), p)); }
  // A whole 64-byte line, the same values as four load() calls except the NaN codes: the integer
  // steps run on 32 codes at a time, and one compare per line finds NaNs (the caller makes the
  // row's results NaN) instead of a mask per vector. About half the vector operations of load().
  static uint64_t load_line(const uint8_t* p, __m512 out[4]) {
    for (int half = 0; half < 2; ++half) {
      const __m512i h = widen_half(p + 32 * half);
      out[2 * half] = half_vector(h, 0);
      out[2 * half + 1] = half_vector(h, 1);
    }
    return nan_codes(p);
  }
  // The same steps a half line at a time, for callers short of registers: 32 codes become 32 F16
  // patterns (NaN codes not yet NaN), then each 16 of them FP32.
  using Half = __m512i;
  static __m512i widen_half(const uint8_t* p) {
    const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_and_si512(_mm512_slli_epi16(_mm512_cvtepi8_epi16(codes), 7),
                            _mm512_set1_epi16(static_cast<int16_t>(0xbf80)));
  }
  static __m512 half_vector(__m512i h, int v) {
    return _mm512_cvtph_ps(v == 0 ? _mm512_castsi512_si256(h) : _mm512_extracti64x4_epi64(h, 1));
  }
  // Nonzero when the 64-byte line at p holds a NaN code.
  static uint64_t nan_codes(const uint8_t* p) {
    const __m512i bytes = _mm512_loadu_si512(p);
    return _mm512_cmpeq_epi8_mask(_mm512_or_si512(bytes, _mm512_set1_epi8(static_cast<char>(0x80))),
                                  _mm512_set1_epi8(static_cast<char>(0xff)));
  }
};

}  // namespace

void matmul_decode_avx512(const WeightMatrix& w, const MatmulBlock& b) {
  decode_dispatch<Avx512Isa, Avx512Loader>(w, b);
}

void matmul_prefill_avx512(const WeightMatrix& w, const MatmulBlock& b) {
  prefill_dispatch<Avx512Isa, Avx512Loader>(w, b);
}

}  // namespace latentserve::kernels::cpu::detail
