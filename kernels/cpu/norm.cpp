// RMSNorm: FP32 statistics, the multiplications in the order torch does them ((x · r) · w).
#include "kernels/cpu/norm.h"

#include <cmath>

namespace latentserve::kernels::cpu {

namespace {

void rmsnorm_row(const float* x, int64_t dim, const float* weight, float eps, float* y) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < dim; ++j) sum += x[j] * x[j];
  const float r = 1.0f / std::sqrt(sum / float(dim) + eps);
#pragma omp simd
  for (int64_t j = 0; j < dim; ++j) y[j] = (x[j] * r) * weight[j];
}

}  // namespace

void rmsnorm(const float* x, int64_t ldx, int64_t rows, int64_t dim, const float* weight, float eps,
             float* y, int64_t ldy) {
  // One row costs ~3·dim flops; only fan out when there is enough work to pay for the threads.
#pragma omp parallel for schedule(static) if (rows > 1 && rows * dim >= (1 << 15))
  for (int64_t r = 0; r < rows; ++r) rmsnorm_row(x + r * ldx, dim, weight, eps, y + r * ldy);
}

void rmsnorm_reference(const float* x, int64_t ldx, int64_t rows, int64_t dim, const float* weight,
                       float eps, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    double sum = 0.0;
    for (int64_t j = 0; j < dim; ++j) sum += double(xr[j]) * double(xr[j]);
    const float mean = float(sum / double(dim));
    const float inv = float(1.0 / std::sqrt(double(mean + eps)));
    for (int64_t j = 0; j < dim; ++j) y[r * ldy + j] = (xr[j] * inv) * weight[j];
  }
}

}  // namespace latentserve::kernels::cpu
