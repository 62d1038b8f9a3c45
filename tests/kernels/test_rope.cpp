// RoPE: frequencies against the tiny-dsv3 golden and hand-derived YaRN values, and the
// interleaved rotation against its reference and by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "kernels/cpu/rope.h"

namespace cpu = latentserve::kernels::cpu;

TEST_CASE("rope_inv_freq equals the reference's float32 values (tiny-dsv3 golden)", "[kernels][rope]") {
  std::ifstream in(std::string(LATENTSERVE_SHARED_FIXTURES) + "/tiny-dsv3/golden.json");
  REQUIRE(in.good());
  const auto golden = nlohmann::json::parse(in);
  const auto& derived = golden.at("derived");
  REQUIRE_FALSE(derived.at("yarn_active").get<bool>());
  const auto expected = derived.at("rope_inv_freq").get<std::vector<float>>();
  cpu::RopeParams p;
  p.rotary_dim = 16;  // qk_rope_head_dim of the fixture
  p.theta = 10000.0;
  const auto got = cpu::rope_inv_freq(p);
  REQUIRE(got.size() == expected.size());
  // torch's vectorised pow (SLEEF, 1-ulp bound) is not correctly rounded, ours is: the values may
  // differ by one float32 ulp (index 1 does: 0.316227794 there, 0.316227764 here), never more.
  int exact = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(got[i] - expected[i]) <= std::nextafter(expected[i], 2.0f) - expected[i]);
    exact += got[i] == expected[i];
  }
  CHECK(exact >= int(got.size()) - 1);
  CHECK(cpu::rope_softmax_scale_factor(p) == 1.0);
  CHECK(cpu::rope_cos_sin_factor(p) == 1.0);
}

TEST_CASE("YaRN frequencies with DeepSeek-V3's rope_scaling", "[kernels][rope]") {
  cpu::RopeParams p;
  p.rotary_dim = 64;
  p.theta = 10000.0;
  p.yarn = true;
  p.scaling = {40.0, 4096.0, 32.0, 1.0, 1.0, 1.0};
  const auto inv = cpu::rope_inv_freq(p);
  REQUIRE(inv.size() == 32);
  // 64·ln(4096/(32·2π))/(2 ln 10⁴) = 10.47 -> low 10; 64·ln(4096/2π)/(2 ln 10⁴) = 22.51 -> high 23.
  for (int i = 0; i < 32; ++i) {
    CAPTURE(i);
    const double base = std::pow(10000.0, -2.0 * i / 64.0);
    const double ramp = std::clamp((i - 10.0) / 13.0, 0.0, 1.0);
    CHECK(inv[size_t(i)] == Approx(base * (1.0 - ramp) + base / 40.0 * ramp).epsilon(1e-6));
  }
  const float extra10 = 1.0f / std::pow(10000.0f, 20.0f / 64.0f);
  CHECK(inv[10] == extra10);  // ramp 0: untouched
  const double m = 0.1 * std::log(40.0) + 1.0;
  CHECK(cpu::rope_softmax_scale_factor(p) == Approx(m * m).epsilon(1e-12));
  CHECK(cpu::rope_cos_sin_factor(p) == 1.0);  // mscale == mscale_all_dim

  p.scaling.mscale_all_dim = 0.0;  // no softmax rescale; cos/sin carry get_mscale(40, 1)
  CHECK(cpu::rope_softmax_scale_factor(p) == 1.0);
  CHECK(cpu::rope_cos_sin_factor(p) == Approx(m).epsilon(1e-12));

  p.scaling.factor = 1.0;  // get_mscale(s ≤ 1) = 1
  p.scaling.mscale_all_dim = 1.0;
  CHECK(cpu::rope_softmax_scale_factor(p) == 1.0);
  const auto unscaled = cpu::rope_inv_freq(p);
  for (int i = 0; i < 32; ++i) {
    CHECK(unscaled[size_t(i)] == Approx(std::pow(10000.0, -2.0 * i / 64.0)).epsilon(1e-6));
  }
}

