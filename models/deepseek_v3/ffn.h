// The feed-forward half of a decoder layer: the dense SiLU-gated MLP, and DeepSeekMoE
// (router, routed experts over the tokens that chose them, weighted combine, shared experts).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/cpu/moe_router.h"
#include "models/config.h"
#include "models/deepseek_v3/trace.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::models::deepseek_v3 {

// out[T, hidden] = down(silu(gate(x)) * up(x)).
void mlp_forward(const MlpWeights& w, const float* x, int64_t tokens, float* out);

// Router settings of the config (V3: sigmoid + noaux_tc; V2: softmax variants).
kernels::cpu::RouterParams router_params(const ModelConfig& config);

// out[T, hidden] = Σ_k weight_k · expert_k(x) + shared(x). Records "<prefix>.expert_ids" and
// "<prefix>.expert_weights" in the trace when given.
void moe_forward(const MoeWeights& w, const kernels::cpu::RouterParams& router, const float* x,
                 int64_t tokens, float* out, ForwardTrace* trace, const std::string& prefix);

}  // namespace latentserve::models::deepseek_v3
