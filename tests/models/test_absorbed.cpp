// AbsorbedWeights: W_UK transposed and W_UV per head hold exactly kv_b_proj's values, in its own
// dtype where the scale blocks allow it, for every weight dtype and awkward head shapes.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "common/dtype.h"
#include "models/deepseek_v3/absorbed.h"

using namespace latentserve;
using kernels::cpu::WeightMatrix;
using kernels::cpu::weight_at;
using models::deepseek_v3::AbsorbedWeights;

namespace {

// A random kv_b_proj of heads × (nope + v) rows over `lora` columns.
struct RandomKvB {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightMatrix w;

  RandomKvB(DType dtype, int64_t rows, int64_t lora, int64_t block_rows, int64_t block_cols, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    bytes.resize(size_t(rows * lora) * dtype_size(dtype));
    for (int64_t i = 0; i < rows * lora; ++i) {
      switch (dtype) {
        case DType::F32: reinterpret_cast<float*>(bytes.data())[i] = u(rng); break;
        case DType::BF16: reinterpret_cast<uint16_t*>(bytes.data())[i] = float_to_bf16(u(rng)); break;
        case DType::F16: reinterpret_cast<uint16_t*>(bytes.data())[i] = float_to_f16(u(rng)); break;
        default: {
          uint8_t code = uint8_t(rng() & 0xff);
          if ((code & 0x7f) == 0x7f) code ^= 1;  // no NaN codes
          bytes[size_t(i)] = code;
        }
      }
    }
    w = WeightMatrix{dtype, bytes.data(), rows, lora};
    if (dtype == DType::F8_E4M3) {
      w.block_rows = block_rows;
      w.block_cols = block_cols;
      scales.resize(size_t(((rows + block_rows - 1) / block_rows) * ((lora + block_cols - 1) / block_cols)));
      for (float& s : scales) s = std::ldexp(0.5f + 0.5f * std::abs(u(rng)), int(rng() % 9) - 12);
      w.scale_inv = scales.data();
    }
  }
};

// Every element of every head's matrices against kv_b_proj's value at the same place.
void check_absorbed(DType dtype, int64_t heads, int64_t nope, int64_t v, int64_t lora, int64_t block_rows,
                    int64_t block_cols, DType expected) {
  std::mt19937 rng(std::random_device{}());
  const RandomKvB kv(dtype, heads * (nope + v), lora, block_rows, block_cols, rng);
  const AbsorbedWeights absorbed(kv.w, heads, nope, v);
  INFO(dtype_name(dtype) << " heads " << heads << " nope " << nope << " v " << v << " lora " << lora << " blocks "
                         << block_rows << "x" << block_cols);
  CHECK(absorbed.kv_b().dtype == expected);
  int bad = 0;
  for (int64_t h = 0; h < heads; ++h) {
    const WeightMatrix uk_t = absorbed.uk_t(h), uv = absorbed.uv(h);
    REQUIRE(uk_t.dtype == expected);
    REQUIRE(uv.dtype == expected);
    REQUIRE((uk_t.rows == lora && uk_t.cols == nope && uv.rows == v && uv.cols == lora));
    for (int64_t r = 0; r < lora; ++r) {
      for (int64_t d = 0; d < nope; ++d) bad += weight_at(uk_t, r, d) != weight_at(kv.w, h * (nope + v) + d, r);
      for (int64_t i = 0; i < v; ++i) bad += weight_at(uv, i, r) != weight_at(kv.w, h * (nope + v) + nope + i, r);
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("absorbed MLA weights keep kv_b_proj's dtype and values", "[mla]") {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) check_absorbed(dtype, 3, 24, 40, 52, 128, 128, dtype);
  // FP8 whose head ranges start on block boundaries stays FP8, blocks transposed (square and not,
  // a partial last column block).
  check_absorbed(DType::F8_E4M3, 4, 32, 32, 80, 32, 32, DType::F8_E4M3);
  check_absorbed(DType::F8_E4M3, 3, 32, 16, 72, 16, 32, DType::F8_E4M3);
  check_absorbed(DType::F8_E4M3, 1, 32, 48, 40, 32, 16, DType::F8_E4M3);  // one head: v may be ragged
  // Otherwise it is dequantized to F32 once (DeepSeek's 128 × 128 blocks over small heads).
  check_absorbed(DType::F8_E4M3, 4, 32, 32, 96, 128, 128, DType::F32);
  check_absorbed(DType::F8_E4M3, 2, 32, 48, 64, 32, 32, DType::F32);
}
