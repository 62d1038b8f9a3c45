// Grouped expert GEMVs: one thread block per (non-empty expert, tile of output features). The block
// copies up to kMoeGroupedMaxTokens of the expert's input rows into shared memory, and each warp
// streams whole weight rows (16-byte loads, four in flight per lane) against all of them, so a
// weight element is read from memory once per group of rows. Blocks past the number of non-empty
// experts exit at once: the grid is fixed by the token count, the work is not.
#include "kernels/cuda/moe_grouped.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_layer.h"
#include "kernels/cuda/moe_router.h"
#include "kernels/cuda/quantize.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxTok = int(kMoeGroupedMaxTokens);
constexpr int kFeaturesPerWarp = 4;  // output features (gate/up pairs, or down rows) per warp
constexpr int kFeaturesPerBlock = kWarps * kFeaturesPerWarp;
constexpr int kUnroll = 4;                       // 16-byte weight loads in flight per lane
constexpr size_t kMaxSharedBytes = 160 * 1024;  // for the group's input rows

struct Args {
  const MoeExpertWeights* experts;
  int64_t num_experts, hidden, width;
  const __nv_bfloat16* x;
  int64_t ldx;
  const int32_t* offsets;
  const int32_t* source_token;
  const int32_t* active;
  __nv_bfloat16* h;
  float* y;
  int group;  // input rows per pass, ≤ kMaxTok
};

__device__ __forceinline__ void unpack(const uint4& raw, float (&w)[8], const __nv_bfloat16*) {
  const auto* p = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(p[i]);
    w[2 * i] = f.x;
    w[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void unpack(const uint4& raw, float (&w)[16], const uint8_t*) {
  const auto* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(p[i], __NV_E4M3)));
    w[2 * i] = f.x;
    w[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ float scalar(const __nv_bfloat16* row, int64_t k) {
  return __bfloat162float(row[k]);
}
__device__ __forceinline__ float scalar(const uint8_t* row, int64_t k) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(row[k], __NV_E4M3)));
}

// acc[t] += this lane's share of row · xs[t] for t < n. `scale` is the row's block-scale row
// (FP8) or null; xs holds n rows of k BF16 values. Vectorized when every 16-byte chunk is aligned.
template <class TW>
__device__ __forceinline__ void row_dot(const TW* row, const float* scale, int64_t k,
                                        const __nv_bfloat16* xs, int n, float (&acc)[kMaxTok]) {
  constexpr int kE = 16 / sizeof(TW);  // weights per 16-byte chunk
  const int lane = threadIdx.x % 32;
  const bool vec = k % kE == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0;
  const int64_t chunks = vec ? k / kE : 0;
  const uint4* src = reinterpret_cast<const uint4*>(row);
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    uint4 raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      raw[u] = c < chunks ? __ldg(src + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= chunks) break;
      float w[kE];
      unpack(raw[u], w, row);
      const float s = scale ? scale[(c * kE) / kFp8Group] : 1.0f;
#pragma unroll
      for (int t = 0; t < kMaxTok; ++t) {
        if (t >= n) break;
        const uint4* xv = reinterpret_cast<const uint4*>(xs + t * k + c * kE);
        float sum = 0.0f;
#pragma unroll
        for (int q = 0; q < kE / 8; ++q) {
          float xf[8];
          unpack(xv[q], xf, static_cast<const __nv_bfloat16*>(nullptr));
#pragma unroll
          for (int i = 0; i < 8; ++i) sum += w[q * 8 + i] * xf[i];
        }
        acc[t] += s * sum;
      }
    }
  }
  for (int64_t i = chunks * kE + lane; i < k; i += 32) {
    const float w = scalar(row, i) * (scale ? scale[i / kFp8Group] : 1.0f);
#pragma unroll
    for (int t = 0; t < kMaxTok; ++t) {
      if (t < n) acc[t] += w * __bfloat162float(xs[t * k + i]);
    }
  }
}

__device__ __forceinline__ void warp_sum(float (&acc)[kMaxTok], int n) {
#pragma unroll
  for (int t = 0; t < kMaxTok; ++t) {
    if (t >= n) break;
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
  }
}

// n rows of k BF16 values into shared memory: row t from src + row_of(t) * ld.
template <class RowOf>
__device__ __forceinline__ void load_rows(__nv_bfloat16* xs, const __nv_bfloat16* src, int64_t ld,
                                          int64_t k, int n, RowOf row_of) {
  const bool vec = k % 8 == 0 && ld % 8 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0;
  if (vec) {
    const int64_t per_row = k / 8;
    for (int64_t i = threadIdx.x; i < n * per_row; i += kThreads) {
      const int64_t t = i / per_row, c = i % per_row;
      reinterpret_cast<uint4*>(xs + t * k)[c] =
          reinterpret_cast<const uint4*>(src + int64_t(row_of(int(t))) * ld)[c];
    }
  } else {
    for (int64_t i = threadIdx.x; i < n * k; i += kThreads) {
      const int64_t t = i / k, c = i % k;
      xs[i] = src[int64_t(row_of(int(t))) * ld + c];
    }
  }
}

