// Each sampling rule on small hand-computed cases, through both the fast sampler and the reference.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <vector>

#include "engine/sampler.h"
#include "engine/sampler_reference.h"

namespace eng = latentserve::engine;
using eng::SamplingParams;

namespace {

eng::SamplerState state_for(const SamplingParams& p, std::vector<int32_t> prompt = {}, std::vector<int32_t> outputs = {}) {
  eng::SamplerState s = eng::SamplerState::create(p, 0, prompt);
  for (int32_t t : outputs) s.append_output(t);
  return s;
}

// The tokens the fast sampler returns for u on a fine grid: its support, for supports whose
// probabilities all exceed 1/grid.
std::set<int32_t> fast_support(const std::vector<float>& logits, const SamplingParams& p, const eng::SamplerState& s,
                               std::vector<int32_t> eos = {}, int64_t num_output = 0) {
  std::set<int32_t> seen;
  constexpr int kGrid = 4000;
  for (int j = 0; j < kGrid; ++j) {
    const double u = (j + 0.5) / kGrid;
    seen.insert(eng::sample_with_uniform(logits.data(), int64_t(logits.size()), p, s, num_output, eos, u).token);
  }
  return seen;
}

std::set<int32_t> reference_kept(const std::vector<float>& logits, const SamplingParams& p, const eng::SamplerState& s,
                                 std::vector<int32_t> eos = {}, int64_t num_output = 0) {
  const auto d = eng::reference_distribution(logits.data(), int64_t(logits.size()), p, s, num_output, eos);
  return {d.kept.begin(), d.kept.end()};
}

int32_t greedy_token(const std::vector<float>& logits, SamplingParams p, const eng::SamplerState& s,
                     std::vector<int32_t> eos = {}, int64_t num_output = 0) {
  p.temperature = 0.0f;
  const int32_t fast = eng::sample(logits.data(), int64_t(logits.size()), p, s, num_output, eos).token;
  const int32_t ref = eng::sample_reference(logits.data(), int64_t(logits.size()), p, s, num_output, eos).token;
  REQUIRE(fast == ref);
  return fast;
}

// Logits whose softmax is exactly proportional to `weights`.
std::vector<float> logits_for(std::vector<double> weights) {
  std::vector<float> out;
  for (double w : weights) out.push_back(float(std::log(w)));
  return out;
}

}  // namespace

TEST_CASE("greedy takes the lowest id among equal maxima", "[engine][sampler]") {
  SamplingParams p;
  const auto s = state_for(p);
  CHECK(greedy_token({1.0f, 5.0f, 5.0f, 2.0f}, p, s) == 1);
  CHECK(greedy_token({-3.0f}, p, s) == 0);
  p.temperature = 1e-6f;  // below kGreedyTemperature: greedy too
  CHECK(eng::sample(std::vector<float>{0.0f, 0.1f, 0.0f}.data(), 3, p, s, 0, {}).token == 1);
}

TEST_CASE("logit_bias adds to the logit, clamped to [-100, 100]", "[engine][sampler]") {
  SamplingParams p;
  p.logit_bias = {{0, 5.0f}, {2, -250.0f}, {3, 1000.0f}};
  const auto s = state_for(p);
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, -150.0f, 0.5f};
  const auto d = eng::reference_distribution(logits.data(), 5, p, s, 0, {});
  CHECK(d.logits == std::vector<float>{6.0f, 2.0f, -97.0f, -50.0f, 0.5f});
  CHECK(greedy_token(logits, p, s) == 0);
}

TEST_CASE("min_tokens bans eos and stop_token_ids until enough tokens exist", "[engine][sampler]") {
  SamplingParams p;
  p.min_tokens = 2;
  p.stop_token_ids = {3};
  const auto s = state_for(p);
  const std::vector<float> logits = {0.0f, 5.0f, 1.0f, 4.0f};
  const std::vector<int32_t> eos = {1};
  CHECK(greedy_token(logits, p, s, eos, 0) == 2);
  CHECK(greedy_token(logits, p, s, eos, 1) == 2);
  CHECK(greedy_token(logits, p, s, eos, 2) == 1);
  // Sampling never returns a banned token either.
  p.temperature = 1.0f;
  CHECK(fast_support(logits, p, s, eos, 1) == std::set<int32_t>{0, 2});
  CHECK(reference_kept(logits, p, s, eos, 1) == std::set<int32_t>{0, 2});
  // ignore_eos lifts the ban on eos but not on stop_token_ids.
  p.ignore_eos = true;
  CHECK(greedy_token(logits, p, s, eos, 0) == 1);
  CHECK(fast_support(logits, p, s, eos, 1) == std::set<int32_t>{0, 1, 2});
}

