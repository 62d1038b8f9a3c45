// GPU MoE routing against kernels/cpu/moe_router.h's reference on fresh random logits at awkward
// sizes, for DeepSeek-V3 (sigmoid + bias + noaux_tc groups) and DeepSeek-V2 (softmax greedy and
// group_limited_greedy). The GPU's expf may differ from the CPU's by an ulp, so a token whose
// choice hinges on two scores closer than 1e-5 may differ; such tokens must stay rare and are
// recognised from the scores in double precision. Exact ties (equal logits) must match exactly.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/moe_router.h"
#include "kernels/cuda/moe_router.h"
#include "cuda_test_util.h"

namespace {

namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;
using namespace latentserve::test_cuda;

struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};

Routed route_on_gpu(const std::vector<float>& logits, int64_t ld, int64_t tokens,
                    const std::vector<float>& bias, const cpu::RouterParams& rp) {
  DeviceMemory d_logits(logits.size() * 4), d_bias(bias.size() * 4 + 4);
  DeviceMemory d_ids(size_t(tokens * rp.top_k) * 4), d_w(size_t(tokens * rp.top_k) * 4);
  to_device(d_logits, logits);
  if (!bias.empty()) to_device(d_bias, bias);
  cuda::MoeRouteParams p;
  p.logits = d_logits.as<float>();
  p.ld_logits = ld;
  p.bias = bias.empty() ? nullptr : d_bias.as<float>();
  p.expert_ids = d_ids.as<int32_t>();
  p.weights = d_w.as<float>();
  p.tokens = tokens;
  p.router = rp;
  require_ok(cuda::moe_route(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  return {from_device<int32_t>(d_ids, size_t(tokens * rp.top_k)),
          from_device<float>(d_w, size_t(tokens * rp.top_k))};
}

// True when the token's choice (groups kept, experts picked, their order) depends on two values
// closer than 1e-5, computed in double: an ulp of difference in the scores may then flip it.
bool near_tie(const float* logits, const float* bias, const cpu::RouterParams& rp) {
  const int64_t n = rp.num_experts;
  std::vector<double> s(static_cast<size_t>(n)), sel(static_cast<size_t>(n));
  double m = -INFINITY, sum = 0.0;
  for (int64_t e = 0; e < n; ++e) m = std::max(m, double(logits[e]));
  for (int64_t e = 0; e < n; ++e) {
    s[size_t(e)] = rp.scoring == cpu::ScoringFunc::kSigmoid ? 1.0 / (1.0 + std::exp(-double(logits[e])))
                                                           : std::exp(double(logits[e]) - m);
    sum += s[size_t(e)];
  }
  for (int64_t e = 0; e < n; ++e) {
    if (rp.scoring == cpu::ScoringFunc::kSoftmax) s[size_t(e)] /= sum;
    sel[size_t(e)] = s[size_t(e)] + (bias ? bias[e] : 0.0);
  }
  const auto close = [](std::vector<double> v, int64_t upto) {
    std::sort(v.begin(), v.end(), std::greater<double>());
    for (int64_t j = 0; j + 1 < int64_t(v.size()) && j < upto; ++j) {
      if (v[size_t(j)] - v[size_t(j + 1)] < 1e-5) return true;
    }
    return false;
  };
  if (rp.method != cpu::TopkMethod::kGreedy && rp.n_group > 1 && rp.topk_group < rp.n_group) {
    const int64_t size = n / rp.n_group;
    std::vector<double> gs(size_t(rp.n_group));
    for (int64_t g = 0; g < rp.n_group; ++g) {
      std::vector<double> mem(sel.begin() + g * size, sel.begin() + (g + 1) * size);
      std::sort(mem.begin(), mem.end(), std::greater<double>());
      gs[size_t(g)] = rp.method == cpu::TopkMethod::kNoauxTc && size >= 2 ? mem[0] + mem[1] : mem[0];
    }
    if (close(gs, rp.topk_group)) return true;
    std::vector<int64_t> order(size_t(rp.n_group));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return gs[size_t(a)] > gs[size_t(b)]; });
    for (int64_t j = rp.topk_group; j < rp.n_group; ++j) {
      const int64_t g = order[size_t(j)];
      for (int64_t e = g * size; e < (g == rp.n_group - 1 ? n : (g + 1) * size); ++e)
        sel[size_t(e)] = -INFINITY;
    }
  }
  // Within the chosen k (their order) and at the boundary to the next one.
  std::vector<double> finite;
  for (double v : sel)
    if (std::isfinite(v)) finite.push_back(v);
  return close(finite, rp.top_k);
}

