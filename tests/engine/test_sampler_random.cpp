// The fast sampler against the reference on random logits and parameters, its distribution
// against softmax (chi-square), and the counter-based RNG.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "engine/random.h"
#include "engine/sampler.h"
#include "engine/sampler_internal.h"
#include "engine/sampler_reference.h"

namespace eng = latentserve::engine;
using eng::SamplingParams;

namespace {

SamplingParams random_params(std::mt19937& rng, int64_t vocab) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  SamplingParams p;
  const float pick = unit(rng);
  p.temperature = pick < 0.15f ? 0.0f : 0.2f + 1.6f * unit(rng);
  if (unit(rng) < 0.5f) {
    const int32_t choices[] = {-1, 0, 1, 2, 7, 40, int32_t(vocab), int32_t(vocab) + 3};
    p.top_k = choices[rng() % 8];
    if (unit(rng) < 0.3f) p.top_k = 1 + int32_t(rng() % uint32_t(std::min<int64_t>(vocab, 500)));
  }
  if (unit(rng) < 0.5f) p.top_p = 0.05f + 0.95f * unit(rng);
  if (unit(rng) < 0.4f) p.min_p = 0.3f * unit(rng) * unit(rng);
  if (unit(rng) < 0.3f) p.repetition_penalty = 0.5f + 1.5f * unit(rng);
  if (unit(rng) < 0.3f) p.frequency_penalty = -2.0f + 4.0f * unit(rng);
  if (unit(rng) < 0.3f) p.presence_penalty = -2.0f + 4.0f * unit(rng);
  for (int b = int(rng() % 4); b > 0; --b) p.logit_bias[int32_t(rng() % uint64_t(vocab))] = -120.0f + 240.0f * unit(rng);
  if (unit(rng) < 0.3f) p.min_tokens = 1 + int64_t(rng() % 4);
  if (unit(rng) < 0.3f) p.stop_token_ids = {int32_t(rng() % uint64_t(vocab))};
  if (unit(rng) < 0.4f) p.logprobs = int32_t(rng() % 21);
  p.seed = int64_t(rng());
  return p;
}

// Random logits in one of three shapes: plain normal (coarse values for small vocabularies, so
// ties are common), very wide (truncation must look far below the max), or a few peaks above a
// broad plateau (top_p must reach deep into the tail).
std::vector<float> random_logits(std::mt19937& rng, int64_t vocab) {
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> out(static_cast<size_t>(vocab));
  const float shape = unit(rng);
  if (shape < 0.6f) {
    std::normal_distribution<float> normal(0.0f, 0.5f + 3.5f * unit(rng));
    for (float& v : out) v = normal(rng);
    if (vocab < 100) {
      for (float& v : out) v = std::round(v * 2.0f) / 2.0f;
    }
  } else if (shape < 0.8f) {
    std::normal_distribution<float> normal(5.0f, 10.0f + 30.0f * unit(rng));
    for (float& v : out) v = normal(rng);
  } else {
    std::normal_distribution<float> plateau(-12.0f + 4.0f * unit(rng), 1.0f);
    for (float& v : out) v = plateau(rng);
    for (int peaks = 1 + int(rng() % 3); peaks > 0; --peaks) out[rng() % uint64_t(vocab)] = -2.0f * unit(rng);
  }
  return out;
}

// The tokens the fast path keeps before drawing (white box: its truncation alone).
std::vector<int32_t> fast_kept(const std::vector<float>& logits, const SamplingParams& p, const eng::SamplerState& state,
                               int64_t produced, std::span<const int32_t> eos) {
  const auto vocab = int64_t(logits.size());
  auto& scratch = eng::detail::thread_scratch(vocab);
  const eng::detail::LogitTransform transform(p, state, produced, eos);
  const float* w = eng::detail::processed_row(logits.data(), vocab, transform, scratch);
  const int64_t n = eng::detail::kept_tokens(w, vocab, p, eng::detail::row_max(w, vocab), scratch);
  std::vector<int32_t> kept;
  for (int64_t i = 0; i < (n < 0 ? vocab : n); ++i) {
    const int32_t id = n < 0 ? int32_t(i) : scratch.ids[size_t(i)];
    if (w[id] > -INFINITY) kept.push_back(id);
  }
  return kept;
}