TEST_CASE("every token banned falls back to the raw argmax", "[engine][sampler]") {
  SamplingParams p;
  p.min_tokens = 1;
  const auto s = state_for(p);
  const std::vector<float> logits = {0.25f};
  CHECK(eng::sample(logits.data(), 1, p, s, 0, std::vector<int32_t>{0}).token == 0);
  CHECK(eng::sample_reference(logits.data(), 1, p, s, 0, std::vector<int32_t>{0}).token == 0);
}

TEST_CASE("penalties change exactly the tokens they should", "[engine][sampler]") {
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  const auto s = state_for(p, /*prompt=*/{0, 1}, /*outputs=*/{2, 2, 3});
  const std::vector<float> logits = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f, -1.0f};
  const auto d = eng::reference_distribution(logits.data(), 6, p, s, 3, {});
  // repetition over prompt and output (divide positive, multiply negative); frequency and
  // presence over the output only; tokens 4 and 5 never appeared.
  CHECK(d.logits == std::vector<float>{1.0f, -4.0f, 0.5f - 1.0f - 0.25f, 0.25f - 0.5f - 0.25f, 3.0f, -1.0f});
  // The fast sampler sees the same processed logits: greedy agrees, and so does the full support.
  CHECK(greedy_token(logits, p, s, {}, 3) == 4);
  CHECK(fast_support(logits, p, s, {}, 3) == std::set<int32_t>{0, 1, 2, 3, 4, 5});
  SamplingParams only_presence;
  only_presence.presence_penalty = 10.0f;
  const auto s2 = state_for(only_presence, {4}, {0});
  CHECK(greedy_token({9.0f, 0.0f, 8.0f}, only_presence, s2, {}, 1) == 2);
  // A prompt token is not an output token: presence ignores it.
  CHECK(greedy_token({0.0f, 0.0f, 0.0f, 0.0f, 9.0f}, only_presence, s2, {}, 1) == 4);
}

TEST_CASE("temperature scales the logits before softmax", "[engine][sampler]") {
  SamplingParams p;
  p.temperature = 2.0f;
  const auto s = state_for(p);
  const std::vector<float> logits = logits_for({1, 2, 4});
  const auto probs = eng::reference_distribution(logits.data(), 3, p, s, 0, {}).probabilities(3);
  const double z = 1 + std::sqrt(2.0) + 2;
  CHECK(probs[0] == Approx(1 / z).epsilon(1e-6));
  CHECK(probs[1] == Approx(std::sqrt(2.0) / z).epsilon(1e-6));
  CHECK(probs[2] == Approx(2 / z).epsilon(1e-6));
  // The fast sampler's draw is the inverse CDF in id order: u just below / above each step.
  const double c0 = 1 / z, c1 = (1 + std::sqrt(2.0)) / z;
  CHECK(eng::sample_with_uniform(logits.data(), 3, p, s, 0, {}, c0 - 1e-4).token == 0);
  CHECK(eng::sample_with_uniform(logits.data(), 3, p, s, 0, {}, c0 + 1e-4).token == 1);
  CHECK(eng::sample_with_uniform(logits.data(), 3, p, s, 0, {}, c1 - 1e-4).token == 1);
  CHECK(eng::sample_with_uniform(logits.data(), 3, p, s, 0, {}, c1 + 1e-4).token == 2);
}

