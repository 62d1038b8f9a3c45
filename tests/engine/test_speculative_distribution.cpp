// Speculative sampling keeps the main model's distribution: on a temperature-1 slice of 8 tokens
// (logit_bias masks the rest), the empirical distributions of the tokens at the drafted output
// positions, with and without speculation, pass a chi-square test of homogeneity.
#include <cmath>

#include "engine_harness.h"

using namespace latentserve;
using namespace latentserve::testing;

namespace {

constexpr int kSlice = 8;
constexpr int kSamples = 1000;  // per arm
// Chi-square critical value for 7 degrees of freedom at significance level 0.001.
constexpr double kCritical = 24.322;

struct Arm {
  std::vector<std::array<int64_t, kSlice>> counts;  // per output position
  engine::EngineStats stats;
};

Arm sample_arm(int32_t k, int64_t seed_base, const std::vector<int32_t>& slice,
               const engine::SamplingParams& base) {
  engine::EngineConfig config = quiet_config();
  config.num_kv_blocks = 1024;
  config.speculative.num_speculative_tokens = k;
  auto engine = engine::Engine::create(tiny_model(), config);
  REQUIRE(engine.ok());
  std::vector<engine::Request> requests;
  for (int i = 0; i < kSamples; ++i) {
    engine::Request r;
    r.prompt_token_ids = {17, 400, 93, 811, 5};
    r.params = base;
    r.params.seed = seed_base + i;
    requests.push_back(r);
  }
  const auto results = run_all(**engine, requests);
  check_all_blocks_free(**engine);
  Arm arm;
  arm.counts.assign(size_t(base.max_tokens), {});
  for (const auto& r : results) {
    const auto& tokens = r.completions.at(0).tokens;
    REQUIRE(tokens.size() == size_t(base.max_tokens));
    for (size_t pos = 0; pos < tokens.size(); ++pos) {
      const auto it = std::find(slice.begin(), slice.end(), tokens[pos]);
      REQUIRE(it != slice.end());
      ++arm.counts[pos][size_t(it - slice.begin())];
    }
  }
  arm.stats = (*engine)->stats();
  return arm;
}

// Pearson's chi-square statistic of a 2 x kSlice contingency table.
double chi_square(const std::array<int64_t, kSlice>& a, const std::array<int64_t, kSlice>& b) {
  double na = 0, nb = 0;
  for (int i = 0; i < kSlice; ++i) na += double(a[size_t(i)]), nb += double(b[size_t(i)]);
  double chi = 0;
  for (int i = 0; i < kSlice; ++i) {
    const double col = double(a[size_t(i)] + b[size_t(i)]);
    if (col == 0) continue;
    const double ea = col * na / (na + nb), eb = col * nb / (na + nb);
    chi += (double(a[size_t(i)]) - ea) * (double(a[size_t(i)]) - ea) / ea;
    chi += (double(b[size_t(i)]) - eb) * (double(b[size_t(i)]) - eb) / eb;
  }
  return chi;
}

void check_same_distribution(const engine::SamplingParams& base, int32_t k) {
  const std::vector<int32_t> slice = {3, 101, 230, 377, 512, 640, 777, 1000};
  engine::SamplingParams params = base;
  for (int32_t t = 0; t < 1024; ++t) {
    if (std::find(slice.begin(), slice.end(), t) == slice.end()) params.logit_bias[t] = -100.0f;
  }
  const Arm plain = sample_arm(0, 1, slice, params);
  const Arm spec = sample_arm(k, 1 + kSamples, slice, params);  // disjoint seeds: independent samples
  // The drafts were really tested both ways.
  CHECK(spec.stats.spec_accepted_tokens > 0);
  CHECK(spec.stats.spec_accepted_tokens < spec.stats.spec_drafted_tokens);
  for (size_t pos = 0; pos < plain.counts.size(); ++pos) {
    const double chi = chi_square(plain.counts[pos], spec.counts[pos]);
    INFO("output position " << pos << ": chi-square " << chi << " (critical " << kCritical << ")");
    CHECK(chi < kCritical);
  }
}

}  // namespace

TEST_CASE("speculative sampling: temperature 1 on an 8-token slice, K = 2", "[speculative][distribution]") {
  engine::SamplingParams p;
  p.temperature = 1.0f;
  p.max_tokens = 3;
  p.ignore_eos = true;
  check_same_distribution(p, 2);
}

TEST_CASE("speculative sampling: temperature 0.7, top_k 5 and a presence penalty, K = 1",
          "[speculative][distribution]") {
  engine::SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 5;
  p.presence_penalty = 0.8f;
  p.max_tokens = 3;
  p.ignore_eos = true;
  check_same_distribution(p, 1);
}
