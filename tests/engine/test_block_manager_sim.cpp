// A randomized scheduler simulation against the BlockManager: sequences with repeating prompts
// are admitted, prefilled in chunks, decoded with speculative drafts, rolled back, preempted and
// freed, while a shadow of the cache records which exact token prefix produced every slot. Any
// reuse of a block computed from other tokens, any write into a shared block, or any broken
// invariant fails the test.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/block_manager.h"

namespace le = latentserve::engine;
using Tokens = std::vector<int32_t>;

namespace {

le::BlockHash hash_ignoring_parent(le::BlockHash, std::span<const int32_t> tokens) {
  return le::xxh64(tokens.data(), tokens.size_bytes(), 0);
}
le::BlockHash two_bit_hash(le::BlockHash parent, std::span<const int32_t> tokens) {
  return le::hash_block_tokens(parent, tokens) & 3;
}
le::BlockHash constant_hash(le::BlockHash, std::span<const int32_t>) { return 1; }

struct SimSequence {
  le::SequenceBlocks blocks;
  Tokens tokens;
  int64_t computed = 0;  // tokens whose latents are written and final
  int64_t max_len = 0;
  uint64_t salt = 0;
};

// What the latent in one cache slot was computed from: the salt and the whole token prefix.
struct SlotSource {
  uint64_t salt = 0;
  Tokens prefix;
  bool operator==(const SlotSource&) const = default;
};

// Everything observable about the manager, to prove failed calls change nothing.
struct Snapshot {
  std::vector<int32_t> ref_counts;
  std::vector<Tokens> cached;
  std::vector<int32_t> lru;
  int64_t free_blocks = 0;
  int64_t admissions = 0;
  int64_t evictions = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const le::BlockManager& m) {
  Snapshot s;
  for (int32_t b = 0; b < m.num_blocks(); ++b) {
    s.ref_counts.push_back(m.ref_count(b));
    const auto t = m.cached_tokens(b);
    s.cached.emplace_back(t.begin(), t.end());
  }
  s.lru = m.evictable_blocks();
  s.free_blocks = m.num_free_blocks();
  s.admissions = m.stats().num_admissions;
  s.evictions = m.stats().num_evicted_blocks;
  return s;
}

bool same_blocks(const le::SequenceBlocks& a, const le::SequenceBlocks& b) {
  if (a.committed.size() != b.committed.size()) return false;
  for (size_t i = 0; i < a.committed.size(); ++i) {
    if (a.committed[i].hash != b.committed[i].hash ||
        a.committed[i].prefix_id != b.committed[i].prefix_id) {
      return false;
    }
  }
  return a.block_table == b.block_table && a.num_cached_tokens == b.num_cached_tokens &&
         a.salt == b.salt;
}

struct Counters {
  int64_t admitted = 0, admit_failures = 0, append_failures = 0, hit_tokens = 0;
  int64_t drafts_rejected = 0, truncate_refusals = 0, finished = 0, evicted = 0;
};

class Simulator {
 public:
  Simulator(uint64_t seed, le::BlockHashFn hash_fn, bool prefix_cache) : rng_(seed) {
    const int64_t sizes[] = {1, 2, 3, 4, 5, 7, 16};
    block_size_ = sizes[uniform(0, 6)];
    num_blocks_ = uniform(6, 40);
    auto m = le::BlockManager::create(num_blocks_, block_size_, prefix_cache, hash_fn);
    REQUIRE(m.ok());
    manager_.emplace(std::move(m).value());
    slots_.resize(static_cast<size_t>(num_blocks_ * block_size_));
    for (int i = 0; i < 5; ++i) stems_.push_back(random_tokens(uniform(0, 4 * block_size_)));
  }

