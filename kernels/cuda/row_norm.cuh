// Device helpers of the one-block-per-row RMSNorm kernels (rmsnorm, add_rmsnorm): F32/BF16 element
// loads and stores, and the block reduction that turns each thread's partial Σx² into 1/rms.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace latentserve::kernels::cuda::row_norm {

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Called by every thread of a kThreads-thread block with its partial Σx² over a row of `dim`
// values; every thread gets 1 / sqrt(Σx² / dim + eps) back.
template <int kThreads>
__device__ __forceinline__ float block_inv_rms(float sum, int64_t dim, float eps) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float partial[kWarps];
  __shared__ float inv_rms;
  sum = warp_sum(sum);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) partial[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    float s = lane < kWarps ? partial[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) inv_rms = 1.0f / sqrtf(s / float(dim) + eps);
  }
  __syncthreads();
  return inv_rms;
}

}  // namespace latentserve::kernels::cuda::row_norm
