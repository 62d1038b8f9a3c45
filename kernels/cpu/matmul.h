// Linear layers on the CPU: y = x · Wᵀ for weights in F32, BF16, F16 or FP8 E4M3 with block scales,
// always accumulating in FP32. `matmul_reference` is the plain double-accumulating twin the tests use.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace latentserve::kernels::cpu {

// A weight matrix in PyTorch Linear layout: `rows` output features × `cols` input features.
struct WeightMatrix {
  DType dtype = DType::F32;        // F32, BF16, F16 or F8_E4M3
  const void* data = nullptr;      // [rows, cols], row-major, contiguous
  int64_t rows = 0;
  int64_t cols = 0;
  // F8_E4M3 only: per-block multipliers (DeepSeek's `weight_scale_inv`), real = fp8 * scale.
  const float* scale_inv = nullptr;  // [ceil(rows / block_rows), ceil(cols / block_cols)]
  int64_t block_rows = 128;
  int64_t block_cols = 128;

  bool empty() const { return data == nullptr; }
  // F8_E4M3: scale_inv's grid, scale_rows() × scale_cols() (partial edge blocks count).
  int64_t scale_rows() const { return (rows + block_rows - 1) / block_rows; }
  int64_t scale_cols() const { return (cols + block_cols - 1) / block_cols; }
};

// y[i, n] = sum_k x[i, k] * W[n, k] for i < m.
// x: [m, w.cols] with row stride ldx (≥ w.cols); y: [m, w.rows] with row stride ldy (≥ w.rows).
// x and y must not overlap. Parallel over rows of W for small m (decode) and over x rows for large m.
// Batch invariant: for a given instruction set, row i of y has the same bits whatever m is.
void matmul(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y, int64_t ldy);
inline void matmul(const float* x, int64_t m, const WeightMatrix& w, float* y) {
  matmul(x, w.cols, m, w, y, w.rows);
}

// One product of matmul_each: y = x · Wᵀ with matmul's shapes and strides.
struct MatmulTask {
  const float* x;
  int64_t ldx;
  int64_t m;
  WeightMatrix w;
  float* y;
  int64_t ldy;
};

// Several independent products, e.g. one per attention head or per expert. Each task is computed
// whole by one thread, so its bits are exactly matmul()'s; threads share out whole tasks, which
// costs one parallel region for the list instead of one per product (small products spent more
// on waking and joining threads than on arithmetic). Tasks beyond a multiple of the thread count
// run one after another, each split across the threads as matmul() splits it.
void matmul_each(const MatmulTask* tasks, int64_t count);

void matmul_reference(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
                      int64_t ldy);

// The real value of W[r, c] (dequantized); used by references and slow paths.
float weight_at(const WeightMatrix& w, int64_t r, int64_t c);

// Writes W as F32 [rows, cols] (dequantizing FP8 with its block scales).
void dequantize(const WeightMatrix& w, float* out);

// out[i, :] = table[ids[i], :] as F32; ids must be in [0, table.rows).
void embedding_lookup(const WeightMatrix& table, const int32_t* ids, int64_t n, float* out);

}  // namespace latentserve::kernels::cpu
