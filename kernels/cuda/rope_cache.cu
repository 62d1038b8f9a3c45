// RoPE and latent-cache write kernels: one thread block per token row; cos/sin are computed once
// per (row, pair) in FP32 with the accurate sincosf (angles reach ~1e5 radians at long positions).
#include "kernels/cuda/rope_cache.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {

namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float2 rotate(float a, float b, float angle, float factor) {
  float s, c;
  sincosf(angle, &s, &c);
  c *= factor;
  s *= factor;
  return make_float2(a * c - b * s, a * s + b * c);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(T* x, const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                int64_t ld, int64_t heads, int64_t head_stride, int64_t half, float factor) {
  const int64_t r = blockIdx.x;
  const float pos = float(positions[r]);
  for (int64_t k = threadIdx.x; k < heads * half; k += kThreads) {
    const int64_t h = k / half, i = k % half;
    T* v = x + r * ld + h * head_stride + 2 * i;
    const float2 y = rotate(load(v), load(v + 1), pos * inv_freq[i], factor);
    store(v, y.x);
    store(v + 1, y.y);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    cache_write_kernel(const T* __restrict__ kv, const int32_t* __restrict__ positions,
                       const int64_t* __restrict__ slots, const float* __restrict__ inv_freq,
                       __nv_bfloat16* cache, int64_t ld_kv, int64_t rank, int64_t rope_dim,
                       float factor) {
  const int64_t i = blockIdx.x;
  const int64_t slot = slots[i];
  if (slot < 0) return;
  const T* src = kv + i * ld_kv;
  __nv_bfloat16* dst = cache + slot * (rank + rope_dim);
  for (int64_t j = threadIdx.x; j < rank; j += kThreads) store(dst + j, load(src + j));
  const float pos = float(positions[i]);
  for (int64_t k = threadIdx.x; k < rope_dim / 2; k += kThreads) {
    const T* v = src + rank + 2 * k;
    const float2 y = rotate(load(v), load(v + 1), pos * inv_freq[k], factor);
    dst[rank + 2 * k] = __float2bfloat16_rn(y.x);
    dst[rank + 2 * k + 1] = __float2bfloat16_rn(y.y);
  }
}

Status check_rows(int64_t rows, const char* what) {
  if (rows < 0 || rows > 0x7fffffff) {
    return make_error(std::string(what) + ": row count " + std::to_string(rows) +
                      " is negative or exceeds the grid limit");
  }
  return ok_status();
}

Status check(const RopeInterleavedParams& p) {
  LS_RETURN_IF_ERROR(check_rows(p.rows, "cuda rope_interleaved"));
  if (p.rotary_dim < 0 || p.rotary_dim % 2 != 0 || p.heads < 0) {
    return make_error("cuda rope_interleaved: rotary_dim=" + std::to_string(p.rotary_dim) +
                      " must be even and ≥ 0, heads=" + std::to_string(p.heads) + " ≥ 0");
  }
  if (p.heads > 0 && (p.head_stride < p.rotary_dim || p.ld < (p.heads - 1) * p.head_stride + p.rotary_dim)) {
    return make_error("cuda rope_interleaved: head_stride=" + std::to_string(p.head_stride) +
                      " ld=" + std::to_string(p.ld) + " do not hold " + std::to_string(p.heads) +
                      " heads of " + std::to_string(p.rotary_dim));
  }
  if (p.dtype != DType::F32 && p.dtype != DType::BF16) {
    return make_error("cuda rope_interleaved: dtype " + std::string(dtype_name(p.dtype)) +
                      " is not supported (F32 or BF16)");
  }
  if (p.rows > 0 && p.heads > 0 && p.rotary_dim > 0 && (!p.x || !p.positions || !p.inv_freq)) {
    return make_error("cuda rope_interleaved: x, positions and inv_freq must be device pointers");
  }
  return ok_status();
}

Status check(const MlaCacheWriteParams& p) {
  LS_RETURN_IF_ERROR(check_rows(p.num_tokens, "cuda mla_write_latent_cache"));
  if (p.kv_lora_rank < 0 || p.rope_dim < 0 || p.rope_dim % 2 != 0 ||
      p.ld_kv < p.kv_lora_rank + p.rope_dim) {
    return make_error("cuda mla_write_latent_cache: kv_lora_rank=" + std::to_string(p.kv_lora_rank) +
                      " rope_dim=" + std::to_string(p.rope_dim) + " (even) must fit ld_kv=" +
                      std::to_string(p.ld_kv));
  }
  if (p.kv_dtype != DType::F32 && p.kv_dtype != DType::BF16) {
    return make_error("cuda mla_write_latent_cache: kv_dtype " +
                      std::string(dtype_name(p.kv_dtype)) + " is not supported (F32 or BF16)");
  }
  if (p.num_tokens > 0 && (!p.kv || !p.positions || !p.slot_mapping || !p.cache ||
                           (p.rope_dim > 0 && !p.inv_freq))) {
    return make_error("cuda mla_write_latent_cache: kv, positions, slot_mapping, inv_freq and "
                      "cache must be device pointers");
  }
  return ok_status();
}

}  // namespace

Status rope_interleaved(const RopeInterleavedParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.rows == 0 || p.heads == 0 || p.rotary_dim == 0) return ok_status();
  const int64_t half = p.rotary_dim / 2;
  if (p.dtype == DType::BF16) {
    rope_kernel<<<unsigned(p.rows), kThreads, 0, stream>>>(
        static_cast<__nv_bfloat16*>(p.x), p.positions, p.inv_freq, p.ld, p.heads, p.head_stride,
        half, p.cos_sin_factor);
  } else {
    rope_kernel<<<unsigned(p.rows), kThreads, 0, stream>>>(
        static_cast<float*>(p.x), p.positions, p.inv_freq, p.ld, p.heads, p.head_stride, half,
        p.cos_sin_factor);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

Status mla_write_latent_cache(const MlaCacheWriteParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.num_tokens == 0) return ok_status();
  auto* cache = static_cast<__nv_bfloat16*>(p.cache);
  if (p.kv_dtype == DType::BF16) {
    cache_write_kernel<<<unsigned(p.num_tokens), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(p.kv), p.positions, p.slot_mapping, p.inv_freq, cache,
        p.ld_kv, p.kv_lora_rank, p.rope_dim, p.cos_sin_factor);
  } else {
    cache_write_kernel<<<unsigned(p.num_tokens), kThreads, 0, stream>>>(
        static_cast<const float*>(p.kv), p.positions, p.slot_mapping, p.inv_freq, cache, p.ld_kv,
        p.kv_lora_rank, p.rope_dim, p.cos_sin_factor);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
