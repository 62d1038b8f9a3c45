// Plain CPU residual add + RMSNorm, the reference of add_rmsnorm.cu (sum of squares in double).
#include <cmath>

#include "kernels/cuda/add_rmsnorm.h"

namespace latentserve::kernels::cuda {

void add_rmsnorm_reference(float* residual, int64_t ld_residual, const float* delta,
                           int64_t ld_delta, const float* weight, float* y, int64_t ld_y,
                           int64_t rows, int64_t dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* x = residual + r * ld_residual;
    double sum = 0.0;
    for (int64_t j = 0; j < dim; ++j) {
      if (delta != nullptr) x[j] += delta[r * ld_delta + j];
      sum += double(x[j]) * double(x[j]);
    }
    const float inv_rms = float(1.0 / std::sqrt(sum / double(dim) + double(eps)));
    for (int64_t j = 0; j < dim; ++j) y[r * ld_y + j] = (x[j] * inv_rms) * weight[j];
  }
}

}  // namespace latentserve::kernels::cuda