// Runs one configuration: every token matches the reference, or differs only at a near tie
// (at most 1% of the tokens).
void check_case(int64_t tokens, const cpu::RouterParams& rp, bool with_bias, std::mt19937& rng) {
  const int64_t n = rp.num_experts, ld = n + 3;  // a padded row stride
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(size_t(tokens * ld));
  for (float& v : logits) v = normal(rng);
  std::vector<float> bias;
  if (with_bias) {
    std::normal_distribution<float> small(0.0f, 0.05f);
    for (int64_t e = 0; e < n; ++e) bias.push_back(small(rng));
  }
  std::vector<float> dense(size_t(tokens * n));
  for (int64_t t = 0; t < tokens; ++t)
    std::copy_n(&logits[size_t(t * ld)], n, &dense[size_t(t * n)]);
  std::vector<int32_t> ref_ids(size_t(tokens * rp.top_k));
  std::vector<float> ref_w(ref_ids.size());
  cpu::moe_route_reference(dense.data(), tokens, with_bias ? bias.data() : nullptr, rp,
                           ref_ids.data(), ref_w.data());
  const Routed got = route_on_gpu(logits, ld, tokens, bias, rp);

  int64_t ties = 0, bad = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    const size_t o = size_t(t * rp.top_k);
    if (!std::equal(ref_ids.begin() + o, ref_ids.begin() + o + rp.top_k, got.ids.begin() + o)) {
      const bool tie = near_tie(&dense[size_t(t * n)], with_bias ? bias.data() : nullptr, rp);
      ties += tie;
      if (!tie && bad++ < 3) UNSCOPED_INFO("token " << t << ": expert ids differ, no near tie");
      continue;
    }
    for (int64_t k = 0; k < rp.top_k; ++k) {
      const float r = ref_w[o + size_t(k)], g = got.weights[o + size_t(k)];
      if (!(std::fabs(g - r) <= 1e-5f * std::max(1.0f, std::fabs(r)))) {
        if (bad++ < 3) UNSCOPED_INFO("token " << t << " weight " << k << ": " << g << " want " << r);
      }
    }
  }
  INFO("tokens=" << tokens << " experts=" << n << " top_k=" << rp.top_k << " groups="
                 << rp.n_group << "/" << rp.topk_group << " near ties=" << ties);
  CHECK(bad == 0);
  CHECK(ties <= std::max<int64_t>(1, tokens / 100));
}

cpu::RouterParams v3(int64_t experts, int64_t top_k, int64_t n_group, int64_t topk_group) {
  cpu::RouterParams p;
  p.num_experts = experts;
  p.top_k = top_k;
  p.n_group = n_group;
  p.topk_group = topk_group;
  p.scoring = cpu::ScoringFunc::kSigmoid;
  p.method = cpu::TopkMethod::kNoauxTc;
  p.norm_topk_prob = true;
  p.routed_scaling_factor = 2.5f;
  return p;
}

}  // namespace

TEST_CASE("cuda moe_route: DeepSeek-V3 sigmoid + bias + noaux_tc groups", "[cuda][moe]") {
  std::mt19937 rng(1701);
  check_case(1, v3(16, 1, 4, 2), true, rng);
  check_case(7, v3(64, 6, 8, 3), true, rng);
  check_case(130, v3(256, 8, 8, 4), true, rng);
  check_case(1000, v3(256, 8, 8, 4), true, rng);
  check_case(1000, v3(64, 6, 1, 1), true, rng);  // no groups
  cpu::RouterParams unnormalised = v3(16, 6, 4, 4);  // topk_group = n_group: no limiting
  unnormalised.norm_topk_prob = false;
  check_case(130, unnormalised, false, rng);
  check_case(7, v3(1024, 32, 32, 1), true, rng);  // the largest the kernel takes
}

TEST_CASE("cuda moe_route: DeepSeek-V2 softmax greedy and group_limited_greedy", "[cuda][moe]") {
  std::mt19937 rng(1702);
  for (auto method : {cpu::TopkMethod::kGreedy, cpu::TopkMethod::kGroupLimitedGreedy}) {
    for (bool norm : {false, true}) {
      cpu::RouterParams p = v3(64, 6, 8, 3);
      p.scoring = cpu::ScoringFunc::kSoftmax;
      p.method = method;
      p.norm_topk_prob = norm;
      p.routed_scaling_factor = 16.0f;
      p.scale_only_unnormalized = true;
      check_case(130, p, false, rng);
      p.num_experts = 160;  // V2's expert count: 20 per group
      check_case(1000, p, false, rng);
    }
  }
}

TEST_CASE("cuda moe_route: exact ties go to the lower expert index", "[cuda][moe]") {
  std::mt19937 rng(1703);
  std::uniform_int_distribution<int> pick(0, 4);
  for (const cpu::RouterParams& rp : {v3(64, 8, 8, 4), v3(256, 8, 8, 4), v3(16, 6, 1, 1)}) {
    const int64_t tokens = 130, n = rp.num_experts;
    // Few distinct values: many ties. No bias, so that sums of two scores (group scores) are
    // equal only for equal pairs, whatever the last bit of each score.
    std::vector<float> logits(size_t(tokens * n));
    for (float& v : logits) v = 0.5f * float(pick(rng));
    std::vector<int32_t> ref_ids(size_t(tokens * rp.top_k));
    std::vector<float> ref_w(ref_ids.size());
    cpu::moe_route_reference(logits.data(), tokens, nullptr, rp, ref_ids.data(), ref_w.data());
    const Routed got = route_on_gpu(logits, n, tokens, {}, rp);
    CHECK(got.ids == ref_ids);
    for (size_t i = 0; i < ref_w.size(); ++i) CHECK(got.weights[i] == Approx(ref_w[i]).epsilon(1e-5));
  }
}

TEST_CASE("cuda moe_route: bad parameters are errors", "[cuda][moe]") {
  DeviceMemory buf(4096);
  cuda::MoeRouteParams p;
  p.logits = buf.as<float>();
  p.expert_ids = buf.as<int32_t>();
  p.weights = buf.as<float>();
  p.tokens = 2;
  p.router = v3(16, 4, 4, 2);
  p.ld_logits = 16;
  require_ok(cuda::moe_route(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  auto bad = [&](auto edit) {
    cuda::MoeRouteParams q = p;
    edit(q);
    return !cuda::moe_route(q, nullptr).ok();
  };
  CHECK(bad([](auto& q) { q.router.num_experts = 2048; }));
  CHECK(bad([](auto& q) { q.router.top_k = 17; }));
  CHECK(bad([](auto& q) { q.router.topk_group = 5; }));
  CHECK(bad([](auto& q) { q.router.n_group = 64; }));
  CHECK(bad([](auto& q) { q.ld_logits = 15; }));
  CHECK(bad([](auto& q) { q.logits = nullptr; }));
  CHECK(bad([](auto& q) { q.tokens = -1; }));
}
