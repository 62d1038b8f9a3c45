// The DeepSeek MoE router: picks each token's experts and their weights from the gate logits.
// Covers DeepSeek-V3's sigmoid + bias + group-limited "noaux_tc" and DeepSeek-V2's softmax variants.
#pragma once

#include <cstdint>

namespace latentserve::kernels::cpu {

enum class ScoringFunc { kSigmoid, kSoftmax };
enum class TopkMethod {
  kGreedy,              // top_k over all experts
  kGroupLimitedGreedy,  // DeepSeek-V2: group score = max score in group, keep topk_group groups
  kNoauxTc,             // DeepSeek-V3: group score = sum of top-2 biased scores in group
};

struct RouterParams {
  int64_t num_experts = 0;
  int64_t top_k = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  ScoringFunc scoring = ScoringFunc::kSigmoid;
  TopkMethod method = TopkMethod::kNoauxTc;
  bool norm_topk_prob = true;          // divide the chosen weights by their sum (no epsilon)
  float routed_scaling_factor = 1.0f;  // applied after normalisation
  // DeepSeek-V2 (Hugging Face): the scaling factor is applied only when the weights were not
  // normalised. DeepSeek-V3 applies it always.
  bool scale_only_unnormalized = false;
};

// logits: [tokens, num_experts] = x · W_gateᵀ in FP32. bias: [num_experts] or null; it only
// influences which experts are chosen (V3's e_score_correction_bias), never the weights.
// expert_ids / weights: [tokens, top_k] in descending order of the selection score.
void moe_route(const float* logits, int64_t tokens, const float* bias, const RouterParams& p,
               int32_t* expert_ids, float* weights);
void moe_route_reference(const float* logits, int64_t tokens, const float* bias,
                         const RouterParams& p, int32_t* expert_ids, float* weights);

}  // namespace latentserve::kernels::cpu