// The block's expert and its permuted rows, or false when the block has no expert.
__device__ __forceinline__ bool block_expert(const Args& a, int64_t& e, int32_t& first,
                                             int32_t& last) {
  if (int(blockIdx.x) >= a.active[a.num_experts]) return false;
  e = a.active[blockIdx.x];
  first = a.offsets[e];
  last = a.offsets[e + 1];
  return true;
}

// body(w, g0, n) for each group of up to a.group of the block's expert's permuted rows [g0, g0 + n),
// after staging their k inputs in xs (row t from src + row_of(g0 + t) * ld); nothing when the
// block has no expert.
template <class RowOf, class Body>
__device__ __forceinline__ void for_each_group(const Args& a, __nv_bfloat16* xs, const __nv_bfloat16* src,
                                               int64_t ld, int64_t k, RowOf row_of, Body body) {
  int64_t e;
  int32_t first, last;
  if (!block_expert(a, e, first, last)) return;
  const MoeExpertWeights w = a.experts[e];
  for (int32_t g0 = first; g0 < last; g0 += a.group) {
    const int n = min(a.group, last - g0);
    __syncthreads();  // the previous group's rows are no longer read
    load_rows(xs, src, ld, k, n, [&](int t) { return row_of(g0 + t); });
    __syncthreads();
    body(w, g0, n);
  }
}

// The FP8 scales of weight row `row` (sld scales per 128-row block), or null for BF16 weights.
__device__ __forceinline__ const float* row_scales(const float* scales, int64_t row, int64_t sld) {
  return scales ? scales + (row / kFp8Group) * sld : nullptr;
}

// h[r, j] = silu(gate_j · x[t]) · (up_j · x[t]) for the block's features j.
template <class TW>
__global__ void __launch_bounds__(kThreads) gate_up_kernel(const Args a) {
  extern __shared__ __align__(16) char smem[];
  auto* xs = reinterpret_cast<__nv_bfloat16*>(smem);
  const int64_t sld = weight_scale_ld(a.hidden);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto token_of = [&](int32_t r) { return a.source_token[r]; };
  for_each_group(a, xs, a.x, a.ldx, a.hidden, token_of, [&](const MoeExpertWeights& w, int32_t g0, int n) {
    const auto* weight = static_cast<const TW*>(w.gate_up);
#pragma unroll 1
    for (int f = 0; f < kFeaturesPerWarp; ++f) {
      const int64_t j = int64_t(blockIdx.y) * kFeaturesPerBlock + f * kWarps + warp;
      if (j >= a.width) break;
      float g[kMaxTok] = {}, u[kMaxTok] = {};
      const int64_t ur = a.width + j;
      row_dot(weight + j * a.hidden, row_scales(w.gate_up_scales, j, sld), a.hidden, xs, n, g);
      row_dot(weight + ur * a.hidden, row_scales(w.gate_up_scales, ur, sld), a.hidden, xs, n, u);
      warp_sum(g, n);
      warp_sum(u, n);
      if (lane == 0) {
#pragma unroll
        for (int t = 0; t < kMaxTok; ++t) {
          if (t >= n) break;
          a.h[int64_t(g0 + t) * a.width + j] = __float2bfloat16_rn(g[t] / (1.0f + expf(-g[t])) * u[t]);
        }
      }
    }
  });
}

// y[r, i] = down_i · h[r] for the block's output features i.
template <class TW>
__global__ void __launch_bounds__(kThreads) down_kernel(const Args a) {
  extern __shared__ __align__(16) char smem[];
  auto* hs = reinterpret_cast<__nv_bfloat16*>(smem);
  const int64_t sld = weight_scale_ld(a.width);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto same_row = [](int32_t r) { return r; };
  for_each_group(a, hs, a.h, a.width, a.width, same_row, [&](const MoeExpertWeights& w, int32_t g0, int n) {
    const auto* weight = static_cast<const TW*>(w.down);
#pragma unroll 1
    for (int f = 0; f < kFeaturesPerWarp; ++f) {
      const int64_t i = int64_t(blockIdx.y) * kFeaturesPerBlock + f * kWarps + warp;
      if (i >= a.hidden) break;
      float acc[kMaxTok] = {};
      row_dot(weight + i * a.width, row_scales(w.down_scales, i, sld), a.width, hs, n, acc);
      warp_sum(acc, n);
      if (lane == 0) {
#pragma unroll
        for (int t = 0; t < kMaxTok; ++t) {
          if (t < n) a.y[int64_t(g0 + t) * a.hidden + i] = acc[t];
        }
      }
    }
  });
}

