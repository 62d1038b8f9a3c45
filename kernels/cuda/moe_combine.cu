// SiLU-gated product (grid-stride over elements) and weighted combine (one block per token: the
// token's k rows and weights sit in shared memory, threads stride over the hidden columns, so each
// of the k reads is coalesced).
#include "kernels/cuda/moe_combine.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_router.h"

namespace latentserve::kernels::cuda {
namespace {

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

bool float_or_bf16(DType t) {
  return t == DType::F32 || t == DType::BF16;
}

std::string type_error(const char* where, const char* name, DType t) {
  return std::string(where) + name + " " + std::string(dtype_name(t)) +
         " is not supported (BF16 or F32)";
}

template <class TI, class TO>
__global__ void silu_mul_kernel(const TI* __restrict__ in, int64_t ld_in, TO* __restrict__ out,
                                int64_t ld_out, int64_t rows, int64_t width,
                                const int32_t* __restrict__ row_count) {
  const int64_t live = row_count ? min(rows, int64_t(*row_count)) : rows;
  const int64_t total = live * width;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / width, c = i % width;
    const float g = load(in + r * ld_in + c);
    const float u = load(in + r * ld_in + width + c);
    store(out + r * ld_out + c, g / (1.0f + expf(-g)) * u);
  }
}

template <class TI, class TO>
void launch_silu(const MoeSiluMulParams& p, cudaStream_t stream) {
  const int64_t blocks = (p.rows * p.width + 255) / 256;
  const unsigned grid = unsigned(blocks < 65536 ? blocks : 65536);  // the loop covers the rest
  silu_mul_kernel<TI, TO><<<grid, 256, 0, stream>>>(static_cast<const TI*>(p.gate_up), p.ld_in,
                                                    static_cast<TO*>(p.out), p.ld_out, p.rows,
                                                    p.width, p.row_count);
}

template <class TY, class TS, class TO>
__global__ void combine_kernel(const TY* __restrict__ y, int64_t ld_y,
                               const int32_t* __restrict__ permuted_row,
                               const float* __restrict__ weights, const TS* __restrict__ shared,
                               int64_t ld_shared, TO* __restrict__ out, int64_t ld_out, int top_k,
                               int64_t hidden) {
  __shared__ int32_t rows[kMoeMaxTopK];
  __shared__ float w[kMoeMaxTopK];
  const int64_t t = blockIdx.x;
  if (threadIdx.x < top_k) {
    rows[threadIdx.x] = permuted_row[t * top_k + threadIdx.x];
    w[threadIdx.x] = weights[t * top_k + threadIdx.x];
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) {
    float acc = shared ? load(shared + t * ld_shared + c) : 0.0f;
    for (int k = 0; k < top_k; ++k) {
      if (rows[k] >= 0) acc += w[k] * load(y + int64_t(rows[k]) * ld_y + c);
    }
    store(out + t * ld_out + c, acc);
  }
}

template <class TY, class TS, class TO>
void launch_combine(const MoeCombineParams& p, cudaStream_t stream) {
  combine_kernel<TY, TS, TO><<<unsigned(p.tokens), 256, 0, stream>>>(
      static_cast<const TY*>(p.expert_out), p.ld_y, p.permuted_row, p.weights,
      static_cast<const TS*>(p.shared), p.ld_shared, static_cast<TO*>(p.out), p.ld_out,
      int(p.top_k), p.hidden);
}

template <class TY, class TS>
void combine_for_out(const MoeCombineParams& p, cudaStream_t stream) {
  if (p.out_dtype == DType::F32) {
    launch_combine<TY, TS, float>(p, stream);
  } else {
    launch_combine<TY, TS, __nv_bfloat16>(p, stream);
  }
}

template <class TY>
void combine_for_shared(const MoeCombineParams& p, cudaStream_t stream) {
  // Without a shared output the pointer is null and its type is never read: use F32.
  if (!p.shared || p.shared_dtype == DType::F32) {
    combine_for_out<TY, float>(p, stream);
  } else {
    combine_for_out<TY, __nv_bfloat16>(p, stream);
  }
}

Status check_combine(const MoeCombineParams& p) {
  constexpr const char* where = "cuda moe_combine: ";
  if (!float_or_bf16(p.y_dtype)) return make_error(type_error(where, "y_dtype", p.y_dtype));
  if (!float_or_bf16(p.out_dtype)) return make_error(type_error(where, "out_dtype", p.out_dtype));
  if (p.shared && !float_or_bf16(p.shared_dtype)) {
    return make_error(type_error(where, "shared_dtype", p.shared_dtype));
  }
  if (p.tokens < 0 || p.hidden < 0 || p.top_k < 1 || p.top_k > kMoeMaxTopK ||
      p.tokens > 0x7fffffff) {
    return make_error(std::string(where) + "bad shape tokens=" + std::to_string(p.tokens) +
                      " top_k=" + std::to_string(p.top_k) + " (1..32) hidden=" +
                      std::to_string(p.hidden));
  }
  if (p.ld_y < p.hidden || p.ld_out < p.hidden || (p.shared && p.ld_shared < p.hidden)) {
    return make_error(std::string(where) + "row strides ld_y=" + std::to_string(p.ld_y) +
                      " ld_out=" + std::to_string(p.ld_out) + " ld_shared=" +
                      std::to_string(p.ld_shared) + " must be at least hidden=" +
                      std::to_string(p.hidden));
  }
  if (p.tokens > 0 && p.hidden > 0 &&
      (!p.expert_out || !p.permuted_row || !p.weights || !p.out)) {
    return make_error(std::string(where) +
                      "expert_out, permuted_row, weights and out must be device pointers");
  }
  return ok_status();
}

}  // namespace

Status moe_silu_mul(const MoeSiluMulParams& p, cudaStream_t stream) {
  constexpr const char* where = "cuda moe_silu_mul: ";
  if (!float_or_bf16(p.in_dtype)) return make_error(type_error(where, "in_dtype", p.in_dtype));
  if (!float_or_bf16(p.out_dtype)) return make_error(type_error(where, "out_dtype", p.out_dtype));
  if (p.rows < 0 || p.width < 0 || p.ld_in < 2 * p.width || p.ld_out < p.width) {
    return make_error(std::string(where) + "bad shape rows=" + std::to_string(p.rows) +
                      " width=" + std::to_string(p.width) + " ld_in=" + std::to_string(p.ld_in) +
                      " (≥ 2·width) ld_out=" + std::to_string(p.ld_out));
  }
  if (p.rows == 0 || p.width == 0) return ok_status();
  if (!p.gate_up || !p.out) return make_error(std::string(where) + "gate_up and out must be set");
  const bool in_f32 = p.in_dtype == DType::F32, out_f32 = p.out_dtype == DType::F32;
  if (in_f32 && out_f32) launch_silu<float, float>(p, stream);
  if (in_f32 && !out_f32) launch_silu<float, __nv_bfloat16>(p, stream);
  if (!in_f32 && out_f32) launch_silu<__nv_bfloat16, float>(p, stream);
  if (!in_f32 && !out_f32) launch_silu<__nv_bfloat16, __nv_bfloat16>(p, stream);
  return LS_CUDA_CHECK(cudaGetLastError());
}

Status moe_combine(const MoeCombineParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check_combine(p));
  if (p.tokens == 0 || p.hidden == 0) return ok_status();
  if (p.y_dtype == DType::F32) {
    combine_for_shared<float>(p, stream);
  } else {
    combine_for_shared<__nv_bfloat16>(p, stream);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
