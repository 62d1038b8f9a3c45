// RMSNorm on the CPU, statistics in FP32 (what DeepSeek's reference and Hugging Face do).
// y may alias x.
#pragma once

#include <cstdint>

namespace latentserve::kernels::cpu {

// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]²) + eps) * weight   for r < rows
// x: [rows, dim] row stride ldx; weight: [dim]; y: [rows, dim] row stride ldy.
void rmsnorm(const float* x, int64_t ldx, int64_t rows, int64_t dim, const float* weight, float eps,
             float* y, int64_t ldy);
void rmsnorm_reference(const float* x, int64_t ldx, int64_t rows, int64_t dim, const float* weight,
                       float eps, float* y, int64_t ldy);

}  // namespace latentserve::kernels::cpu
