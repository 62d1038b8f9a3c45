// The elementwise ends of an MoE expert on the GPU: the SiLU-gated product between the stacked
// gate/up GEMM and the down GEMM, and the weighted combine of the experts' rows back to token order
// (plus the shared experts' output). The CPU twins are kernels/cpu/activation.h's silu_mul and the
// combine loop of models/deepseek_v3/ffn.cpp.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct MoeSiluMulParams {
  // [rows, 2 * width] in_dtype (BF16 or F32), row stride ld_in elements: columns [0, width) are
  // the gate projection, [width, 2 * width) the up projection (what a [2·width, hidden] stacked
  // gate_up weight produces).
  const void* gate_up = nullptr;
  DType in_dtype = DType::BF16;
  int64_t ld_in = 0;  // ≥ 2 * width
  void* out = nullptr;  // [rows, width] out_dtype (BF16 or F32), row stride ld_out elements
  DType out_dtype = DType::BF16;
  int64_t ld_out = 0;  // ≥ width
  int64_t rows = 0;
  int64_t width = 0;
  const int32_t* row_count = nullptr;  // optional device scalar ≤ rows: later rows are skipped
};

// out = silu(gate) · up with silu(g) = g / (1 + exp(-g)), in FP32.
Status moe_silu_mul(const MoeSiluMulParams& p, cudaStream_t stream);

struct MoeCombineParams {
  const void* expert_out = nullptr;  // [permuted rows, hidden] y_dtype, row stride ld_y elements
  DType y_dtype = DType::BF16;       // BF16 or F32
  int64_t ld_y = 0;
  const int32_t* permuted_row = nullptr;  // [tokens, top_k] from moe_permute; -1 adds nothing
  const float* weights = nullptr;         // [tokens, top_k] router weights
  const void* shared = nullptr;  // [tokens, hidden] shared_dtype (BF16 or F32), or null
  DType shared_dtype = DType::F32;
  int64_t ld_shared = 0;
  void* out = nullptr;  // [tokens, hidden] out_dtype (BF16 or F32), row stride ld_out elements
  DType out_dtype = DType::F32;
  int64_t ld_out = 0;
  int64_t tokens = 0;
  int64_t top_k = 0;  // ≤ 32
  int64_t hidden = 0;
};

// out[t] = shared[t] + Σ_k weights[t, k] · expert_out[permuted_row[t, k]], summed in FP32 in the
// order k = 0, 1, ... with no atomics, so the result is the same on every run.
Status moe_combine(const MoeCombineParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