TEST_CASE("top_k keeps the k largest and everything tied with the k-th", "[engine][sampler]") {
  SamplingParams p;
  const auto s = state_for(p);
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, 0.0f};
  for (auto [k, expected] : std::vector<std::pair<int32_t, std::set<int32_t>>>{
           {1, {1, 3}}, {2, {1, 3}}, {3, {1, 2, 3}}, {4, {0, 1, 2, 3}}, {5, {0, 1, 2, 3, 4}}, {0, {0, 1, 2, 3, 4}}}) {
    p.top_k = k;
    CAPTURE(k);
    CHECK(reference_kept(logits, p, s) == expected);
    CHECK(fast_support(logits, p, s) == expected);
  }
}

TEST_CASE("top_p keeps the smallest prefix reaching p", "[engine][sampler]") {
  SamplingParams p;
  const auto s = state_for(p);
  const std::vector<float> logits = logits_for({0.15, 0.5, 0.05, 0.3});
  for (auto [top_p, expected] : std::vector<std::pair<float, std::set<int32_t>>>{
           {0.4f, {1}}, {0.75f, {1, 3}}, {0.81f, {0, 1, 3}}, {0.96f, {0, 1, 2, 3}}, {1.0f, {0, 1, 2, 3}}}) {
    p.top_p = top_p;
    CAPTURE(top_p);
    CHECK(reference_kept(logits, p, s) == expected);
    CHECK(fast_support(logits, p, s) == expected);
  }
  // Ties with the last kept token stay in.
  p.top_p = 0.3f;
  CHECK(fast_support(logits_for({0.25, 0.25, 0.25, 0.25}), p, s) == std::set<int32_t>{0, 1, 2, 3});
}

TEST_CASE("min_p keeps tokens with at least min_p times the top probability", "[engine][sampler]") {
  SamplingParams p;
  const auto s = state_for(p);
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.15, 0.05});
  for (auto [min_p, expected] : std::vector<std::pair<float, std::set<int32_t>>>{
           {0.05f, {0, 1, 2, 3}}, {0.25f, {0, 1, 2}}, {0.5f, {0, 1}}, {0.7f, {0}}, {1.0f, {0}}}) {
    p.min_p = min_p;
    CAPTURE(min_p);
    CHECK(reference_kept(logits, p, s) == expected);
    CHECK(fast_support(logits, p, s) == expected);
  }
}

TEST_CASE("min_p applies before top_p, which renormalises over what is left (vLLM order)", "[engine][sampler]") {
  SamplingParams p;
  p.min_p = 0.25f;  // drops token 3; the rest renormalise to 0.526, 0.316, 0.158
  p.top_p = 0.84f;  // 0.526 + 0.316 >= 0.84; over the full distribution 0.5 + 0.3 would not be
  const auto s = state_for(p);
  const std::vector<float> logits = logits_for({0.5, 0.3, 0.15, 0.05});
  CHECK(reference_kept(logits, p, s) == std::set<int32_t>{0, 1});
  CHECK(fast_support(logits, p, s) == std::set<int32_t>{0, 1});
  p.top_k = 1;  // and top_k narrows further
  CHECK(fast_support(logits, p, s) == std::set<int32_t>{0});
}

TEST_CASE("logprobs describe the raw distribution", "[engine][sampler]") {
  SamplingParams p;
  p.temperature = 0.0f;
  p.logit_bias = {{0, 10.0f}};
  p.logprobs = 2;
  const auto s = state_for(p);
  const std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
  const double log_norm = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  for (const auto& r : {eng::sample(logits.data(), 4, p, s, 0, {}), eng::sample_reference(logits.data(), 4, p, s, 0, {})}) {
    CHECK(r.token == 0);  // chosen because of the bias, reported without it
    CHECK(r.logprob == Approx(1.0 - log_norm).epsilon(1e-6));
    CHECK(r.rank == 4);
    REQUIRE(r.num_top_logprobs == 2);
    CHECK(r.top()[0].token == 1);
    CHECK(r.top()[1].token == 2);
    CHECK(r.top()[0].logprob == Approx(3.0 - log_norm).epsilon(1e-6));
  }
  p.logprobs.reset();
  CHECK(std::isnan(eng::sample(logits.data(), 4, p, s, 0, {}).logprob));
  p.logprobs = 0;
  const auto r = eng::sample(logits.data(), 4, p, s, 0, {});
  CHECK(r.num_top_logprobs == 0);
  CHECK(r.logprob == Approx(1.0 - log_norm).epsilon(1e-6));
}
