#include "models/deepseek_v3/ffn.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/activation.h"
#include "kernels/cpu/matmul.h"

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

namespace {

// One application of a SiLU-gated MLP to `rows` rows of x, staged so that the products of many
// of them (the shared and every chosen expert) run as one list per stage (cpu::matmul_each).
struct GatedMlp {
  const MlpWeights* w;
  const float* x;
  int64_t rows;
  float* out;  // [rows, hidden]
  std::vector<float> gate, up;

  GatedMlp(const MlpWeights& weights, const float* x_rows, int64_t n, float* y)
      : w(&weights), x(x_rows), rows(n), out(y),
        gate(size_t(n * weights.gate_proj.rows)), up(size_t(n * weights.gate_proj.rows)) {}

  void gate_up_tasks(std::vector<cpu::MatmulTask>& tasks) {
    const int64_t hidden = w->gate_proj.cols, width = w->gate_proj.rows;
    tasks.push_back({x, hidden, rows, w->gate_proj, gate.data(), width});
    tasks.push_back({x, hidden, rows, w->up_proj, up.data(), width});
  }
  // gate = silu(gate) * up, then the down product's task.
  void down_task(std::vector<cpu::MatmulTask>& tasks) {
    const int64_t width = w->gate_proj.rows;
    cpu::silu_mul(gate.data(), width, up.data(), width, rows, width, gate.data(), width);
    tasks.push_back({gate.data(), width, rows, w->down_proj, out, w->down_proj.rows});
  }
};

// Runs every MLP of the list: the gate and up products of all of them, then the down products.
void run_mlps(std::vector<GatedMlp>& mlps) {
  std::vector<cpu::MatmulTask> tasks;
  for (GatedMlp& m : mlps) m.gate_up_tasks(tasks);
  cpu::matmul_each(tasks.data(), int64_t(tasks.size()));
  tasks.clear();
  for (GatedMlp& m : mlps) m.down_task(tasks);
  cpu::matmul_each(tasks.data(), int64_t(tasks.size()));
}

}  // namespace

void mlp_forward(const MlpWeights& w, const float* x, int64_t tokens, float* out) {
  std::vector<GatedMlp> mlp;
  mlp.emplace_back(w, x, tokens, out);
  run_mlps(mlp);
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
  // The shared experts (weight 1) write out; the chosen experts are added on top, expert by
  // expert and in token order, scaled by the router weight. Their products run as one list per
  // stage, a group of experts at a time: at decode sizes every chosen expert fits one group; a
  // long prefill splits into groups of about kGroupRows rows so the copies of x stay bounded.
  constexpr int64_t kGroupRows = 512;
  std::vector<GatedMlp> mlps;
  if (w.shared_experts) {
    mlps.emplace_back(*w.shared_experts, x, tokens, out);
  } else {
    std::fill(out, out + tokens * hidden, 0.0f);
  }
  std::vector<int64_t> group;  // chosen experts of this group, in expert order
  std::vector<std::vector<float>> xe, ye;
  for (int64_t e = 0, group_rows = 0; e < router.num_experts; ++e) {
    const std::vector<int32_t>& rows = rows_of[size_t(e)];
    if (!rows.empty()) {
      const int64_t n = int64_t(rows.size());
      group.push_back(e);
      group_rows += n;
      xe.emplace_back(size_t(n * hidden));
      ye.emplace_back(size_t(n * hidden));
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(&xe.back()[size_t(i * hidden)], x + int64_t(rows[size_t(i)]) * hidden,
                    size_t(hidden) * sizeof(float));
      }
    }
    if (group_rows < kGroupRows && e + 1 < router.num_experts) continue;
    mlps.reserve(mlps.size() + group.size());
    for (size_t c = 0; c < group.size(); ++c) {
      mlps.emplace_back(w.experts[size_t(group[c])], xe[c].data(), int64_t(xe[c].size()) / hidden, ye[c].data());
    }
    run_mlps(mlps);
    for (size_t c = 0; c < group.size(); ++c) {
      const std::vector<int32_t>& expert_rows = rows_of[size_t(group[c])];
      for (size_t i = 0; i < expert_rows.size(); ++i) {
        const float wt = weight_of[size_t(group[c])][i];
        float* dst = out + int64_t(expert_rows[i]) * hidden;
        const float* src = &ye[c][i * size_t(hidden)];
        for (int64_t j = 0; j < hidden; ++j) dst[j] += wt * src[j];
      }
    }
    mlps.clear();
    group.clear();
    xe.clear();
    ye.clear();
    group_rows = 0;
  }
}

}  // namespace latentserve::models::deepseek_v3
