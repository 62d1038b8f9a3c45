// SiLU-gated product and row (log-)softmax: fast vs reference (double) and by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/activation.h"

namespace cpu = latentserve::kernels::cpu;

namespace {

std::vector<float> random_values(size_t n, float stddev, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("silu_mul matches its reference, also in place", "[kernels][activation]") {
  std::mt19937 rng(Catch::rngSeed() + 2);
  for (int64_t rows : {1, 2, 33}) {
    for (int64_t width : {1, 5, 1023, 2048 + 7}) {
      CAPTURE(rows, width);
      const int64_t ldg = width + 2, ldu = width + 5, ldo = width + 1;
      auto gate = random_values(size_t(rows * ldg), 4.0f, rng);
      auto up = random_values(size_t(rows * ldu), 1.0f, rng);
      std::vector<float> fast(size_t(rows * ldo)), ref(size_t(rows * ldo));
      cpu::silu_mul(gate.data(), ldg, up.data(), ldu, rows, width, fast.data(), ldo);
      cpu::silu_mul_reference(gate.data(), ldg, up.data(), ldu, rows, width, ref.data(), ldo);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < width; ++j) {
          REQUIRE(fast[size_t(r * ldo + j)] == Approx(ref[size_t(r * ldo + j)]).epsilon(1e-6).margin(1e-30));
        }
      }
      auto g2 = gate;  // out aliases gate
      cpu::silu_mul(g2.data(), ldg, up.data(), ldu, rows, width, g2.data(), ldg);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < width; ++j) REQUIRE(g2[size_t(r * ldg + j)] == fast[size_t(r * ldo + j)]);
      }
    }
  }
  const float g[2] = {0.0f, 2.0f}, u[2] = {3.0f, 0.5f};
  float o[2];
  cpu::silu_mul(g, 2, u, 2, 1, 2, o, 2);
  CHECK(o[0] == 0.0f);
  CHECK(o[1] == Approx(2.0 / (1.0 + std::exp(-2.0)) * 0.5).epsilon(1e-6));
}

TEST_CASE("softmax_rows and log_softmax_rows match double precision", "[kernels][activation]") {
  std::mt19937 rng(Catch::rngSeed() + 3);
  // One huge row (the sampling case: split inside the row), a few rows, many rows.
  const std::pair<int64_t, int64_t> shapes[] = {{1, 129280}, {3, 1}, {3, 7}, {5, 40001}, {300, 129}};
  for (auto [rows, cols] : shapes) {
    CAPTURE(rows, cols);
    const int64_t ld = cols + 3;
    auto x = random_values(size_t(rows * ld), 6.0f, rng);
    auto fast = x, ref = x, logs = x;
    cpu::softmax_rows(fast.data(), rows, cols, ld);
    cpu::softmax_rows_reference(ref.data(), rows, cols, ld);
    cpu::log_softmax_rows(logs.data(), rows, cols, ld);
    for (int64_t r = 0; r < rows; ++r) {
      double m = -INFINITY, total = 0.0, sum_fast = 0.0;
      for (int64_t j = 0; j < cols; ++j) m = std::max(m, double(x[size_t(r * ld + j)]));
      for (int64_t j = 0; j < cols; ++j) total += std::exp(double(x[size_t(r * ld + j)]) - m);
      for (int64_t j = 0; j < cols; ++j) {
        const size_t i = size_t(r * ld + j);
        REQUIRE(fast[i] == Approx(ref[i]).epsilon(2e-5).margin(1e-12));
        const double log_p = double(x[i]) - m - std::log(total);
        REQUIRE(logs[i] == Approx(log_p).epsilon(1e-5).margin(2e-5));
        sum_fast += fast[i];
      }
      REQUIRE(sum_fast == Approx(1.0).epsilon(1e-5));
      for (int64_t j = cols; j < ld; ++j) REQUIRE(fast[size_t(r * ld + j)] == x[size_t(r * ld + j)]);
    }
  }
}

TEST_CASE("softmax by hand, large logits stay finite", "[kernels][activation]") {
  float x[3] = {1000.0f, 1000.0f + std::log(3.0f), -5.0f};
  float l[3] = {x[0], x[1], x[2]};
  cpu::softmax_rows(x, 1, 3, 3);
  cpu::log_softmax_rows(l, 1, 3, 3);
  CHECK(x[0] == Approx(0.25).epsilon(1e-4));
  CHECK(x[1] == Approx(0.75).epsilon(1e-4));
  CHECK(x[2] < 1e-20f);
  CHECK(l[0] == Approx(std::log(0.25)).epsilon(1e-4));
  CHECK(l[2] == Approx(-1005.0 - std::log(4.0)).epsilon(1e-6));  // log-sum-exp = 1000 + ln 4
}