// active[0..count) = the experts with rows, in index order; active[num_experts] = count.
__global__ void active_kernel(const int32_t* offsets, int num_experts, int32_t* active) {
  __shared__ int warp_counts[32];
  const int e = threadIdx.x, lane = e % 32, warp = e / 32;
  const bool on = e < num_experts && offsets[e + 1] > offsets[e];
  const unsigned mask = __ballot_sync(0xffffffffu, on);
  if (lane == 0) warp_counts[warp] = __popc(mask);
  __syncthreads();
  int before = 0;
  for (int i = 0; i < warp; ++i) before += warp_counts[i];
  if (on) active[before + __popc(mask & ((1u << lane) - 1u))] = e;
  if (e == int(blockDim.x) - 1) active[num_experts] = before + __popc(mask);
}

Status check(const MoeGroupedParams& p) {
  const std::string where = "moe_grouped_experts: ";
  if (p.dtype != DType::BF16 && p.dtype != DType::F8_E4M3) {
    return make_error(where + "expert dtype " + std::string(dtype_name(p.dtype)) +
                      " is not supported (BF16 or F8_E4M3)");
  }
  if (p.num_experts < 1 || p.num_experts > kMoeMaxExperts || p.hidden < 1 || p.width < 1 ||
      p.tokens < 0 || p.top_k < 1 || p.ldx < p.hidden) {
    return make_error(where + "num_experts=" + std::to_string(p.num_experts) + " (1.." +
                      std::to_string(kMoeMaxExperts) + "), hidden=" + std::to_string(p.hidden) +
                      ", width=" + std::to_string(p.width) + ", tokens=" + std::to_string(p.tokens) +
                      ", top_k=" + std::to_string(p.top_k) + ", ldx=" + std::to_string(p.ldx));
  }
  if (p.tokens > 0 && (!p.experts || !p.x || !p.offsets || !p.source_token || !p.active || !p.h ||
                       !p.y)) {
    return make_error(where + "experts, x, offsets, source_token, active, h and y must be device "
                      "pointers, got null");
  }
  const size_t row_bytes = size_t(std::max(p.hidden, p.width)) * 2;
  if (row_bytes > kMaxSharedBytes) {
    return make_error(where + "an input row of " + std::to_string(row_bytes) +
                      " bytes does not fit the shared memory");
  }
  return ok_status();
}

template <class TW>
Status launch(const MoeGroupedParams& p, const Args& a, unsigned slots, cudaStream_t stream) {
  const size_t up_bytes = size_t(a.group) * size_t(p.hidden) * 2;
  const size_t down_bytes = size_t(a.group) * size_t(p.width) * 2;
  // The opt-in limit is raised to the device's maximum, never to this call's size: lowering it
  // between captures could invalidate a graph captured earlier with a larger launch. The call is
  // host-only and cheap, and is repeated because the setting is per device.
  int device = 0, optin = 0;
  LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  LS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (up_bytes > size_t(optin) || down_bytes > size_t(optin)) {
    return make_error("grouped MoE: " + std::to_string(std::max(up_bytes, down_bytes)) +
                      " bytes of shared memory per block exceed the device's " + std::to_string(optin));
  }
  LS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(gate_up_kernel<TW>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  LS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(down_kernel<TW>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  const dim3 up_grid(slots, unsigned(ceil_div(p.width, kFeaturesPerBlock)));
  gate_up_kernel<TW><<<up_grid, kThreads, up_bytes, stream>>>(a);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const dim3 down_grid(slots, unsigned(ceil_div(p.hidden, kFeaturesPerBlock)));
  down_kernel<TW><<<down_grid, kThreads, down_bytes, stream>>>(a);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return ok_status();
}

}  // namespace

Status moe_grouped_experts(const MoeGroupedParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.tokens == 0) return ok_status();
  const int64_t rows = p.tokens * p.top_k;
  const int64_t fit = int64_t(kMaxSharedBytes / (size_t(std::max(p.hidden, p.width)) * 2));
  Args a{p.experts, p.num_experts, p.hidden, p.width,
         static_cast<const __nv_bfloat16*>(p.x), p.ldx, p.offsets, p.source_token, p.active,
         static_cast<__nv_bfloat16*>(p.h), p.y,
         // An expert gets at most `tokens` rows (top-k experts are distinct).
         int(std::min({kMoeGroupedMaxTokens, p.tokens, fit}))};
  const unsigned threads = unsigned(round_up(p.num_experts, 32));
  active_kernel<<<1, threads, 0, stream>>>(p.offsets, int(p.num_experts), p.active);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const unsigned slots = unsigned(std::min(rows, p.num_experts));
  if (p.dtype == DType::BF16) return launch<__nv_bfloat16>(p, a, slots, stream);
  return launch<uint8_t>(p, a, slots, stream);
}

}  // namespace latentserve::kernels::cuda
