// Test helpers that drive the model the way an engine would, with a trivial block allocator:
// prefill (optionally in chunks), then greedy decoding one token per step.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "models/deepseek_v3/model.h"

namespace latentserve::testing {

using models::Batch;
using models::LatentCacheStorage;
using models::deepseek_v3::Model;

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

inline std::string tiny_dir() { return std::string(LATENTSERVE_SHARED_FIXTURES) + "/tiny-dsv3"; }

// Loads a model once per directory for the whole test binary.
inline const Model& cached_model(const std::string& dir) {
  static std::map<std::string, std::unique_ptr<Model>> models;
  auto it = models.find(dir);
  if (it == models.end()) {
    auto loaded = Model::load(dir);
    if (!loaded.ok()) FAIL("loading " << dir << ": " << loaded.error().message);
    it = models.emplace(dir, std::move(loaded).value()).first;
  }
  return *it->second;
}

inline int32_t argmax(const float* v, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return int32_t(best);
}

// One sequence with its own block table (blocks handed out in a scrambled order so paging is
// really exercised), grown as tokens are added.
struct TestSequence {
  std::vector<int32_t> tokens;
  std::vector<int32_t> block_table;
  int32_t cached = 0;
};

class BlockHandout {
 public:
  explicit BlockHandout(int64_t num_blocks) {
    for (int64_t i = num_blocks - 1; i >= 0; --i) free_.push_back(int32_t((i * 7919) % num_blocks));
  }
  void ensure(TestSequence& s, int64_t tokens, int64_t block_size) {
    while (int64_t(s.block_table.size()) * block_size < tokens) {
      REQUIRE(!free_.empty());
      s.block_table.push_back(free_.back());
      free_.pop_back();
    }
  }

 private:
  std::vector<int32_t> free_;
};

struct GreedyRun {
  std::vector<int32_t> new_tokens;
  std::vector<std::vector<float>> step_logits;  // logits that chose each new token
};

// Prefills `prompt` in chunks of at most `chunk` tokens, then decodes greedily.
inline GreedyRun run_greedy(const Model& model, const std::vector<int32_t>& prompt, int steps,
                            int64_t block_size = 64, int64_t chunk = 1 << 30) {
  const auto& cfg = model.config();
  const int64_t total = int64_t(prompt.size()) + steps;
  const int64_t num_blocks = (total + block_size - 1) / block_size + 3;
  auto cache = LatentCacheStorage::allocate(cfg, model.num_cache_layers(), num_blocks, block_size);
  REQUIRE(cache.ok());
  BlockHandout blocks(num_blocks);
  TestSequence seq;
  GreedyRun run;
  std::vector<int32_t> pending = prompt;
  while (int64_t(run.new_tokens.size()) < steps) {
    const int64_t n = std::min<int64_t>(int64_t(pending.size()), chunk);
    std::vector<int32_t> piece(pending.begin(), pending.begin() + n);
    pending.erase(pending.begin(), pending.begin() + n);
    blocks.ensure(seq, seq.cached + n, block_size);
    Batch batch;
    models::append_sequence(batch, piece, seq.cached, seq.block_table, block_size, pending.empty());
    auto out = model.forward(batch, *cache);
    if (!out.ok()) FAIL(out.error().message);
    seq.cached += int32_t(n);
    if (!pending.empty()) continue;
    const int32_t next = argmax(out->logits.data(), cfg.vocab_size);
    run.new_tokens.push_back(next);
    run.step_logits.push_back(out->logits);
    pending = {next};
  }
  return run;
}

// Prefills `p` in one step over a reversed block table (so paging is exercised); returns logits
// for every row (all_rows) or for the last row only.
inline std::vector<float> prefill(const Model& model, const std::vector<int32_t>& p, bool all_rows,
                                  int64_t block_size,
                                  models::deepseek_v3::ForwardTrace* trace = nullptr) {
  const int64_t blocks = (int64_t(p.size()) + block_size - 1) / block_size;
  auto cache = LatentCacheStorage::allocate(model.config(), model.num_cache_layers(), blocks + 2,
                                            block_size);
  REQUIRE(cache.ok());
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  for (int64_t b = 0; b < blocks; ++b) table[size_t(b)] = int32_t(blocks + 1 - b);
  Batch batch;
  models::append_sequence(batch, p, 0, table, block_size, !all_rows);
  if (all_rows) {
    for (int32_t r = 0; r < int32_t(p.size()); ++r) batch.logit_rows.push_back(r);
  }
  auto out = model.forward(batch, *cache, trace);
  if (!out.ok()) FAIL(out.error().message);
  return out->logits;
}

inline double max_abs_diff(const std::vector<float>& a, const nlohmann::json& golden) {
  REQUIRE(a.size() == golden.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - golden[i].get<double>()));
  return d;
}

}  // namespace latentserve::testing
