// Per-head GEMMs of absorbed MLA on the GPU, one strided-batched cuBLAS call over the heads:
// q_latent[t, h] = q_nope[t, h] · W_UK[h] and o[t, h] = W_UV[h] · o_latent[t, h], BF16 in and
// out, FP32 accumulation, reading W_UK and W_UV in place from kv_b_proj.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "common/result.h"
#include "kernels/cuda/device_buffer.h"

namespace latentserve::models::cuda {

// y[t, h, :] = x[t, h, :] · W_h for t < tokens, h < heads, all BF16:
//   x: row t, head h at x + t * ldx + h * x_head_stride, k values;
//   W_h at w + h * w_head_stride: [k, n] row-major with row stride ldw (transpose_w false), or
//   [n, k] row-major with row stride ldw whose transpose is used (transpose_w true);
//   y: row t, head h at y + t * ldy + h * y_head_stride, n values.
struct PerHeadGemmParams {
  const void* x = nullptr;
  int64_t ldx = 0, x_head_stride = 0;
  const void* w = nullptr;
  int64_t ldw = 0, w_head_stride = 0;
  bool transpose_w = false;
  void* y = nullptr;
  int64_t ldy = 0, y_head_stride = 0;
  int64_t tokens = 0, heads = 0, k = 0, n = 0;
};

// The plain CPU twin on float arrays with the same strides (elements).
void per_head_gemm_reference(const PerHeadGemmParams& p, const float* x, const float* w, float* y);

// Owns a cuBLAS handle bound to the current device and its workspace: with a workspace of its own
// cuBLAS allocates nothing during a CUDA graph capture. Not thread-safe.
class PerHeadGemm {
 public:
  static Result<std::unique_ptr<PerHeadGemm>> create();
  ~PerHeadGemm();
  PerHeadGemm(const PerHeadGemm&) = delete;
  PerHeadGemm& operator=(const PerHeadGemm&) = delete;

  // Enqueues on `stream`; checks the sizes and the call, not completion.
  Status run(const PerHeadGemmParams& p, cudaStream_t stream);

 private:
  PerHeadGemm() = default;
  cublasHandle_t handle_ = nullptr;
  kernels::cuda::DeviceBuffer workspace_;
};

}  // namespace latentserve::models::cuda