void require_same_logprobs(const eng::SampleResult& fast, const eng::SampleResult& ref) {
  if (std::isnan(ref.logprob)) {
    REQUIRE(std::isnan(fast.logprob));
    return;
  }
  REQUIRE(fast.logprob == Approx(ref.logprob).margin(2e-5));
  REQUIRE(fast.rank == ref.rank);
  REQUIRE(fast.num_top_logprobs == ref.num_top_logprobs);
  for (int32_t j = 0; j < ref.num_top_logprobs; ++j) {
    REQUIRE(fast.top()[size_t(j)].token == ref.top()[size_t(j)].token);
    REQUIRE(fast.top()[size_t(j)].logprob == Approx(ref.top()[size_t(j)].logprob).margin(2e-5));
  }
}

}  // namespace

TEST_CASE("Philox4x32-10 matches Random123's known answers", "[engine][random]") {
  using A4 = std::array<uint32_t, 4>;
  CHECK(eng::philox4x32_10({0, 0, 0, 0}, {0, 0}) == A4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(eng::philox4x32_10({~0u, ~0u, ~0u, ~0u}, {~0u, ~0u}) == A4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(eng::philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        A4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("uniform draws depend on seed, sample index, position and purpose only", "[engine][random]") {
  SamplingParams p;
  p.seed = 1234;
  const auto a = eng::SamplerState::create(p, 0, {});
  const auto b = eng::SamplerState::create(p, 0, std::vector<int32_t>{5, 6});
  const auto other_index = eng::SamplerState::create(p, 1, {});
  std::set<float> distinct;
  for (uint64_t pos = 0; pos < 200; ++pos) {
    const float u = eng::uniform(a, pos, 1);
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    REQUIRE(u == eng::uniform(b, pos, 1));
    REQUIRE(eng::sampling_uniform(a, pos) == eng::sampling_uniform(b, pos));
    distinct.insert(u);
    distinct.insert(eng::uniform(a, pos, 2));
    distinct.insert(eng::uniform(other_index, pos, 1));
  }
  CHECK(distinct.size() == 600);
  // Unseeded sequences get different seeds.
  p.seed.reset();
  CHECK(eng::SamplerState::create(p, 0, {}).seed() != eng::SamplerState::create(p, 0, {}).seed());
}

TEST_CASE("fast sampler matches the reference on random rows and params", "[engine][sampler]") {
  std::mt19937 rng(Catch::rngSeed() + 11);
  const std::vector<int32_t> eos = {0, 3};
  for (int64_t vocab : {1, 7, 1000, 129280}) {
    const int trials = vocab > 100000 ? 40 : 400;
    int near_boundary = 0;
    for (int trial = 0; trial < trials; ++trial) {
      const SamplingParams p = random_params(rng, vocab);
      const std::vector<float> logits = random_logits(rng, vocab);
      std::vector<int32_t> prompt(1 + rng() % 30), outputs(rng() % 30);
      for (int32_t& t : prompt) t = int32_t(rng() % uint64_t(vocab));
      for (int32_t& t : outputs) t = int32_t(rng() % uint64_t(vocab));
      auto state = eng::SamplerState::create(p, uint32_t(rng() % 3), prompt);
      for (int32_t t : outputs) state.append_output(t);
      const int64_t produced = int64_t(outputs.size() % 5);
      CAPTURE(vocab, trial, p.temperature, p.top_k, p.top_p, p.min_p, p.min_tokens);
      const auto fast = eng::sample(logits.data(), vocab, p, state, produced, eos);
      const auto ref = eng::sample_reference(logits.data(), vocab, p, state, produced, eos);
      require_same_logprobs(fast, ref);
      const auto dist = eng::reference_distribution(logits.data(), vocab, p, state, produced, eos);
      bool boundary = false;
      if (!dist.greedy && fast_kept(logits, p, state, produced, eos) != dist.kept) {
        // The fast path's float weights may move a top_p cut lying within 1e-6 of top_p.
        bool explained = false;
        for (double dp : {-1e-6, 1e-6}) {
          SamplingParams q = p;
          q.top_p = std::min(1.0f, p.top_p * float(1 + dp));
          explained |= fast_kept(logits, p, state, produced, eos) ==
                       eng::reference_distribution(logits.data(), vocab, q, state, produced, eos).kept;
        }
        REQUIRE(explained);
        boundary = true;
      }
      if (fast.token == ref.token) {
        near_boundary += boundary ? 1 : 0;
        continue;
      }
      // Float rounding may only move a draw that lies within 1e-6 of a CDF step or a top_p cut.
      const double u = eng::sampling_uniform(state, uint64_t(produced));
      std::set<int32_t> nearby;
      for (double du : {-1e-6, 1e-6}) {
        nearby.insert(eng::sample_reference_with_uniform(logits.data(), vocab, p, state, produced, eos,
                                                         std::clamp(u + du, 0.0, 1.0 - 1e-12)).token);
        SamplingParams q = p;
        q.top_p = std::min(1.0f, p.top_p * float(1 + du));
        nearby.insert(eng::sample_reference(logits.data(), vocab, q, state, produced, eos).token);
      }
      REQUIRE(nearby.count(fast.token) == 1);
      ++near_boundary;
    }
    CAPTURE(vocab, near_boundary, trials);
    CHECK(near_boundary <= trials / 50);
  }
}

TEST_CASE("sampling 20000 times matches the reference probabilities (chi-square)", "[engine][sampler]") {
  // Fixed inputs and seed: deterministic. Critical values at significance 0.001.
  const std::vector<float> logits = {0.3f, -1.2f, 2.0f, 0.9f, -0.4f, 1.1f, -2.5f, 0.0f};
  const int64_t vocab = int64_t(logits.size());
  const std::map<int, double> chi2_critical = {{1, 10.828}, {2, 13.816}, {3, 16.266}, {4, 18.467},
                                               {5, 20.515}, {6, 22.458}, {7, 24.322}};
  struct Case {
    const char* name;
    SamplingParams params;
    std::set<int32_t> support;
  };
  std::vector<Case> cases(5);
  cases[0] = {"temperature 1", {}, {0, 1, 2, 3, 4, 5, 6, 7}};
  cases[1] = {"temperature 0.7 top_k 3", {}, {2, 3, 5}};
  cases[1].params.temperature = 0.7f;
  cases[1].params.top_k = 3;
  cases[2] = {"top_p 0.8", {}, {0, 2, 3, 5}};
  cases[2].params.top_p = 0.8f;
  cases[3] = {"min_p 0.1", {}, {0, 2, 3, 5, 7}};
  cases[3].params.min_p = 0.1f;
  cases[4] = {"temperature 1.5 with penalties", {}, {0, 1, 2, 3, 4, 5, 6, 7}};
  cases[4].params.temperature = 1.5f;
  cases[4].params.presence_penalty = 0.5f;
  cases[4].params.repetition_penalty = 1.3f;
  for (Case& c : cases) {
    CAPTURE(c.name);
    c.params.seed = 20240601;
    auto state = eng::SamplerState::create(c.params, 0, std::vector<int32_t>{2, 6});
    state.append_output(5);
    const auto d = eng::reference_distribution(logits.data(), vocab, c.params, state, 1, {});
    REQUIRE(std::set<int32_t>(d.kept.begin(), d.kept.end()) == c.support);
    const std::vector<double> probs = d.probabilities(vocab);
    constexpr int kDraws = 20000;
    std::vector<int> counts(size_t(vocab), 0);
    for (int i = 0; i < kDraws; ++i) {
      const double u = eng::random_uniform_double(*c.params.seed, 0, uint64_t(i), eng::RandomPurpose::kSample);
      ++counts[size_t(eng::sample_with_uniform(logits.data(), vocab, c.params, state, 1, {}, u).token)];
    }
    std::set<int32_t> seen;
    double chi2 = 0;
    for (int64_t t = 0; t < vocab; ++t) {
      if (counts[size_t(t)] > 0) seen.insert(int32_t(t));
      if (probs[size_t(t)] == 0) continue;
      const double expected = kDraws * probs[size_t(t)];
      chi2 += (counts[size_t(t)] - expected) * (counts[size_t(t)] - expected) / expected;
    }
    CHECK(seen == c.support);
    CHECK(chi2 < chi2_critical.at(int(c.support.size()) - 1));
  }
}

TEST_CASE("seeded tokens do not depend on the rest of the batch", "[engine][sampler]") {
  std::mt19937 rng(Catch::rngSeed() + 29);
  constexpr int64_t kVocab = 3001;
  constexpr int kSeqs = 9;
  constexpr int kSteps = 12;
  // Each sequence's logits at each step are a fixed function of (sequence, step).
  std::vector<std::vector<float>> logits(kSeqs * kSteps);
  for (auto& row : logits) row = random_logits(rng, kVocab);
  std::vector<SamplingParams> params(kSeqs);
  for (int s = 0; s < kSeqs; ++s) {
    params[size_t(s)] = random_params(rng, kVocab);
    params[size_t(s)].temperature = 0.8f;
    params[size_t(s)].seed = 77 + s % 3;  // shared seeds, told apart by sample index
  }
  // Runs the sequences in `order`, `group` rows per sample_batch call, for kSteps steps.
  auto run = [&](const std::vector<int>& order, size_t group) {
    std::vector<eng::SamplerState> states;
    for (int s = 0; s < kSeqs; ++s) states.push_back(eng::SamplerState::create(params[size_t(s)], uint32_t(s), {}));
    std::vector<std::vector<int32_t>> tokens(kSeqs);
    for (int step = 0; step < kSteps; ++step) {
      for (size_t begin = 0; begin < order.size(); begin += group) {
        const size_t end = std::min(order.size(), begin + group);
        std::vector<float> batch;
        std::vector<eng::SampleRow> rows;
        for (size_t j = begin; j < end; ++j) {
          const int s = order[j];
          const auto& row = logits[size_t(s * kSteps + step)];
          batch.insert(batch.end(), row.begin(), row.end());
          rows.push_back({&params[size_t(s)], &states[size_t(s)], step});
        }
        std::vector<eng::SampleResult> results(rows.size());
        REQUIRE(eng::sample_batch(batch.data(), kVocab, rows, std::vector<int32_t>{1}, results).ok());
        for (size_t j = begin; j < end; ++j) tokens[size_t(order[j])].push_back(results[j - begin].token);
      }
      for (int s : order) states[size_t(s)].append_output(tokens[size_t(s)].back());
    }
    return tokens;
  };
  std::vector<int> all(kSeqs);
  for (int s = 0; s < kSeqs; ++s) all[size_t(s)] = s;
  const auto together = run(all, kSeqs);
  std::vector<int> shuffled = all;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  const auto reordered = run(shuffled, 4);
  for (int s = 0; s < kSeqs; ++s) {
    CAPTURE(s);
    CHECK(reordered[size_t(s)] == together[size_t(s)]);
    CHECK(run({s}, 1)[size_t(s)] == together[size_t(s)]);
  }
}

TEST_CASE("sample_batch rejects mismatched arguments", "[engine][sampler]") {
  const std::vector<float> logits = {0.5f, 1.5f};
  SamplingParams p;
  const auto state = eng::SamplerState::create(p, 0, {});
  std::vector<eng::SampleRow> rows = {{&p, &state, 0}};
  std::vector<eng::SampleResult> results(2);
  CHECK(eng::sample_batch(logits.data(), 2, rows, {}, results).error().message ==
        "sample_batch: 1 rows but 2 result slots");
  rows[0].state = nullptr;
  results.resize(1);
  CHECK(eng::sample_batch(logits.data(), 2, rows, {}, results).error().message ==
        "sample_batch: row 0 has no params or state");
}
