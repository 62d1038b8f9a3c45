// The scalar conversions of common/dtype.h, which every kernel's reference relies on: BF16 and F16
// round to nearest even, FP8 E4M3 decodes every code exactly, round-trips and saturates at ±448.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>

#include "common/dtype.h"

using namespace latentserve;

namespace {

std::mt19937& rng() {
  static std::mt19937 gen(std::random_device{}());
  return gen;
}

// The representable value nearest to v among `count` codes decoded by `decode`, ties to the code
// with an even last bit: the definition round-to-nearest-even spells out, by brute force.
template <class Decode>
uint32_t nearest_even(double v, uint32_t count, Decode decode) {
  uint32_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (uint32_t c = 0; c < count; ++c) {
    const double d = decode(c);
    if (std::isnan(d) || std::isinf(d)) continue;
    const double err = std::fabs(d - v);
    const bool tie_wins = err == best_err && (c & 1u) == 0 && (best & 1u) == 1;
    if (err < best_err || tie_wins) {
      best = c;
      best_err = err;
    }
  }
  return best;
}

}  // namespace

TEST_CASE("bf16 rounds to nearest even and keeps specials", "[dtype]") {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie, 0x3f80 is even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie, rounds up to even
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
  CHECK(float_to_bf16(-2.0f) == 0xc000);
  CHECK(float_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // rounds past the largest
  CHECK(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(bf16_to_float(float_to_bf16(bits_to_float(0x7f800001u)))));  // signalling stays NaN

  // Random finite floats: the result is one of the two neighbours, the nearer one, ties to even.
  for (int t = 0; t < 20000; ++t) {
    const uint32_t bits = rng()() & 0xfeffffffu;  // exponent below 0xfe: no overflow into inf
    const float f = bits_to_float(bits);
    const uint16_t lo = uint16_t(bits >> 16), hi = uint16_t(lo + 1);
    const double dlo = std::fabs(double(bf16_to_float(lo)) - f), dhi = std::fabs(double(bf16_to_float(hi)) - f);
    const uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    INFO("bits " << bits);
    REQUIRE(float_to_bf16(f) == want);
  }
}

TEST_CASE("f16 round-trips every finite code and rounds to nearest even", "[dtype]") {
  for (uint32_t c = 0; c < 0x10000; ++c) {
    const float f = f16_to_float(uint16_t(c));
    if (std::isnan(f)) continue;
    INFO("code " << c);
    REQUIRE(float_to_f16(f) == c);
  }
  CHECK(f16_to_float(0x3c00) == 1.0f);
  CHECK(f16_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(float_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie to even
  CHECK(float_to_f16(65504.0f) == 0x7bff);
  CHECK(float_to_f16(65520.0f) == 0x7c00);  // halfway past the largest: infinity
  for (int t = 0; t < 300; ++t) {
    const double v = std::uniform_real_distribution<double>(-70000.0, 70000.0)(rng()) *
                     std::ldexp(1.0, -int(rng()() % 30));
    const float f = float(v);
    if (std::fabs(f) >= 65520.0f) continue;
    INFO("value " << f);
    const uint32_t want = nearest_even(f, 0x10000, [](uint32_t c) { return double(f16_to_float(uint16_t(c))); });
    REQUIRE(f16_to_float(float_to_f16(f)) == f16_to_float(uint16_t(want)));  // values: ±0 are equal
  }
}

TEST_CASE("fp8 e4m3 decodes every code, round-trips and saturates", "[dtype]") {
  CHECK(fp8_e4m3_to_float(0x38) == 1.0f);
  CHECK(fp8_e4m3_to_float(0x7e) == 448.0f);
  CHECK(fp8_e4m3_to_float(0xfe) == -448.0f);
  CHECK(fp8_e4m3_to_float(0x08) == std::ldexp(1.0f, -6));  // smallest normal
  CHECK(fp8_e4m3_to_float(0x01) == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(fp8_e4m3_to_float(0x07) == 7 * std::ldexp(1.0f, -9));
  CHECK(std::isnan(fp8_e4m3_to_float(0x7f)));
  CHECK(std::isnan(fp8_e4m3_to_float(0xff)));

  for (int c = 0; c < 256; ++c) {
    INFO("code " << c);
    const float f = fp8_e4m3_to_float(uint8_t(c));
    if ((c & 0x7f) == 0x7f) {
      REQUIRE(float_to_fp8_e4m3(f) == 0x7f);
      continue;
    }
    REQUIRE(float_to_fp8_e4m3(f) == c);  // includes -0 (0x80)
  }

  CHECK(float_to_fp8_e4m3(448.0f) == 0x7e);
  CHECK(float_to_fp8_e4m3(500.0f) == 0x7e);
  CHECK(float_to_fp8_e4m3(-1e9f) == 0xfe);
  CHECK(float_to_fp8_e4m3(std::numeric_limits<float>::infinity()) == 0x7e);
  CHECK(float_to_fp8_e4m3(1.0f + 1.0f / 16) == 0x38);  // tie between 1 and 1.125: even wins
  CHECK(float_to_fp8_e4m3(1.0f + 3.0f / 16) == 0x3a);  // tie between 1.125 and 1.25: even wins

  for (int t = 0; t < 3000; ++t) {
    const float v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng()) *
                    std::ldexp(1.0f, int(rng()() % 20) - 10);
    INFO("value " << v);
    const uint32_t want = nearest_even(v, 256, [](uint32_t c) { return double(fp8_e4m3_to_float(uint8_t(c))); });
    const uint8_t got = float_to_fp8_e4m3(v);
    // ±0 both decode to zero; compare values there, codes elsewhere.
    if (fp8_e4m3_to_float(uint8_t(want)) == 0.0f) {
      REQUIRE(fp8_e4m3_to_float(got) == 0.0f);
    } else {
      REQUIRE(got == want);
    }
  }
}
