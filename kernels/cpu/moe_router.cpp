// MoE routing. Scores and weights use the same float32 formulas in the fast and the reference
// version, so both choose identical experts; ties go to the lower expert index in both.
#include "kernels/cpu/moe_router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace latentserve::kernels::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// scores = sigmoid(logits) or softmax(logits), in float32 as torch computes them.
void score_experts(const float* logits, int64_t n, ScoringFunc f, float* scores) {
  if (f == ScoringFunc::kSigmoid) {
    for (int64_t e = 0; e < n; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    return;
  }
  float m = kNegInf;
  for (int64_t e = 0; e < n; ++e) m = std::max(m, logits[e]);
  float sum = 0.0f;
  for (int64_t e = 0; e < n; ++e) {
    scores[e] = std::exp(logits[e] - m);
    sum += scores[e];
  }
  for (int64_t e = 0; e < n; ++e) scores[e] /= sum;
}

bool uses_groups(const RouterParams& p) {
  return p.method != TopkMethod::kGreedy && p.n_group > 1 && p.topk_group < p.n_group;
}

// Weights of the chosen experts from their unbiased scores, in selection order.
void finish_weights(const float* scores, const int32_t* ids, const RouterParams& p, float* w) {
  float sum = 0.0f;
  for (int64_t k = 0; k < p.top_k; ++k) {
    w[k] = scores[ids[k]];
    sum += w[k];
  }
  const bool normalise = p.norm_topk_prob;
  const bool scale = !(normalise && p.scale_only_unnormalized);
  for (int64_t k = 0; k < p.top_k; ++k) {
    if (normalise) w[k] = w[k] / sum;
    if (scale) w[k] = w[k] * p.routed_scaling_factor;
  }
}

// Inserts (value, index) into the descending list best[0..count) of capacity cap; equal values
// keep the earlier (lower) index first because indices arrive in increasing order.
template <class Index>
void insert_top(float value, Index index, float* best, Index* best_idx, int64_t& count,
                int64_t cap) {
  if (count == cap && !(value > best[cap - 1])) return;
  int64_t pos = count < cap ? count++ : cap - 1;
  while (pos > 0 && value > best[pos - 1]) {
    best[pos] = best[pos - 1];
    best_idx[pos] = best_idx[pos - 1];
    --pos;
  }
  best[pos] = value;
  best_idx[pos] = index;
}

// Group score: max (V2 group_limited_greedy) or sum of the top two (V3 noaux_tc).
float group_score(const float* sel, int64_t size, TopkMethod method) {
  float best[2] = {kNegInf, kNegInf};
  int32_t idx[2];
  int64_t count = 0;
  const int64_t keep = method == TopkMethod::kNoauxTc ? 2 : 1;
  for (int64_t j = 0; j < size; ++j) insert_top(sel[j], int32_t(j), best, idx, count, keep);
  float s = 0.0f;
  for (int64_t j = 0; j < count; ++j) s += best[j];
  return s;
}

void route_token(const float* logits, const float* bias, const RouterParams& p, float* scores,
                 float* sel, int32_t* ids, float* weights) {
  const int64_t n = p.num_experts;
  score_experts(logits, n, p.scoring, scores);
  for (int64_t e = 0; e < n; ++e) sel[e] = bias ? scores[e] + bias[e] : scores[e];

  if (uses_groups(p)) {
    const int64_t size = n / p.n_group;
    std::vector<float> gbest(size_t(p.topk_group));
    std::vector<int32_t> gidx(size_t(p.topk_group));
    int64_t count = 0;
    for (int64_t g = 0; g < p.n_group; ++g) {
      const float gs = group_score(sel + g * size, size, p.method);
      insert_top(gs, int32_t(g), gbest.data(), gidx.data(), count, p.topk_group);
    }
    std::vector<char> keep(size_t(p.n_group), 0);
    for (int64_t j = 0; j < count; ++j) keep[size_t(gidx[size_t(j)])] = 1;
    for (int64_t e = 0; e < n; ++e) {
      if (!keep[size_t(std::min(e / size, p.n_group - 1))]) sel[e] = kNegInf;
    }
  }

  std::vector<float> best(size_t(p.top_k));
  int64_t count = 0;
  for (int64_t e = 0; e < n; ++e) insert_top(sel[e], int32_t(e), best.data(), ids, count, p.top_k);
  finish_weights(scores, ids, p, weights);
}

}  // namespace

void moe_route(const float* logits, int64_t tokens, const float* bias, const RouterParams& p,
               int32_t* expert_ids, float* weights) {
#pragma omp parallel if (tokens >= 16)
  {
    std::vector<float> scores(size_t(p.num_experts)), sel(size_t(p.num_experts));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
      route_token(logits + t * p.num_experts, bias, p, scores.data(), sel.data(),
                  expert_ids + t * p.top_k, weights + t * p.top_k);
    }
  }
}

void moe_route_reference(const float* logits, int64_t tokens, const float* bias,
                         const RouterParams& p, int32_t* expert_ids, float* weights) {
  const int64_t n = p.num_experts;
  std::vector<float> scores(static_cast<size_t>(n)), sel(static_cast<size_t>(n));
  for (int64_t t = 0; t < tokens; ++t) {
    score_experts(logits + t * n, n, p.scoring, scores.data());
    for (int64_t e = 0; e < n; ++e) sel[size_t(e)] = scores[size_t(e)] + (bias ? bias[e] : 0.0f);

    if (uses_groups(p)) {
      const int64_t size = n / p.n_group;
      std::vector<float> gscore(size_t(p.n_group));
      for (int64_t g = 0; g < p.n_group; ++g) {
        std::vector<float> members(sel.begin() + g * size, sel.begin() + (g + 1) * size);
        std::sort(members.begin(), members.end(), std::greater<float>());
        gscore[size_t(g)] = p.method == TopkMethod::kNoauxTc && size >= 2 ? members[0] + members[1]
                                                                           : members[0];
      }
      std::vector<int64_t> order(size_t(p.n_group));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return gscore[size_t(a)] > gscore[size_t(b)]; });
      for (int64_t j = p.topk_group; j < p.n_group; ++j) {
        const int64_t g = order[size_t(j)];
        const int64_t end = g == p.n_group - 1 ? n : (g + 1) * size;
        for (int64_t e = g * size; e < end; ++e) sel[size_t(e)] = kNegInf;
      }
    }

    std::vector<int32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return sel[size_t(a)] > sel[size_t(b)]; });
    std::copy(order.begin(), order.begin() + p.top_k, expert_ids + t * p.top_k);
    finish_weights(scores.data(), expert_ids + t * p.top_k, p, weights + t * p.top_k);
  }
}

}  // namespace latentserve::kernels::cpu