  void run(int num_ops) {
    for (int op = 0; op < num_ops; ++op) {
      const int64_t dice = uniform(0, 99);
      if (dice < 25) {
        admit();
      } else if (dice < 80) {
        step();
      } else if (dice < 88) {
        rollback();
      } else if (dice < 99) {
        finish_one();
      } else {
        manager_->reset_prefix_cache();
        REQUIRE(manager_->num_cached_blocks() == 0);
      }
      check();
    }
    while (!running_.empty()) finish(running_.size() - 1);
    waiting_.clear();
    check();
    REQUIRE(manager_->num_free_blocks() == num_blocks_);
    for (int32_t b = 0; b < num_blocks_; ++b) REQUIRE(manager_->ref_count(b) == 0);
  }

  const Counters& counters() const { return counters_; }
  const le::BlockManager& manager() const { return *manager_; }

 private:
  int64_t uniform(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  // A three-letter alphabet so blocks and whole prefixes repeat often.
  Tokens random_tokens(int64_t n) {
    Tokens t(static_cast<size_t>(n));
    for (auto& v : t) v = static_cast<int32_t>(uniform(0, 2));
    return t;
  }

  void check() {
    std::vector<const le::SequenceBlocks*> live;
    for (const auto& s : running_) live.push_back(&s.blocks);
    const auto status = manager_->check_integrity(live);
    INFO((status.ok() ? std::string() : status.error().message));
    REQUIRE(status.ok());
  }

  int64_t slot_of(const SimSequence& s, int64_t pos) const {
    return s.blocks.block_table[static_cast<size_t>(pos / block_size_)] * block_size_ +
           pos % block_size_;
  }

  // Writes the latent of position `pos`, computed from `prefix` (tokens 0..pos inclusive).
  void write_slot(const SimSequence& s, int64_t pos, std::span<const int32_t> prefix) {
    const int32_t block = s.blocks.block_table[static_cast<size_t>(pos / block_size_)];
    REQUIRE(manager_->ref_count(block) == 1);         // never write into a shared block
    REQUIRE(manager_->cached_tokens(block).empty());  // nor into a published one
    slots_[static_cast<size_t>(slot_of(s, pos))] =
        SlotSource{s.salt, {prefix.begin(), prefix.end()}};
  }

  void admit() {
    SimSequence s;
    if (!waiting_.empty() && uniform(0, 1) == 0) {
      s = std::move(waiting_.back());
      waiting_.pop_back();
    } else if (running_.size() + waiting_.size() < 10) {
      s.tokens = stems_[static_cast<size_t>(uniform(0, 4))];
      const Tokens suffix = random_tokens(uniform(1, 2 * block_size_));
      s.tokens.insert(s.tokens.end(), suffix.begin(), suffix.end());
      s.max_len = static_cast<int64_t>(s.tokens.size()) + uniform(1, 3 * block_size_);
      s.salt = uniform(0, 3) == 0 ? 1 : 0;
    } else {
      return;
    }
    const auto n = static_cast<int64_t>(s.tokens.size());
    const int64_t cover = uniform(1, n + 2);
    const auto cost = manager_->allocation_cost(s.tokens, cover, s.salt);
    const auto match = manager_->match_prefix(s.tokens, s.salt);
    const Snapshot before = snapshot(*manager_);
    const bool fits = manager_->can_allocate(cost.num_blocks_taken);
    const auto status = manager_->allocate(s.blocks, s.tokens, cover, s.salt);
    REQUIRE(status.ok() == fits);
    if (!status.ok()) {
      ++counters_.admit_failures;
      REQUIRE(snapshot(*manager_) == before);
      REQUIRE(s.blocks.block_table.empty());
      waiting_.push_back(std::move(s));
      return;
    }
    ++counters_.admitted;
    REQUIRE(before.free_blocks - manager_->num_free_blocks() == cost.num_blocks_taken);
    REQUIRE(s.blocks.num_cached_tokens == cost.num_cached_tokens);
    REQUIRE(s.blocks.num_cached_tokens < n);  // the last token is always computed
    REQUIRE(std::equal(match.blocks.begin(), match.blocks.end(), s.blocks.block_table.begin()));
    if (!manager_->prefix_cache_enabled()) REQUIRE(s.blocks.num_cached_tokens == 0);
    // Every reused slot was computed from exactly this salt and prefix.
    for (int64_t pos = 0; pos < s.blocks.num_cached_tokens; ++pos) {
      const auto& source = slots_[static_cast<size_t>(slot_of(s, pos))];
      REQUIRE(source.has_value());
      REQUIRE(*source == SlotSource{s.salt, Tokens(s.tokens.begin(), s.tokens.begin() + pos + 1)});
    }
    counters_.hit_tokens += s.blocks.num_cached_tokens;
    s.computed = s.blocks.num_cached_tokens;
    running_.push_back(std::move(s));
  }

  // One model step for one sequence: a prefill chunk, or the pending token plus drafts.
  void step() {
    if (running_.empty()) return;
    const size_t index = pick_running();
    SimSequence& s = running_[index];
    const auto len = static_cast<int64_t>(s.tokens.size());
    const int64_t chunk = uniform(1, std::min(len - s.computed, 2 * block_size_ + 1));
    const bool reaches_end = s.computed + chunk == len;
    const int64_t num_drafts = reaches_end ? uniform(0, 3) : 0;
    const le::SequenceBlocks table_before = s.blocks;
    const Snapshot before = snapshot(*manager_);
    const int64_t target = s.computed + chunk + num_drafts;
    const int64_t needed = manager_->blocks_to_append(s.blocks, target);
    if (!manager_->append_slots(s.blocks, target).ok()) {
      ++counters_.append_failures;
      REQUIRE_FALSE(manager_->can_allocate(needed));
      REQUIRE(snapshot(*manager_) == before);
      REQUIRE(same_blocks(s.blocks, table_before));
      preempt(index);
      return;
    }
    for (int64_t pos = s.computed; pos < s.computed + chunk; ++pos) {
      write_slot(s, pos, std::span<const int32_t>(s.tokens).first(static_cast<size_t>(pos + 1)));
    }
    Tokens with_drafts = s.tokens;
    for (int64_t j = 0; j < num_drafts; ++j) {
      with_drafts.push_back(static_cast<int32_t>(uniform(0, 2)));
      write_slot(s, len + j, with_drafts);
    }
    if (reaches_end) {
      const int64_t accepted = uniform(0, num_drafts);
      counters_.drafts_rejected += num_drafts - accepted;
      s.tokens.assign(with_drafts.begin(), with_drafts.begin() + len + accepted);
      s.tokens.push_back(static_cast<int32_t>(uniform(0, 2)));  // the token sampled after them
      s.computed = len + accepted;
    } else {
      s.computed += chunk;
    }
    const int64_t committed_before = s.blocks.num_committed_blocks();
    REQUIRE(manager_->commit_full_blocks(s.blocks, s.tokens, s.computed).ok());
    check_published(s, committed_before);
    if (num_drafts > 0) REQUIRE(manager_->truncate(s.blocks, s.computed).ok());
    if (static_cast<int64_t>(s.tokens.size()) >= s.max_len) finish(index);
  }

  // Newly committed blocks that were published hold exactly the sequence's tokens.
  void check_published(const SimSequence& s, int64_t from_block) {
    for (int64_t i = from_block; i < s.blocks.num_committed_blocks(); ++i) {
      const int32_t block = s.blocks.block_table[static_cast<size_t>(i)];
      const auto stored = manager_->cached_tokens(block);
      if (stored.empty()) continue;  // a duplicate or a collision: kept private
      REQUIRE(std::equal(stored.begin(), stored.end(), s.tokens.begin() + i * block_size_));
    }
  }

  // Rolls a sequence back to an earlier point, as if later tokens had never been generated.
  void rollback() {
    if (running_.empty()) return;
    SimSequence& s = running_[pick_running()];
    const int64_t n = uniform(0, s.computed);
    const int64_t committed_tokens = s.blocks.num_committed_blocks() * block_size_;
    const le::SequenceBlocks table_before = s.blocks;
    const Snapshot before = snapshot(*manager_);
    const auto status = manager_->truncate(s.blocks, n);
    if (n < committed_tokens && n % block_size_ != 0) {
      ++counters_.truncate_refusals;
      REQUIRE_FALSE(status.ok());
      REQUIRE(snapshot(*manager_) == before);
      REQUIRE(same_blocks(s.blocks, table_before));
      return;
    }
    REQUIRE(status.ok());
    REQUIRE(static_cast<int64_t>(s.blocks.block_table.size()) ==
            (n + block_size_ - 1) / block_size_);
    s.tokens.resize(static_cast<size_t>(n + 1));
    s.computed = n;
  }

  void preempt(size_t index) {
    SimSequence s = std::move(running_[index]);
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
    manager_->free(s.blocks);
    REQUIRE(s.blocks.block_table.empty());
    s.computed = 0;
    waiting_.push_back(std::move(s));
  }

  void finish_one() {
    if (!running_.empty()) finish(pick_running());
  }

  size_t pick_running() {
    return static_cast<size_t>(uniform(0, static_cast<int64_t>(running_.size()) - 1));
  }

  void finish(size_t index) {
    manager_->free(running_[index].blocks);
    REQUIRE(running_[index].blocks.block_table.empty());
    running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
    ++counters_.finished;
  }

  std::mt19937_64 rng_;
  int64_t block_size_ = 0;
  int64_t num_blocks_ = 0;
  std::optional<le::BlockManager> manager_;
  std::vector<std::optional<SlotSource>> slots_;
  std::vector<Tokens> stems_;
  std::vector<SimSequence> running_;
  std::vector<SimSequence> waiting_;
  Counters counters_;
};

Counters run_many(le::BlockHashFn hash_fn, bool prefix_cache, uint64_t first_seed) {
  Counters total;
  for (uint64_t seed = first_seed; seed < first_seed + 12; ++seed) {
    INFO("seed " << seed);
    Simulator sim(seed, hash_fn, prefix_cache);
    sim.run(1500);
    const auto& c = sim.counters();
    total.admitted += c.admitted;
    total.admit_failures += c.admit_failures;
    total.append_failures += c.append_failures;
    total.hit_tokens += c.hit_tokens;
    total.drafts_rejected += c.drafts_rejected;
    total.truncate_refusals += c.truncate_refusals;
    total.finished += c.finished;
    total.evicted += sim.manager().stats().num_evicted_blocks;
  }
  // The simulation must actually reach the interesting paths, or it proves nothing.
  CHECK(total.admitted > 500);
  CHECK(total.admit_failures > 0);
  CHECK(total.append_failures > 0);
  CHECK(total.drafts_rejected > 0);
  CHECK(total.finished > 100);
  return total;
}

}  // namespace

TEST_CASE("simulated scheduling keeps the block manager consistent", "[block_manager][sim]") {
  const Counters c = run_many(&le::hash_block_tokens, true, 1000);
  CHECK(c.hit_tokens > 1000);
  CHECK(c.evicted > 100);
  CHECK(c.truncate_refusals > 0);
}

TEST_CASE("simulated scheduling with colliding hashes never reuses wrong blocks",
          "[block_manager][sim]") {
  SECTION("hash ignores the parent") {
    CHECK(run_many(&hash_ignoring_parent, true, 2000).hit_tokens > 0);
  }
  SECTION("two-bit hash") { CHECK(run_many(&two_bit_hash, true, 3000).hit_tokens > 0); }
  SECTION("constant hash") { run_many(&constant_hash, true, 4000); }
}

TEST_CASE("simulated scheduling with the prefix cache disabled never shares",
          "[block_manager][sim]") {
  const Counters c = run_many(&le::hash_block_tokens, false, 5000);
  CHECK(c.hit_tokens == 0);
}
