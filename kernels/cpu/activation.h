// Elementwise pieces of the feed-forward block and of sampling: SiLU-gated product and row softmax.
#pragma once

#include <cstdint>

namespace latentserve::kernels::cpu {

// out[r, j] = silu(gate[r, j]) * up[r, j], silu(x) = x / (1 + exp(-x)); j < width.
// gate/up/out have row strides ldg/ldu/ldo; out may alias gate or up.
void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows,
              int64_t width, float* out, int64_t ldo);
void silu_mul_reference(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows,
                        int64_t width, float* out, int64_t ldo);

// In-place, numerically stable softmax of each row (max subtracted), row stride ld.
void softmax_rows(float* x, int64_t rows, int64_t cols, int64_t ld);
void softmax_rows_reference(float* x, int64_t rows, int64_t cols, int64_t ld);

// In-place log-softmax of each row.
void log_softmax_rows(float* x, int64_t rows, int64_t cols, int64_t ld);

}  // namespace latentserve::kernels::cpu
