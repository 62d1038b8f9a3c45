// MoE routing on the GPU: router logits → each token's top-k experts and their weights, with the
// exact rules of kernels/cpu/moe_router.h (sigmoid + bias + group-limited noaux_tc for DeepSeek-V3,
// softmax greedy / group_limited_greedy for DeepSeek-V2; ties go to the lower expert index).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/result.h"
#include "kernels/cpu/moe_router.h"

namespace latentserve::kernels::cuda {

// One warp routes one token with its scores in shared memory: these bound what fits.
inline constexpr int64_t kMoeMaxExperts = 1024;  // 32 per lane
inline constexpr int64_t kMoeMaxTopK = 32;       // one chosen expert per lane
inline constexpr int64_t kMoeMaxGroups = 32;     // one group per lane

struct MoeRouteParams {
  const float* logits = nullptr;  // [tokens, router.num_experts] F32, row stride ld_logits floats
  int64_t ld_logits = 0;          // ≥ num_experts
  const float* bias = nullptr;    // [num_experts] e_score_correction_bias, or null
  int32_t* expert_ids = nullptr;  // [tokens, top_k], in descending order of the selection score
  float* weights = nullptr;       // [tokens, top_k], from the unbiased scores
  int64_t tokens = 0;
  cpu::RouterParams router;  // num_experts ≤ 1024, top_k ≤ min(32, num_experts), n_group ≤ 32
};

// Enqueues the routing kernel on `stream`; checks the parameters and the launch, not completion.
// Scores use the GPU's expf, which may differ from the CPU's by an ulp: experts whose selection
// scores are that close may be chosen differently than on the CPU; all else is the same.
Status moe_route(const MoeRouteParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
