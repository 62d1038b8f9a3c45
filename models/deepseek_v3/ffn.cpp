#include "models/deepseek_v3/ffn.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

void mlp_forward(const MlpWeights& w, const float* x, int64_t tokens, float* out, bool accumulate) {
  const int64_t width = w.gate_proj.rows;
  const int64_t hidden = w.down_proj.rows;
  std::vector<float> gate(size_t(tokens * width));
  std::vector<float> up(size_t(tokens * width));
  cpu::matmul(x, tokens, w.gate_proj, gate.data());
  cpu::matmul(x, tokens, w.up_proj, up.data());
  cpu::silu_mul(gate.data(), width, up.data(), width, tokens, width, gate.data(), width);
  if (!accumulate) {
    cpu::matmul(gate.data(), tokens, w.down_proj, out);
    return;
  }
  std::vector<float> down(size_t(tokens * hidden));
  cpu::matmul(gate.data(), tokens, w.down_proj, down.data());
  for (int64_t i = 0; i < tokens * hidden; ++i) out[i] += down[size_t(i)];
}

cpu::RouterParams router_params(const ModelConfig& c) {
  cpu::RouterParams p;
  p.num_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.scoring = c.scoring_func == "sigmoid" ? cpu::ScoringFunc::kSigmoid : cpu::ScoringFunc::kSoftmax;
  if (c.topk_method == "noaux_tc") {
    p.method = cpu::TopkMethod::kNoauxTc;
  } else if (c.topk_method == "group_limited_greedy") {
    p.method = cpu::TopkMethod::kGroupLimitedGreedy;
  } else {
    p.method = cpu::TopkMethod::kGreedy;
  }
  // The official V3 reference normalises sigmoid weights whatever norm_topk_prob says; the
  // config of every released sigmoid checkpoint sets it true, so honour the config as written.
  p.norm_topk_prob = c.norm_topk_prob;
  p.routed_scaling_factor = float(c.routed_scaling_factor);
  p.scale_only_unnormalized = c.model_type == "deepseek_v2";
  return p;
}

void moe_forward(const MoeWeights& w, const cpu::RouterParams& router, const float* x,
                 int64_t tokens, float* out, ForwardTrace* trace, const std::string& prefix) {
  const int64_t hidden = w.gate.cols;
  const int64_t top_k = router.top_k;
  std::vector<float> logits(size_t(tokens * router.num_experts));
  cpu::matmul(x, tokens, w.gate, logits.data());  // [T, experts], FP32
  std::vector<int32_t> ids(size_t(tokens * top_k));
  std::vector<float> weights(size_t(tokens * top_k));
  cpu::moe_route(logits.data(), tokens, w.e_score_correction_bias.empty() ? nullptr
                                                                          : w.e_score_correction_bias.data(),
                 router, ids.data(), weights.data());
  if (trace) {
    trace->indices[prefix + ".expert_ids"] = ids;
    trace->record(prefix + ".expert_weights", weights.data(), tokens, top_k, top_k);
  }

  // Shared experts first (weight 1), routed experts accumulate on top.
  if (w.shared_experts) {
    mlp_forward(*w.shared_experts, x, tokens, out, /*accumulate=*/false);
  } else {
    std::fill(out, out + tokens * hidden, 0.0f);
  }

  // Permute: the rows of x that chose each expert, so each expert runs as one matmul.
  std::vector<std::vector<int32_t>> rows_of(size_t(router.num_experts));
  std::vector<std::vector<float>> weight_of(size_t(router.num_experts));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t k = 0; k < top_k; ++k) {
      const int32_t e = ids[size_t(t * top_k + k)];
      rows_of[size_t(e)].push_back(int32_t(t));
      weight_of[size_t(e)].push_back(weights[size_t(t * top_k + k)]);
    }
  }
  std::vector<float> xe;
  std::vector<float> ye;
  for (int64_t e = 0; e < router.num_experts; ++e) {
    const std::vector<int32_t>& rows = rows_of[size_t(e)];
    if (rows.empty()) continue;
    const int64_t n = int64_t(rows.size());
    xe.resize(size_t(n * hidden));
    ye.resize(size_t(n * hidden));
    for (int64_t i = 0; i < n; ++i) {
      std::memcpy(&xe[size_t(i * hidden)], x + int64_t(rows[size_t(i)]) * hidden,
                  size_t(hidden) * sizeof(float));
    }
    mlp_forward(w.experts[size_t(e)], xe.data(), n, ye.data(), /*accumulate=*/false);
    // Combine back in token order, scaled by the router weight.
    for (int64_t i = 0; i < n; ++i) {
      const float wt = weight_of[size_t(e)][size_t(i)];
      float* dst = out + int64_t(rows[size_t(i)]) * hidden;
      const float* src = &ye[size_t(i * hidden)];
      for (int64_t j = 0; j < hidden; ++j) dst[j] += wt * src[j];
    }
  }
}

}  // namespace latentserve::models::deepseek_v3
