// RMSNorm: fast vs reference at awkward sizes and strides, in place, and one case by hand.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/norm.h"

namespace cpu = latentserve::kernels::cpu;

TEST_CASE("rmsnorm matches its reference", "[kernels][norm]") {
  std::mt19937 rng(Catch::rngSeed() + 1);
  std::normal_distribution<float> dist(0.2f, 1.5f);
  for (int64_t rows : {1, 3, 17, 64}) {
    for (int64_t dim : {1, 7, 129, 7168 + 3}) {
      CAPTURE(rows, dim);
      const int64_t ldx = dim + 3, ldy = dim + 1;
      std::vector<float> x(size_t(rows * ldx)), w(static_cast<size_t>(dim));
      for (float& v : x) v = dist(rng);
      for (float& v : w) v = 1.0f + 0.1f * dist(rng);
      std::vector<float> fast(size_t(rows * ldy), 7.0f), ref(size_t(rows * ldy), 7.0f);
      cpu::rmsnorm(x.data(), ldx, rows, dim, w.data(), 1e-6f, fast.data(), ldy);
      cpu::rmsnorm_reference(x.data(), ldx, rows, dim, w.data(), 1e-6f, ref.data(), ldy);
      for (size_t i = 0; i < fast.size(); ++i) {
        REQUIRE(fast[i] == Approx(ref[i]).epsilon(2e-6).margin(1e-7));
      }
      // In place (y aliasing x, same stride) gives the same values.
      std::vector<float> inplace = x;
      cpu::rmsnorm(inplace.data(), ldx, rows, dim, w.data(), 1e-6f, inplace.data(), ldx);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < dim; ++j) {
          REQUIRE(inplace[size_t(r * ldx + j)] == fast[size_t(r * ldy + j)]);
        }
        for (int64_t j = dim; j < ldx; ++j) REQUIRE(inplace[size_t(r * ldx + j)] == x[size_t(r * ldx + j)]);
      }
    }
  }
}

TEST_CASE("rmsnorm by hand", "[kernels][norm]") {
  // mean(3², 4²) = 12.5, eps = 0.5 -> rsqrt(13) ; y = x / sqrt(13) * w
  const float x[2] = {3.0f, 4.0f}, w[2] = {1.0f, -2.0f};
  float y[2];
  cpu::rmsnorm(x, 2, 1, 2, w, 0.5f, y, 2);
  CHECK(y[0] == Approx(3.0 / std::sqrt(13.0)).epsilon(1e-6));
  CHECK(y[1] == Approx(-8.0 / std::sqrt(13.0)).epsilon(1e-6));
}
