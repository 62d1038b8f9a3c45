// Row gather: one block per output row, threads stride over the columns.
#include "kernels/cuda/gather_rows.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <class TS, class TD>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const TS* __restrict__ src, int64_t ld_src, int64_t num_src_rows,
                  const int32_t* __restrict__ index32, const int64_t* __restrict__ index64,
                  TD* __restrict__ dst, int64_t ld_dst, int64_t cols) {
  const int64_t r = blockIdx.x;
  const int64_t s = index32 != nullptr ? int64_t(index32[r]) : index64[r];
  TD* out = dst + r * ld_dst;
  if (s < 0 || s >= num_src_rows) {
    for (int64_t j = threadIdx.x; j < cols; j += kThreads) store(out + j, 0.0f);
    return;
  }
  const TS* in = src + s * ld_src;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) store(out + j, load(in + j));
}

template <class TS, class TD>
void launch(const GatherRowsParams& p, cudaStream_t stream) {
  gather_kernel<TS, TD><<<unsigned(p.rows), kThreads, 0, stream>>>(
      static_cast<const TS*>(p.src), p.ld_src, p.num_src_rows, p.index32, p.index64,
      static_cast<TD*>(p.dst), p.ld_dst, p.cols);
}

bool float_or_bf16(DType t) { return t == DType::F32 || t == DType::BF16; }

}  // namespace

Status gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.cols < 0 || p.num_src_rows < 0) {
    return make_error("gather_rows: negative size (rows " + std::to_string(p.rows) + ", cols " +
                      std::to_string(p.cols) + ", source rows " + std::to_string(p.num_src_rows) + ")");
  }
  if (p.rows == 0 || p.cols == 0) return ok_status();
  if (p.rows > 0x7fffffff) return make_error("gather_rows: " + std::to_string(p.rows) + " rows exceed the grid");
  if (!float_or_bf16(p.src_dtype) || !float_or_bf16(p.dst_dtype)) {
    return make_error(std::string("gather_rows: dtypes ") + std::string(dtype_name(p.src_dtype)) + " -> " +
                      std::string(dtype_name(p.dst_dtype)) + " unsupported (F32 or BF16)");
  }
  if ((p.index32 == nullptr) == (p.index64 == nullptr)) {
    return make_error("gather_rows: exactly one of index32 and index64 must be set");
  }
  if (p.src == nullptr || p.dst == nullptr) return make_error("gather_rows: null source or destination");
  if (p.ld_src < p.cols || p.ld_dst < p.cols) {
    return make_error("gather_rows: row strides (" + std::to_string(p.ld_src) + ", " +
                      std::to_string(p.ld_dst) + ") below the width " + std::to_string(p.cols));
  }
  const bool sf = p.src_dtype == DType::F32, df = p.dst_dtype == DType::F32;
  if (sf && df) launch<float, float>(p, stream);
  if (sf && !df) launch<float, __nv_bfloat16>(p, stream);
  if (!sf && df) launch<__nv_bfloat16, float>(p, stream);
  if (!sf && !df) launch<__nv_bfloat16, __nv_bfloat16>(p, stream);
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
