// RMSNorm on the GPU: FP32 or BF16 activations and weights, FP32 statistics, one block per row.
// Same arithmetic as kernels/cpu/norm.h: y = (x · rsqrt(mean(x²) + eps)) · weight.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct RmsNormParams {
  const void* x = nullptr;       // [rows, dim], row stride ldx elements; x_dtype F32 or BF16
  const void* weight = nullptr;  // [dim]; weight_dtype F32 or BF16
  void* y = nullptr;             // [rows, dim], row stride ldy elements; y_dtype F32 or BF16
  DType x_dtype = DType::F32;
  DType weight_dtype = DType::F32;
  DType y_dtype = DType::F32;
  int64_t rows = 0;
  int64_t dim = 0;
  int64_t ldx = 0;  // ≥ dim
  int64_t ldy = 0;  // ≥ dim; y may alias x only when x_dtype == y_dtype and ldx == ldy
  float eps = 1e-6f;
};

// Enqueues the kernel on `stream`; checks the parameters and the launch, not completion.
Status rmsnorm(const RmsNormParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
