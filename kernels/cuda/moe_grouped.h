// The routed experts of a MoE layer for few tokens (decode), as memory-bound GEMV-style kernels that
// read the routing from device memory: no per-expert row counts reach the host, so the layer can
// be captured in a CUDA graph. BF16 or FP8 block-scaled weights in MoeLayerRunner's layouts.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct MoeExpertWeights;  // moe_layer.h

// Expert rows handled by one read of a weight row: tokens routed to the same expert share it.
inline constexpr int64_t kMoeGroupedMaxTokens = 8;

struct MoeGroupedParams {
  DType dtype = DType::BF16;  // of every expert matrix: BF16 or F8_E4M3
  // [num_experts] in device memory: gate_up [2·width, hidden], down [hidden, width], FP8 scales
  // [ceil(rows/128), weight_scale_ld(cols)] (moe_layer.h's MoeExpertWeights).
  const MoeExpertWeights* experts = nullptr;
  int64_t num_experts = 0;  // ≤ kMoeMaxExperts
  int64_t hidden = 0;
  int64_t width = 0;
  const void* x = nullptr;  // [tokens, hidden] BF16, row stride ldx elements
  int64_t ldx = 0;
  int64_t tokens = 0;
  int64_t top_k = 0;
  const int32_t* offsets = nullptr;       // [num_experts + 1] from moe_permute
  const int32_t* source_token = nullptr;  // [tokens · top_k] from moe_permute
  int32_t* active = nullptr;  // scratch [num_experts + 1]: the non-empty experts, then their count
  void* h = nullptr;          // scratch [tokens · top_k, width] BF16: silu(gate)·up per permuted row
  float* y = nullptr;         // [tokens · top_k, hidden] F32: each permuted row's expert output
};

// For every permuted row r of expert e (offsets[e] ≤ r < offsets[e+1]), with t = source_token[r]:
//   h[r] = bf16(silu(g) · u), [g | u] = W_gate_up[e] · x[t];  y[r] = W_down[e] · h[r].
// The grid depends only on tokens, top_k and the shapes. Enqueues on `stream`; checks the
// parameters and the launches, not completion.
Status moe_grouped_experts(const MoeGroupedParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
