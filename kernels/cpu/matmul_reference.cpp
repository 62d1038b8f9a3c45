// The plain side of matmul.h: element access, dequantization, embedding lookup and the
// double-accumulating reference product the fast kernels are tested against.
#include <omp.h>

#include <limits>

#include "kernels/cpu/matmul.h"

namespace latentserve::kernels::cpu {
namespace {

// Row r of W as F32; the conversions are simple enough for the compiler to vectorize.
void dequantize_row(const WeightMatrix& w, int64_t r, float* out) {
  const int64_t cols = w.cols;
  switch (w.dtype) {
    case DType::F32: {
      const float* src = static_cast<const float*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = src[c];
      return;
    }
    case DType::BF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = bf16_to_float(src[c]);
      return;
    }
    case DType::F16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * cols;
      for (int64_t c = 0; c < cols; ++c) out[c] = f16_to_float(src[c]);
      return;
    }
    case DType::F8_E4M3: {
      const uint8_t* src = static_cast<const uint8_t*>(w.data) + r * cols;
      const float* scales = w.scale_inv + (r / w.block_rows) * w.scale_cols();
      for (int64_t c = 0; c < cols; ++c) out[c] = fp8_e4m3_to_float(src[c]) * scales[c / w.block_cols];
      return;
    }
    default:
      for (int64_t c = 0; c < cols; ++c) out[c] = std::numeric_limits<float>::quiet_NaN();
      return;
  }
}

}  // namespace

float weight_at(const WeightMatrix& w, int64_t r, int64_t c) {
  const int64_t i = r * w.cols + c;
  switch (w.dtype) {
    case DType::F32: return static_cast<const float*>(w.data)[i];
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case DType::F16: return f16_to_float(static_cast<const uint16_t*>(w.data)[i]);
    case DType::F8_E4M3: {
      const float scale = w.scale_inv[(r / w.block_rows) * w.scale_cols() + c / w.block_cols];
      return fp8_e4m3_to_float(static_cast<const uint8_t*>(w.data)[i]) * scale;
    }
    default: return std::numeric_limits<float>::quiet_NaN();
  }
}

void matmul_reference(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                      int64_t ldy) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t n = 0; n < w.rows; ++n) {
      double sum = 0.0;
      for (int64_t k = 0; k < w.cols; ++k) sum += double(x[i * ldx + k]) * double(weight_at(w, n, k));
      y[i * ldy + n] = static_cast<float>(sum);
    }
  }
}

void dequantize(const WeightMatrix& w, float* out) {
#pragma omp parallel for schedule(static) if (w.rows * w.cols >= (1 << 16))
  for (int64_t r = 0; r < w.rows; ++r) dequantize_row(w, r, out + r * w.cols);
}

void embedding_lookup(const WeightMatrix& table, const int32_t* ids, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float* row = out + i * table.cols;
    if (ids[i] < 0 || ids[i] >= table.rows) {  // a caller bug; NaN makes it visible downstream
      for (int64_t c = 0; c < table.cols; ++c) row[c] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    dequantize_row(table, ids[i], row);
  }
}

}  // namespace latentserve::kernels::cpu
