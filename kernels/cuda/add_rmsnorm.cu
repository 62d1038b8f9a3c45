// Fused residual add + RMSNorm: one block per row. The first pass adds the delta, stores the new
// residual and sums its squares; after the block reduction the second pass re-reads the residual
// (each thread reads back only what it wrote, so no barrier is needed for it) and writes y.
#include "kernels/cuda/add_rmsnorm.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/row_norm.cuh"

namespace latentserve::kernels::cuda {

namespace {

constexpr int kThreads = 256;

using row_norm::load;
using row_norm::store;

template <class TD, class TY>
__global__ void __launch_bounds__(kThreads)
    add_rmsnorm_kernel(float* residual, int64_t ld_residual, const TD* __restrict__ delta,
                       int64_t ld_delta, const float* __restrict__ w, TY* __restrict__ y,
                       int64_t ld_y, int64_t dim, float eps) {
  float* x = residual + int64_t(blockIdx.x) * ld_residual;
  const TD* d = delta != nullptr ? delta + int64_t(blockIdx.x) * ld_delta : nullptr;
  TY* yr = y + int64_t(blockIdx.x) * ld_y;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
    float v = x[j];
    if (d != nullptr) {
      v += load(d + j);
      x[j] = v;
    }
    sum += v * v;
  }
  const float r = row_norm::block_inv_rms<kThreads>(sum, dim, eps);
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) store(yr + j, (x[j] * r) * w[j]);
}

template <class TD, class TY>
void launch(const AddRmsNormParams& p, cudaStream_t stream) {
  add_rmsnorm_kernel<TD, TY><<<unsigned(p.rows), kThreads, 0, stream>>>(
      p.residual, p.ld_residual, static_cast<const TD*>(p.delta), p.ld_delta, p.weight,
      static_cast<TY*>(p.y), p.ld_y, p.dim, p.eps);
}

bool float_or_bf16(DType t) { return t == DType::F32 || t == DType::BF16; }

}  // namespace

Status add_rmsnorm(const AddRmsNormParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.dim <= 0) {
    return make_error("add_rmsnorm: bad size (rows " + std::to_string(p.rows) + ", dim " +
                      std::to_string(p.dim) + ")");
  }
  if (p.rows == 0) return ok_status();
  if (p.rows > 0x7fffffff) return make_error("add_rmsnorm: " + std::to_string(p.rows) + " rows exceed the grid");
  if (p.residual == nullptr || p.weight == nullptr || p.y == nullptr) {
    return make_error("add_rmsnorm: null residual, weight or output");
  }
  if (!float_or_bf16(p.delta_dtype) || !float_or_bf16(p.y_dtype)) {
    return make_error(std::string("add_rmsnorm: dtypes delta ") + std::string(dtype_name(p.delta_dtype)) + ", y " +
                      std::string(dtype_name(p.y_dtype)) + " unsupported (F32 or BF16)");
  }
  if (p.ld_residual < p.dim || p.ld_y < p.dim || (p.delta != nullptr && p.ld_delta < p.dim)) {
    return make_error("add_rmsnorm: a row stride is below the width " + std::to_string(p.dim));
  }
  const bool df = p.delta_dtype == DType::F32, yf = p.y_dtype == DType::F32;
  if (df && yf) launch<float, float>(p, stream);
  if (df && !yf) launch<float, __nv_bfloat16>(p, stream);
  if (!df && yf) launch<__nv_bfloat16, float>(p, stream);
  if (!df && !yf) launch<__nv_bfloat16, __nv_bfloat16>(p, stream);
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
