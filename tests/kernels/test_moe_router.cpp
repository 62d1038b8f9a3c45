// MoE router: hand-computed cases for each scoring/top-k method, and fast vs reference on random
// logits quantised so that scores and group scores tie often.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/moe_router.h"

namespace cpu = latentserve::kernels::cpu;
using cpu::ScoringFunc;
using cpu::TopkMethod;

namespace {

float logit(double s) { return float(std::log(s / (1.0 - s))); }

struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Routed route(const std::vector<float>& logits, const float* bias, const cpu::RouterParams& p) {
  const int64_t tokens = int64_t(logits.size()) / p.num_experts;
  Routed r{std::vector<int32_t>(size_t(tokens * p.top_k)), std::vector<float>(size_t(tokens * p.top_k))};
  cpu::moe_route(logits.data(), tokens, bias, p, r.ids.data(), r.weights.data());
  return r;
}

}  // namespace

TEST_CASE("noaux_tc by hand: bias picks, unbiased scores weigh", "[kernels][moe_router]") {
  // Groups of two. Biased scores 0.9 0.1 | 0.6 0.55 | 0.5 0.85 | 0.5 0.45 (expert 4: 0.2 + 0.3);
  // top-2 sums 1.0, 1.15, 1.35, 0.95 -> groups 2 and 1 -> experts 5, 2, 3, 4 (expert 0 is out).
  const double s[8] = {0.9, 0.1, 0.6, 0.55, 0.2, 0.85, 0.5, 0.45};
  std::vector<float> logits;
  for (double v : s) logits.push_back(logit(v));
  const float bias[8] = {0, 0, 0, 0, 0.3f, 0, 0.0f, 0};
  cpu::RouterParams p;
  p.num_experts = 8;
  p.top_k = 4;
  p.n_group = 4;
  p.topk_group = 2;
  p.routed_scaling_factor = 1.5f;
  const auto r = route(logits, bias, p);
  CHECK(r.ids == std::vector<int32_t>{5, 2, 3, 4});
  const double sum = 0.85 + 0.6 + 0.55 + 0.2;
  const double expected[4] = {0.85, 0.6, 0.55, 0.2};
  for (int k = 0; k < 4; ++k) CHECK(r.weights[size_t(k)] == Approx(expected[k] / sum * 1.5).epsilon(1e-5));

  // Group score = max instead (V2's method): maxima 0.9, 0.6, 0.85, 0.5 -> groups 0 and 2.
  p.method = TopkMethod::kGroupLimitedGreedy;
  CHECK(route(logits, bias, p).ids == std::vector<int32_t>{0, 5, 4, 1});
  // No group limit: plain top-4 of the biased scores.
  p.method = TopkMethod::kGreedy;
  CHECK(route(logits, bias, p).ids == std::vector<int32_t>{0, 5, 2, 3});
  // Unnormalised: the raw sigmoid scores times the factor.
  p.method = TopkMethod::kNoauxTc;
  p.norm_topk_prob = false;
  const auto raw = route(logits, bias, p);
  for (int k = 0; k < 4; ++k) CHECK(raw.weights[size_t(k)] == Approx(expected[k] * 1.5).epsilon(1e-5));
}

TEST_CASE("softmax scoring by hand (DeepSeek-V2)", "[kernels][moe_router]") {
  std::vector<float> logits;
  for (double v : {1.0, 2.0, 3.0, 4.0}) logits.push_back(float(std::log(v)));  // probs .1 .2 .3 .4
  cpu::RouterParams p;
  p.num_experts = 4;
  p.top_k = 2;
  p.scoring = ScoringFunc::kSoftmax;
  p.method = TopkMethod::kGreedy;
  p.routed_scaling_factor = 2.0f;
  p.norm_topk_prob = false;
  p.scale_only_unnormalized = true;
  auto r = route(logits, nullptr, p);
  CHECK(r.ids == std::vector<int32_t>{3, 2});
  CHECK(r.weights[0] == Approx(0.8).epsilon(1e-5));
  CHECK(r.weights[1] == Approx(0.6).epsilon(1e-5));
  p.norm_topk_prob = true;  // normalised -> the V2 flag skips the factor
  r = route(logits, nullptr, p);
  CHECK(r.weights[0] == Approx(0.4 / 0.7).epsilon(1e-5));
  CHECK(r.weights[1] == Approx(0.3 / 0.7).epsilon(1e-5));
  p.scale_only_unnormalized = false;  // V3 applies it always
  r = route(logits, nullptr, p);
  CHECK(r.weights[0] == Approx(0.8 / 0.7).epsilon(1e-5));

  // Six experts in three groups, probabilities ∝ 5 1 | 4 4 | 3 3. Group max keeps group 0,
  // the top-2 sum keeps group 1 (ties between experts 2 and 3 go to the lower index).
  logits.clear();
  for (double v : {5.0, 1.0, 4.0, 4.0, 3.0, 3.0}) logits.push_back(float(std::log(v)));
  p.num_experts = 6;
  p.n_group = 3;
  p.topk_group = 1;
  p.method = TopkMethod::kGroupLimitedGreedy;
  r = route(logits, nullptr, p);
  CHECK(r.ids == std::vector<int32_t>{0, 1});
  CHECK(r.weights[0] == Approx(5.0 / 6.0 * 2.0).epsilon(1e-5));
  p.method = TopkMethod::kNoauxTc;
  CHECK(route(logits, nullptr, p).ids == std::vector<int32_t>{2, 3});
}

