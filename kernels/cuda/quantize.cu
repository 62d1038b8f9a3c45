// FP8 quantization kernels. Per-token groups: one warp per (token, 128-wide group); each lane
// holds 4 values, the warp reduces amax by shuffles, then every lane writes its 4 codes. The
// arithmetic is IEEE division and round-to-nearest-even, as in the CPU reference.
#include "kernels/cuda/quantize.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kPerLane = kFp8Group / 32;

__device__ __forceinline__ float load(const float* p) {
  return *p;
}
__device__ __forceinline__ float load(const __nv_bfloat16* p) {
  return __bfloat162float(*p);
}

template <class T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    quantize_group_kernel(const T* __restrict__ x, int64_t ldx, uint8_t* __restrict__ q,
                          int64_t ldq, float* __restrict__ scales, int64_t scale_ld, int64_t rows,
                          int64_t cols, int64_t groups_per_row) {
  const int64_t task = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (task >= rows * groups_per_row) return;
  const int lane = threadIdx.x % 32;
  const int64_t row = task / groups_per_row, group = task % groups_per_row;
  const int64_t c0 = group * kFp8Group;
  const T* xr = x + row * ldx;
  float v[kPerLane];
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t c = c0 + lane + 32 * i;  // lanes read consecutive elements: coalesced
    v[i] = c < cols ? load(xr + c) : 0.0f;
    amax = fmaxf(amax, fabsf(v[i]));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  }
  const float s = amax > 0.0f ? amax / kFp8E4M3Max : 1.0f;
  uint8_t* qr = q + row * ldq;
#pragma unroll
  for (int i = 0; i < kPerLane; ++i) {
    const int64_t c = c0 + lane + 32 * i;
    if (c < cols) qr[c] = uint8_t(__nv_cvt_float_to_fp8(v[i] / s, __NV_SATFINITE, __NV_E4M3));
  }
  if (lane == 0) scales[group * scale_ld + row] = s;
}

Status check(const QuantizeParams& p) {
  const std::string where = "cuda quantize_fp8_per_token_group: ";
  if (p.rows < 0 || p.cols < 0) {
    return make_error(where + "negative shape rows=" + std::to_string(p.rows) +
                      " cols=" + std::to_string(p.cols));
  }
  if (p.ldx < p.cols || p.ldq < p.cols || p.scale_ld < p.rows) {
    return make_error(
        where + "strides ldx=" + std::to_string(p.ldx) + " ldq=" + std::to_string(p.ldq) +
        " must be at least cols=" + std::to_string(p.cols) +
        " and scale_ld=" + std::to_string(p.scale_ld) + " at least rows=" + std::to_string(p.rows));
  }
  if (p.x_dtype != DType::F32 && p.x_dtype != DType::BF16) {
    return make_error(where + "x_dtype " + std::string(dtype_name(p.x_dtype)) +
                      " is not supported (F32 or BF16)");
  }
  if (p.rows > 0 && p.cols > 0 && (!p.x || !p.q || !p.scales)) {
    return make_error(where + "x, q and scales must be device pointers, got null");
  }
  return ok_status();
}

template <class T>
__global__ void convert_kernel(const T* __restrict__ x, int64_t ldx,
                               __nv_bfloat16* __restrict__ out, int64_t ldo, int64_t rows,
                               int64_t cols, const float* scales, int64_t scale_ld) {
  const int64_t total = rows * cols;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    float v;
    if constexpr (sizeof(T) == 1) {  // FP8 weight: decode, then apply its block's scale
      const __half_raw h = __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(x[r * ldx + c]), __NV_E4M3);
      v = __half2float(__half(h)) * scales[(r / kFp8Group) * scale_ld + c / kFp8Group];
    } else {
      v = x[r * ldx + c];
    }
    out[r * ldo + c] = __float2bfloat16_rn(v);
  }
}

unsigned grid_for(int64_t total) {
  const int64_t blocks = ceil_div(total, 256);
  return unsigned(blocks < 65536 ? blocks : 65536);  // grid-stride loops cover the rest
}

}  // namespace

Status quantize_fp8_per_token_group(const QuantizeParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.rows == 0 || p.cols == 0) return ok_status();
  const int64_t groups = ceil_div(p.cols, kFp8Group);
  const int64_t blocks = ceil_div(p.rows * groups, kWarpsPerBlock);
  if (blocks > 0x7fffffff) {
    return make_error("cuda quantize_fp8_per_token_group: rows=" + std::to_string(p.rows) +
                      " cols=" + std::to_string(p.cols) + " exceeds the grid limit");
  }
  const unsigned grid = unsigned(blocks), block = kWarpsPerBlock * 32;
  if (p.x_dtype == DType::F32) {
    quantize_group_kernel<float><<<grid, block, 0, stream>>>(static_cast<const float*>(p.x), p.ldx,
                                                             p.q, p.ldq, p.scales, p.scale_ld,
                                                             p.rows, p.cols, groups);
  } else {
    quantize_group_kernel<__nv_bfloat16>
        <<<grid, block, 0, stream>>>(static_cast<const __nv_bfloat16*>(p.x), p.ldx, p.q, p.ldq,
                                     p.scales, p.scale_ld, p.rows, p.cols, groups);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

Status dequantize_fp8_weight(const Fp8BlockWeight& w, void* out, cudaStream_t stream) {
  if (w.rows < 0 || w.cols < 0) {
    return make_error("cuda dequantize_fp8_weight: negative shape rows=" + std::to_string(w.rows) +
                      " cols=" + std::to_string(w.cols));
  }
  if (w.rows == 0 || w.cols == 0) return ok_status();
  if (!w.data || !w.scales || !out) {
    return make_error("cuda dequantize_fp8_weight: data, scales and out must be device pointers");
  }
  convert_kernel<uint8_t><<<grid_for(w.rows * w.cols), 256, 0, stream>>>(
      w.data, w.cols, static_cast<__nv_bfloat16*>(out), w.cols, w.rows, w.cols, w.scales,
      weight_scale_ld(w.cols));
  return LS_CUDA_CHECK(cudaGetLastError());
}

Status convert_f32_to_bf16(const float* x, int64_t ldx, int64_t rows, int64_t cols, void* out,
                           int64_t ldo, cudaStream_t stream) {
  if (rows < 0 || cols < 0 || ldx < cols || ldo < cols) {
    return make_error("cuda convert_f32_to_bf16: bad shape rows=" + std::to_string(rows) +
                      " cols=" + std::to_string(cols) + " ldx=" + std::to_string(ldx) +
                      " ldo=" + std::to_string(ldo));
  }
  if (rows == 0 || cols == 0) return ok_status();
  if (!x || !out) return make_error("cuda convert_f32_to_bf16: x and out must be device pointers");
  convert_kernel<float><<<grid_for(rows * cols), 256, 0, stream>>>(
      x, ldx, static_cast<__nv_bfloat16*>(out), ldo, rows, cols, nullptr, 0);
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
