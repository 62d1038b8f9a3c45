// FP8 block quantization: per-block scales, the E4M3 rounding error bound, odd shapes and blocks.
#include <algorithm>
#include <cmath>

#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

void check_quantized(const std::vector<float>& w, const Fp8BlockMatrix& q) {
  const std::vector<float> back = dequantize_fp8_blocks(q);
  const int64_t bcs = (q.cols + q.block_cols - 1) / q.block_cols;
  std::vector<float> amax(q.scale_inv.size(), 0.0f), qmax(q.scale_inv.size(), 0.0f);
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const size_t i = size_t(r * q.cols + c);
      const size_t b = size_t((r / q.block_rows) * bcs + c / q.block_cols);
      const float scale = q.scale_inv[b];
      // E4M3 keeps 3 mantissa bits: half an ulp is 1/16 relative; below 2^-6 the quantum is
      // 2^-9 (in units of the scale).
      const double bound = std::fabs(w[i]) / 16.0 + scale * std::ldexp(1.0, -10) + 1e-6 * scale;
      INFO("r " << r << " c " << c << " w " << w[i] << " back " << back[i]);
      REQUIRE(std::fabs(double(back[i]) - w[i]) <= bound);
      amax[b] = std::max(amax[b], std::fabs(w[i]));
      qmax[b] = std::max(qmax[b], std::fabs(fp8_e4m3_to_float(q.data[i])));
    }
  }
  for (size_t b = 0; b < amax.size(); ++b) {
    if (amax[b] == 0.0f) {
      CHECK(q.scale_inv[b] == 1.0f);
      CHECK(qmax[b] == 0.0f);
    } else {
      CHECK(q.scale_inv[b] == amax[b] / 448.0f);
      CHECK(qmax[b] == 448.0f);  // the largest element maps to the top of the range
    }
  }
}

TEST_CASE("fp8: block quantization error stays within E4M3 rounding at awkward sizes") {
  auto rng = fresh_rng();
  const std::vector<std::array<int64_t, 4>> shapes = {
      {1, 1, 128, 128}, {5, 300, 128, 128}, {129, 130, 128, 128}, {257, 127, 128, 128},
      {33, 47, 16, 8}, {7, 9, 3, 5}};
  for (const auto& [rows, cols, br, bc] : shapes) {
    std::uniform_real_distribution<float> log_scale(-8.0f, 6.0f);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(size_t(rows * cols));
    const float sigma = std::exp2(log_scale(rng));
    for (float& v : w) v = normal(rng) * sigma;
    if (w.size() > 10) w[w.size() / 2] *= 50.0f;  // an outlier squeezes its block's small values
    INFO(rows << "x" << cols << " blocks " << br << "x" << bc << " sigma " << sigma);
    Fp8BlockMatrix q = quantize_fp8_blocks(w.data(), rows, cols, br, bc);
    REQUIRE(q.data.size() == w.size());
    REQUIRE(q.scale_inv.size() == size_t(((rows + br - 1) / br) * ((cols + bc - 1) / bc)));
    check_quantized(w, q);
  }
}

TEST_CASE("fp8: zero blocks, BF16 input, unsupported input") {
  auto rng = fresh_rng();
  std::vector<float> w(200 * 140, 0.0f);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (int64_t r = 128; r < 200; ++r) {
    for (int64_t c = 0; c < 140; ++c) w[size_t(r * 140 + c)] = normal(rng);
  }
  check_quantized(w, quantize_fp8_blocks(w.data(), 200, 140));

  std::vector<uint8_t> bf = random_bf16(rng, 200 * 140, 0.0f, 0.3f);
  std::vector<float> as_float(200 * 140);
  for (size_t i = 0; i < as_float.size(); ++i) as_float[i] = element_at(DType::BF16, bf.data(), int64_t(i));
  auto from_bf16 = quantize_fp8_blocks(DType::BF16, bf.data(), 200, 140);
  REQUIRE(from_bf16.ok());
  const Fp8BlockMatrix direct = quantize_fp8_blocks(as_float.data(), 200, 140);
  CHECK(from_bf16->data == direct.data);
  CHECK(from_bf16->scale_inv == direct.scale_inv);
  check_quantized(as_float, *from_bf16);

  std::vector<int32_t> ints(4, 1);
  CHECK_FALSE(quantize_fp8_blocks(DType::I32, ints.data(), 2, 2).ok());
}

}  // namespace
}  // namespace latentserve::models::test
