// Element types of weights and activations, and exact scalar conversions between them.
// Header-only and host/device neutral so kernels on every backend share one definition.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace latentserve {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, I32, I64 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F8_E4M3: return 1;
    case DType::I32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
}

// bfloat16: the high half of a float32.
inline float bf16_to_float(uint16_t v) { return bits_to_float(uint32_t(v) << 16); }

// Round to nearest even, NaN kept quiet (what torch and numpy do).
inline uint16_t float_to_bf16(float f) {
  uint32_t bits = float_to_bits(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return uint16_t((bits + rounding) >> 16);
}

// IEEE half precision.
inline float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return bits_to_float(sign);
    float v = std::ldexp(float(mant), -24);  // subnormal
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_float(sign | 0x7f800000u | (mant << 13));
  return bits_to_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t float_to_f16(float f) {
  uint32_t bits = float_to_bits(f);
  uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
  float a = std::fabs(f);
  if (std::isnan(f)) return uint16_t(sign | 0x7e00u);
  if (a >= 65520.0f) return uint16_t(sign | 0x7c00u);
  if (a < 6.103515625e-05f) {  // subnormal range: quantum 2^-24
    return uint16_t(sign | uint16_t(std::nearbyint(a * 16777216.0f)));
  }
  uint32_t abits = float_to_bits(a);
  uint32_t rounding = 0xfffu + ((abits >> 13) & 1u);
  abits += rounding;
  uint32_t exp = (abits >> 23) - 112u;
  return uint16_t(sign | (exp << 10) | ((abits >> 13) & 0x3ffu));
}

// FP8 E4M3 (the "fn" variant: no infinities, 0x7f/0xff are NaN, max 448).
inline float fp8_e4m3_to_float(uint8_t v) {
  uint32_t sign = (v & 0x80u) ? 1u : 0u;
  uint32_t exp = (v >> 3) & 0xfu;
  uint32_t mant = v & 0x7u;
  float out;
  if (exp == 0xf && mant == 0x7) {
    out = NAN;
  } else if (exp == 0) {
    out = std::ldexp(float(mant), -9);  // subnormal: mant/8 * 2^-6
  } else {
    out = std::ldexp(1.0f + float(mant) / 8.0f, int(exp) - 7);
  }
  return sign ? -out : out;
}

// Round to nearest even, saturating to ±448 (what torch's .to(float8_e4m3fn) does after clamping).
inline uint8_t float_to_fp8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= 448.0f) return uint8_t(sign | 0x7e);
  if (a < std::ldexp(1.0f, -6)) {  // subnormal: quantum 2^-9
    int q = int(std::nearbyint(a * 512.0f));
    return uint8_t(sign | q);  // q == 8 rolls into the smallest normal, which is correct
  }
  int e;
  float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exp = e - 1 + 7;          // biased exponent for 1.xxx form
  float scaled = (m * 2.0f - 1.0f) * 8.0f;  // mantissa in units of 1/8
  int q = int(std::nearbyint(scaled));
  if (q == 8) {
    q = 0;
    exp += 1;
  }
  if (exp > 15 || (exp == 15 && q == 7)) return uint8_t(sign | 0x7e);
  return uint8_t(sign | (exp << 3) | q);
}

}  // namespace latentserve
