// One Multi-head Latent Attention layer: projections, RoPE, writing the latent cache, and
// attention in the absorbed form (over the latent cache) or the naive form (K/V expanded).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/rope.h"
#include "models/batch.h"
#include "models/config.h"
#include "models/deepseek_v3/absorbed.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::models::deepseek_v3 {

enum class MlaForm { kAbsorbed, kNaive };

// What depends only on the batch, computed once per step and shared by every layer.
struct AttentionPlan {
  std::vector<kernels::cpu::AttentionSequence> sequences;
  const Batch* batch = nullptr;
};
AttentionPlan plan_attention(const Batch& batch);

// RoPE settings of the config (YaRN when rope_scaling says so).
kernels::cpu::RopeParams rope_params(const ModelConfig& config);

class MlaLayer {
 public:
  // Precomputes the absorbed per-head matrices from kv_b_proj (absorbed.h).
  MlaLayer(const ModelConfig& config, const MlaWeights& weights);

  // x: [T, hidden] (already normalized); out: [T, hidden]. Writes this step's latents to `cache`.
  void forward(const float* x, const AttentionPlan& plan, const kernels::cpu::LatentCache& cache,
               const std::vector<float>& rope_inv_freq, MlaForm form, float* out) const;

 private:
  void project_queries(const float* x, int64_t tokens, float* q) const;
  void attend_absorbed(const float* q, const AttentionPlan& plan,
                       const kernels::cpu::LatentCache& cache, float* o) const;
  void attend_naive(const float* q, const AttentionPlan& plan,
                    const kernels::cpu::LatentCache& cache, float* o) const;

  const ModelConfig* config_;
  const MlaWeights* w_;
  int64_t heads_, nope_, rope_, v_, lora_;
  float softmax_scale_;
  float cos_sin_factor_;
  AbsorbedWeights absorbed_;  // W_UK transposed and W_UV per head, from kv_b_proj
};

}  // namespace latentserve::models::deepseek_v3