TEST_CASE("exact ties go to the lower expert index", "[kernels][moe_router]") {
  std::vector<float> logits(16, 0.25f);
  cpu::RouterParams p;
  p.num_experts = 16;
  p.top_k = 3;
  p.n_group = 4;
  p.topk_group = 2;
  const auto r = route(logits, nullptr, p);
  CHECK(r.ids == std::vector<int32_t>{0, 1, 2});
  for (float w : r.weights) CHECK(w == Approx(1.0 / 3.0).epsilon(1e-6));
}

TEST_CASE("moe_route matches its reference on random, tie-prone logits", "[kernels][moe_router]") {
  std::mt19937 rng(Catch::rngSeed() + 5);
  struct Shape {
    int64_t experts, top_k, n_group, topk_group;
  };
  const Shape shapes[] = {{16, 4, 4, 2}, {64, 6, 8, 3}, {256, 8, 8, 4}, {7, 2, 1, 1}};
  const ScoringFunc scorings[] = {ScoringFunc::kSigmoid, ScoringFunc::kSoftmax};
  const TopkMethod methods[] = {TopkMethod::kNoauxTc, TopkMethod::kGroupLimitedGreedy,
                                TopkMethod::kGreedy};
  for (const Shape& sh : shapes) {
    for (ScoringFunc sf : scorings) {
      for (TopkMethod m : methods) {
        for (int quantise : {0, 1}) {
          CAPTURE(sh.experts, sh.top_k, int(sf), int(m), quantise);
          cpu::RouterParams p;
          p.num_experts = sh.experts;
          p.top_k = sh.top_k;
          p.n_group = sh.n_group;
          p.topk_group = sh.topk_group;
          p.scoring = sf;
          p.method = m;
          p.routed_scaling_factor = 2.5f;
          const int64_t tokens = 37;
          std::normal_distribution<float> dist(0.0f, 2.0f);
          std::vector<float> logits(size_t(tokens * sh.experts)), bias(static_cast<size_t>(sh.experts));
          // Quantised to quarters: equal scores, and equal group sums, happen often.
          auto draw = [&] { return quantise ? std::round(dist(rng) * 4.0f) / 4.0f : dist(rng); };
          for (float& v : logits) v = draw();
          for (float& v : bias) v = quantise ? std::round(dist(rng)) / 8.0f : dist(rng) / 20.0f;
          std::vector<int32_t> ids(size_t(tokens * sh.top_k)), ref_ids(ids.size());
          std::vector<float> w(ids.size()), ref_w(ids.size());
          const float* b = sf == ScoringFunc::kSigmoid ? bias.data() : nullptr;
          cpu::moe_route(logits.data(), tokens, b, p, ids.data(), w.data());
          cpu::moe_route_reference(logits.data(), tokens, b, p, ref_ids.data(), ref_w.data());
          REQUIRE(ids == ref_ids);
          for (size_t i = 0; i < w.size(); ++i) REQUIRE(w[i] == Approx(ref_w[i]).epsilon(1e-6));
          for (int64_t t = 0; t < tokens; ++t) {  // distinct experts, weights sum to the factor
            float sum = 0.0f;
            for (int64_t k = 0; k < sh.top_k; ++k) {
              sum += w[size_t(t * sh.top_k + k)];
              for (int64_t j = 0; j < k; ++j) REQUIRE(ids[size_t(t * sh.top_k + j)] != ids[size_t(t * sh.top_k + k)]);
            }
            REQUIRE(sum == Approx(2.5).epsilon(1e-5));
          }
        }
      }
    }
  }
}
