// FP8 E4M3 quantization with one scale per block (DeepSeek-V3's 128x128 `weight_scale_inv`):
// scale = max|w| / 448 over the block, q = round(w / scale); the real value is q * scale.
#pragma once

#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::models {

struct Fp8BlockMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t block_rows = 128;
  int64_t block_cols = 128;
  std::vector<uint8_t> data;     // [rows, cols] E4M3 codes
  std::vector<float> scale_inv;  // [ceil(rows / block_rows), ceil(cols / block_cols)]
};

// Quantizes a row-major F32 matrix. An all-zero block gets scale 1 (its codes are all zero).
Fp8BlockMatrix quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols,
                                   int64_t block_rows = 128, int64_t block_cols = 128);
// The same for F32, BF16 or F16 input bytes.
Result<Fp8BlockMatrix> quantize_fp8_blocks(DType dtype, const void* data, int64_t rows,
                                           int64_t cols, int64_t block_rows = 128,
                                           int64_t block_cols = 128);
// q * scale for every element, row-major.
std::vector<float> dequantize_fp8_blocks(const Fp8BlockMatrix& m);

}  // namespace latentserve::models
