// RMSNorm kernel: each block owns one row; threads stride over it, reduce Σx² through warp
// shuffles and shared memory, then write the scaled row. Accumulation is always FP32.
#include "kernels/cuda/rmsnorm.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/row_norm.cuh"

namespace latentserve::kernels::cuda {

namespace {

constexpr int kThreads = 256;

using row_norm::load;
using row_norm::store;

template <class TX, class TW, class TY>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const TX* __restrict__ x, const TW* __restrict__ w, TY* y, int64_t dim,
                   int64_t ldx, int64_t ldy, float eps) {
  const TX* xr = x + int64_t(blockIdx.x) * ldx;
  TY* yr = y + int64_t(blockIdx.x) * ldy;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) {
    const float v = load(xr + j);
    sum += v * v;
  }
  const float r = row_norm::block_inv_rms<kThreads>(sum, dim, eps);
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) store(yr + j, (load(xr + j) * r) * load(w + j));
}

template <class TX, class TW, class TY>
void launch(const RmsNormParams& p, cudaStream_t stream) {
  rmsnorm_kernel<TX, TW, TY><<<unsigned(p.rows), kThreads, 0, stream>>>(
      static_cast<const TX*>(p.x), static_cast<const TW*>(p.weight), static_cast<TY*>(p.y), p.dim,
      p.ldx, p.ldy, p.eps);
}

template <class TX, class TW>
Status launch_for_output(const RmsNormParams& p, cudaStream_t stream) {
  switch (p.y_dtype) {
    case DType::F32: launch<TX, TW, float>(p, stream); return ok_status();
    case DType::BF16: launch<TX, TW, __nv_bfloat16>(p, stream); return ok_status();
    default: break;
  }
  return make_error("cuda rmsnorm: y_dtype " + std::string(dtype_name(p.y_dtype)) +
                    " is not supported (F32 or BF16)");
}

template <class TX>
Status launch_for_weight(const RmsNormParams& p, cudaStream_t stream) {
  switch (p.weight_dtype) {
    case DType::F32: return launch_for_output<TX, float>(p, stream);
    case DType::BF16: return launch_for_output<TX, __nv_bfloat16>(p, stream);
    default: break;
  }
  return make_error("cuda rmsnorm: weight_dtype " + std::string(dtype_name(p.weight_dtype)) +
                    " is not supported (F32 or BF16)");
}

Status check(const RmsNormParams& p) {
  if (p.rows < 0 || p.dim < 0) {
    return make_error("cuda rmsnorm: negative shape rows=" + std::to_string(p.rows) +
                      " dim=" + std::to_string(p.dim));
  }
  if (p.rows > 0x7fffffff) {
    return make_error("cuda rmsnorm: rows=" + std::to_string(p.rows) + " exceeds the grid limit");
  }
  if (p.ldx < p.dim || p.ldy < p.dim) {
    return make_error("cuda rmsnorm: row strides ldx=" + std::to_string(p.ldx) + " ldy=" +
                      std::to_string(p.ldy) + " must be at least dim=" + std::to_string(p.dim));
  }
  if (p.rows > 0 && p.dim > 0 && (!p.x || !p.weight || !p.y)) {
    return make_error("cuda rmsnorm: x, weight and y must be device pointers, got null");
  }
  return ok_status();
}

Status launch_for_input(const RmsNormParams& p, cudaStream_t stream) {
  switch (p.x_dtype) {
    case DType::F32: return launch_for_weight<float>(p, stream);
    case DType::BF16: return launch_for_weight<__nv_bfloat16>(p, stream);
    default: break;
  }
  return make_error("cuda rmsnorm: x_dtype " + std::string(dtype_name(p.x_dtype)) +
                    " is not supported (F32 or BF16)");
}

}  // namespace

Status rmsnorm(const RmsNormParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.rows == 0 || p.dim == 0) return ok_status();
  LS_RETURN_IF_ERROR(launch_for_input(p, stream));
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
