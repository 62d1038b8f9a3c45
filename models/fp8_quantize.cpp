#include "models/fp8_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace latentserve::models {

namespace {
constexpr float kE4M3Max = 448.0f;
}

Fp8BlockMatrix quantize_fp8_blocks(const float* w, int64_t rows, int64_t cols, int64_t block_rows,
                                   int64_t block_cols) {
  Fp8BlockMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.block_rows = block_rows;
  m.block_cols = block_cols;
  const int64_t brs = (rows + block_rows - 1) / block_rows;
  const int64_t bcs = (cols + block_cols - 1) / block_cols;
  m.data.resize(size_t(rows * cols));
  m.scale_inv.resize(size_t(brs * bcs));
  for (int64_t br = 0; br < brs; ++br) {
    const int64_t r0 = br * block_rows, r1 = std::min(rows, r0 + block_rows);
    for (int64_t bc = 0; bc < bcs; ++bc) {
      const int64_t c0 = bc * block_cols, c1 = std::min(cols, c0 + block_cols);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(w[r * cols + c]));
      }
      const float scale = amax > 0.0f ? amax / kE4M3Max : 1.0f;
      m.scale_inv[size_t(br * bcs + bc)] = scale;
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          m.data[size_t(r * cols + c)] = float_to_fp8_e4m3(w[r * cols + c] / scale);
        }
      }
    }
  }
  return m;
}

Result<Fp8BlockMatrix> quantize_fp8_blocks(DType dtype, const void* data, int64_t rows,
                                           int64_t cols, int64_t block_rows, int64_t block_cols) {
  if (rows < 0 || cols < 0 || block_rows <= 0 || block_cols <= 0) {
    return make_error("quantize_fp8_blocks: bad sizes");
  }
  std::vector<float> f(size_t(rows * cols));
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < f.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&f[i], bytes + 4 * i, 4);
    } else if (dtype == DType::BF16 || dtype == DType::F16) {
      uint16_t v;
      std::memcpy(&v, bytes + 2 * i, 2);
      f[i] = dtype == DType::BF16 ? bf16_to_float(v) : f16_to_float(v);
    } else {
      return make_error("quantize_fp8_blocks: cannot quantize " + std::string(dtype_name(dtype)));
    }
  }
  return quantize_fp8_blocks(f.data(), rows, cols, block_rows, block_cols);
}

std::vector<float> dequantize_fp8_blocks(const Fp8BlockMatrix& m) {
  const int64_t bcs = (m.cols + m.block_cols - 1) / m.block_cols;
  std::vector<float> out(size_t(m.rows * m.cols));
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) {
      const float s = m.scale_inv[size_t((r / m.block_rows) * bcs + c / m.block_cols)];
      out[size_t(r * m.cols + c)] = fp8_e4m3_to_float(m.data[size_t(r * m.cols + c)]) * s;
    }
  }
  return out;
}

}  // namespace latentserve::models