TEST_CASE("YaRN ramp of zero width and one-sided clamping", "[kernels][rope]") {
  cpu::RopeParams p;
  p.rotary_dim = 8;
  p.theta = 10000.0;
  p.yarn = true;
  auto plain = [](int i) { return std::pow(10000.0, -2.0 * i / 8.0); };
  // correction dim c(β) = 8·ln(4096/(2πβ)) / (2 ln 10⁴). β_fast = 1e9: c = -6.2, low = max(-7, 0) = 0;
  // β_slow = 2061.6: c = -0.5, high = ceil = 0 -> low == high -> high = 0.001: ramp = 0, 1, 1, 1.
  p.scaling = {4.0, 4096.0, 1e9, 2061.6, 1.0, 0.0};
  auto inv = cpu::rope_inv_freq(p);
  CHECK(inv[0] == 1.0f);
  for (int i = 1; i < 4; ++i) CHECK(inv[size_t(i)] == Approx(plain(i) / 4.0).epsilon(1e-6));
  // Only low is clamped below and only high above: β = 1e9 both -> low 0, high -6 -> ramp 0.
  p.scaling = {4.0, 4096.0, 1e9, 1e9, 1.0, 0.0};
  inv = cpu::rope_inv_freq(p);
  for (int i = 0; i < 4; ++i) CHECK(inv[size_t(i)] == Approx(plain(i)).epsilon(1e-6));
  // β = 1e-9 both: low 11, high min(12, 7) = 7 -> (i - 11)/(-4) ≥ 1 -> everything interpolated.
  p.scaling = {4.0, 4096.0, 1e-9, 1e-9, 1.0, 0.0};
  inv = cpu::rope_inv_freq(p);
  for (int i = 0; i < 4; ++i) CHECK(inv[size_t(i)] == Approx(plain(i) / 4.0).epsilon(1e-6));
}

TEST_CASE("rope_interleaved matches its reference and leaves the rest alone", "[kernels][rope]") {
  std::mt19937 rng(Catch::rngSeed() + 4);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_int_distribution<int32_t> pos_dist(0, 163840);
  cpu::RopeParams rp;
  rp.rotary_dim = 64;
  rp.yarn = true;
  rp.scaling = {40.0, 4096.0, 32.0, 1.0, 0.707, 1.0};  // cos/sin factor ≠ 1
  const auto inv = cpu::rope_inv_freq(rp);
  const float factor = float(cpu::rope_cos_sin_factor(rp));
  for (int64_t rows : {1, 3, 37}) {
    for (int64_t heads : {1, 5}) {
      CAPTURE(rows, heads);
      // Like q: per head [nope 7 | rope 64 | 3 spare], rope part addressed through the pointer.
      const int64_t head_stride = 74, ld = heads * head_stride + 2;
      std::vector<float> x(size_t(rows * ld));
      for (float& v : x) v = dist(rng);
      std::vector<int32_t> pos(static_cast<size_t>(rows));
      for (auto& q : pos) q = pos_dist(rng);
      pos[0] = 0;
      auto fast = x, ref = x;
      cpu::rope_interleaved(fast.data() + 7, rows, ld, heads, head_stride, 64, pos.data(), inv.data(), factor);
      cpu::rope_interleaved_reference(ref.data() + 7, rows, ld, heads, head_stride, 64, pos.data(), inv.data(), factor);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < ld; ++c) {
          const size_t i = size_t(r * ld + c);
          const int64_t in_head = c % head_stride;
          const bool rotated = c < heads * head_stride && in_head >= 7 && in_head < 71;
          if (!rotated) {
            REQUIRE(fast[i] == x[i]);
          } else {
            REQUIRE(fast[i] == Approx(ref[i]).margin(2e-6));
          }
        }
      }
    }
  }
}

TEST_CASE("rope_interleaved rotates adjacent pairs by hand", "[kernels][rope]") {
  const float inv[2] = {0.5f, 0.25f};
  const int32_t pos[1] = {3};
  float x[4] = {1.0f, 2.0f, -1.0f, 0.5f};
  cpu::rope_interleaved(x, 1, 4, 1, 4, 4, pos, inv, 1.0f);
  const double a0 = 1.5, a1 = 0.75;  // 3·0.5, 3·0.25
  CHECK(x[0] == Approx(1.0 * std::cos(a0) - 2.0 * std::sin(a0)).margin(1e-6));
  CHECK(x[1] == Approx(1.0 * std::sin(a0) + 2.0 * std::cos(a0)).margin(1e-6));
  CHECK(x[2] == Approx(-1.0 * std::cos(a1) - 0.5 * std::sin(a1)).margin(1e-6));
  CHECK(x[3] == Approx(-1.0 * std::sin(a1) + 0.5 * std::cos(a1)).margin(1e-6));
}
