// The residual step between sublayers on the GPU, fused: residual += delta, then the RMSNorm of the
// new residual (the next sublayer's input). The residual stream stays FP32; the normalized output is
// BF16 (a GEMM input) or F32. add_rmsnorm_reference is the plain CPU twin the tests compare with.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct AddRmsNormParams {
  float* residual = nullptr;    // [rows, dim] F32, row stride ld_residual; updated in place
  int64_t ld_residual = 0;
  const void* delta = nullptr;  // [rows, dim] delta_dtype (F32 or BF16), row stride ld_delta; null: norm only
  DType delta_dtype = DType::F32;
  int64_t ld_delta = 0;
  const float* weight = nullptr;  // [dim]
  void* y = nullptr;              // [rows, dim] y_dtype (F32 or BF16), row stride ld_y; must not overlap residual
  DType y_dtype = DType::BF16;
  int64_t ld_y = 0;
  int64_t rows = 0;
  int64_t dim = 0;
  float eps = 1e-6f;
};

// residual = residual + delta (FP32); y = (residual · rsqrt(mean(residual²) + eps)) · weight, the
// arithmetic of kernels/cpu/norm.h. Enqueues on `stream`; checks the parameters and the launch.
Status add_rmsnorm(const AddRmsNormParams& p, cudaStream_t stream);

// The CPU twin on host arrays (delta F32, may be null; y F32).
void add_rmsnorm_reference(float* residual, int64_t ld_residual, const float* delta,
                           int64_t ld_delta, const float* weight, float* y, int64_t ld_y,
                           int64_t rows, int64_t dim, float eps);

}  // namespace latentserve::kernels::cuda
