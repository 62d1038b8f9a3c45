// BlockManager behaviour case by case: prefix reuse, the last-token rule, LRU eviction order,
// hash collisions, all-or-nothing allocation, truncation and the disabled cache.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/block_manager.h"

namespace le = latentserve::engine;
using Tokens = std::vector<int32_t>;

namespace {

le::BlockManager make(int64_t num_blocks, int64_t block_size, bool prefix_cache = true,
                      le::BlockHashFn fn = &le::hash_block_tokens) {
  auto manager = le::BlockManager::create(num_blocks, block_size, prefix_cache, fn);
  REQUIRE(manager.ok());
  return std::move(manager).value();
}

// Admits `tokens`, "computes" all of them and publishes the full blocks.
le::SequenceBlocks admit_computed(le::BlockManager& m, const Tokens& tokens, uint64_t salt = 0) {
  le::SequenceBlocks seq;
  REQUIRE(m.allocate(seq, tokens, static_cast<int64_t>(tokens.size()), salt).ok());
  REQUIRE(m.commit_full_blocks(seq, tokens, static_cast<int64_t>(tokens.size())).ok());
  return seq;
}

void require_integrity(const le::BlockManager& m, std::vector<const le::SequenceBlocks*> live) {
  const auto status = m.check_integrity(live);
  INFO((status.ok() ? std::string() : status.error().message));
  REQUIRE(status.ok());
}

std::vector<int32_t> as_vector(std::span<const int32_t> s) { return {s.begin(), s.end()}; }

// Test hooks: deliberately weak hashes, so collisions happen on purpose.
le::BlockHash hash_ignoring_parent(le::BlockHash, std::span<const int32_t> tokens) {
  return le::xxh64(tokens.data(), tokens.size_bytes(), 0);
}
le::BlockHash constant_hash(le::BlockHash, std::span<const int32_t>) { return 42; }

}  // namespace

TEST_CASE("create rejects impossible sizes", "[block_manager]") {
  CHECK_FALSE(le::BlockManager::create(0, 16, true).ok());
  CHECK_FALSE(le::BlockManager::create(8, 0, true).ok());
  CHECK_FALSE(le::BlockManager::create(int64_t{1} << 32, 16, true).ok());
  CHECK_FALSE(le::BlockManager::create(8, 16, true, nullptr).ok());
  const auto m = le::BlockManager::create(5, 3, true);
  REQUIRE(m.ok());
  CHECK(m->num_free_blocks() == 5);
  CHECK(m->check_integrity().ok());
}

TEST_CASE("allocate, append and free account every block", "[block_manager]") {
  auto m = make(10, 4);
  le::SequenceBlocks a;
  const Tokens prompt = {5, 6, 7, 8, 9, 10};
  REQUIRE(m.allocate(a, prompt, 6).ok());
  CHECK(a.block_table.size() == 2);
  CHECK(m.num_free_blocks() == 8);
  REQUIRE(m.append_slots(a, 8).ok());  // still two blocks
  CHECK(a.block_table.size() == 2);
  REQUIRE(m.append_slots(a, 9).ok());
  CHECK(a.block_table.size() == 3);
  CHECK(m.blocks_to_append(a, 17) == 2);
  require_integrity(m, {&a});
  m.free(a);
  CHECK(a.block_table.empty());
  CHECK(m.num_free_blocks() == 10);
  require_integrity(m, {});

  CHECK_FALSE(m.allocate(a, prompt, 0).ok());
  REQUIRE(m.allocate(a, prompt, 3).ok());
  CHECK_FALSE(m.allocate(a, prompt, 3).ok());               // already holds blocks
  CHECK_FALSE(m.commit_full_blocks(a, prompt, 5).ok());     // only 4 slots exist
  CHECK_FALSE(m.commit_full_blocks(a, Tokens{1}, 2).ok());  // fewer tokens than claimed
  require_integrity(m, {&a});
}

TEST_CASE("a cached prefix is reused and never covers the last token", "[block_manager]") {
  auto m = make(16, 4);
  const Tokens prompt = {1, 2, 3, 4, 5, 6, 7, 8};  // exactly two blocks
  auto a = admit_computed(m, prompt);
  CHECK(m.num_cached_blocks() == 2);

  // The whole prompt is cached, but its last token must be computed: one block matches.
  auto match = m.match_prefix(prompt);
  CHECK(match.blocks == std::vector<int32_t>{a.block_table[0]});
  CHECK(match.num_tokens == 4);
  Tokens longer = prompt;
  longer.push_back(9);
  match = m.match_prefix(longer);
  CHECK(match.blocks == std::vector<int32_t>{a.block_table[0], a.block_table[1]});
  for (size_t i = 0; i < match.blocks.size(); ++i) {
    CHECK(as_vector(m.cached_tokens(match.blocks[i])) ==
          Tokens(longer.begin() + 4 * i, longer.begin() + 4 * (i + 1)));
  }

  // Shared while the first owner is alive: reference count 2.
  le::SequenceBlocks b;
  REQUIRE(m.allocate(b, longer, 9).ok());
  CHECK(b.num_cached_tokens == 8);
  CHECK(b.block_table.size() == 3);
  CHECK(m.ref_count(a.block_table[0]) == 2);
  CHECK(m.ref_count(b.block_table[2]) == 1);
  require_integrity(m, {&a, &b});
  CHECK(m.stats().num_hit_tokens == 8);
  CHECK(m.stats().num_queried_tokens == 8 + 9);

  // A different second block shares only the first.
  match = m.match_prefix(Tokens{1, 2, 3, 4, 5, 6, 7, 0, 9});
  CHECK(match.num_tokens == 4);
  m.free(a);
  m.free(b);
  CHECK(m.num_free_blocks() == 16);
  require_integrity(m, {});
}

TEST_CASE("salts separate prefix caches", "[block_manager]") {
  auto m = make(8, 2);
  const Tokens prompt = {3, 1, 4, 1, 5};
  auto a = admit_computed(m, prompt, /*salt=*/7);
  CHECK(m.match_prefix(prompt, 0).num_tokens == 0);
  CHECK(m.match_prefix(prompt, 8).num_tokens == 0);
  CHECK(m.match_prefix(prompt, 7).num_tokens == 4);
  m.free(a);
  require_integrity(m, {});
}

TEST_CASE("eviction takes free blocks first, then the least recently used", "[block_manager]") {
  auto m = make(6, 2);
  const Tokens ta = {1, 1, 2, 2, 9};  // blocks a0 a1 cached, a2 partial
  const Tokens tb = {3, 3, 4, 4, 9};
  auto a = admit_computed(m, ta);
  auto b = admit_computed(m, tb);
  const auto ablocks = a.block_table;
  const auto bblocks = b.block_table;
  m.free(a);
  m.free(b);
  // Freed tail first: within a sequence the tail is older, and a was freed before b.
  CHECK(m.evictable_blocks() ==
        std::vector<int32_t>{ablocks[1], ablocks[0], bblocks[1], bblocks[0]});
  CHECK(m.num_free_blocks() == 6);
  require_integrity(m, {});

  // Three fresh blocks: the two never-cached partial blocks, then the oldest cached one.
  le::SequenceBlocks c;
  REQUIRE(m.allocate(c, Tokens{8, 8, 8, 8, 8}, 5).ok());
  CHECK(m.stats().num_evicted_blocks == 1);
  CHECK(m.cached_tokens(ablocks[1]).empty());
  CHECK(m.match_prefix(ta).blocks == std::vector<int32_t>{ablocks[0]});

  // Reusing a0 takes it off the LRU list; returning it makes it the newest.
  le::SequenceBlocks d;
  REQUIRE(m.allocate(d, ta, 2).ok());
  CHECK(d.block_table == std::vector<int32_t>{ablocks[0]});
  CHECK(m.evictable_blocks() == std::vector<int32_t>{bblocks[1], bblocks[0]});
  m.free(d);
  CHECK(m.evictable_blocks() == std::vector<int32_t>{bblocks[1], bblocks[0], ablocks[0]});
  REQUIRE(m.append_slots(c, 8).ok());  // evicts b1
  CHECK(m.cached_tokens(bblocks[1]).empty());
  CHECK(m.match_prefix(tb).num_tokens == 2);
  REQUIRE(m.append_slots(c, 10).ok());  // evicts b0, keeps a0
  CHECK(m.match_prefix(tb).num_tokens == 0);
  CHECK(m.match_prefix(ta).num_tokens == 2);
  require_integrity(m, {&c});
  m.free(c);
  require_integrity(m, {});
}

TEST_CASE("a failed allocation changes nothing", "[block_manager]") {
  auto m = make(4, 2);
  le::SequenceBlocks x;
  REQUIRE(m.allocate(x, Tokens{9}, 1).ok());  // holds one block throughout
  const Tokens prompt = {1, 2, 3, 4, 5};
  auto a = admit_computed(m, prompt);  // 3 blocks, 2 cached
  m.free(a);
  CHECK(m.num_free_blocks() == 3);
  CHECK(m.num_evictable_blocks() == 2);
  const auto lru = m.evictable_blocks();

  // The matched blocks leave the pool too, so the cost counts them.
  const Tokens again = {1, 2, 3, 4, 6};
  auto cost = m.allocation_cost(again, 7);
  CHECK(cost.num_cached_tokens == 4);
  CHECK(cost.num_new_blocks == 2);
  CHECK(cost.num_blocks_taken == 4);
  le::SequenceBlocks b;
  const auto failed = m.allocate(b, again, 7);
  REQUIRE_FALSE(failed.ok());
  INFO(failed.error().message);
  CHECK(failed.error().message.find("needs 4 free blocks, 3 available") != std::string::npos);
  CHECK(b.block_table.empty());
  CHECK(b.committed.empty());
  CHECK(m.evictable_blocks() == lru);
  CHECK(m.num_cached_blocks() == 2);
  CHECK(m.stats().num_admissions == 2);
  require_integrity(m, {&x});

  cost = m.allocation_cost(again, 5);
  CHECK(cost.num_blocks_taken == 3);
  REQUIRE(m.allocate(b, again, 5).ok());
  CHECK(b.num_cached_tokens == 4);
  CHECK(m.num_free_blocks() == 0);

  // Growing past the pool fails and leaves the table as it was.
  const auto table = b.block_table;
  CHECK_FALSE(m.append_slots(b, 7).ok());
  CHECK(b.block_table == table);
  require_integrity(m, {&x, &b});
  le::SequenceBlocks y;
  CHECK_FALSE(m.allocate(y, Tokens{9}, 9).ok());  // more than the whole cache
  m.free(b);
  m.free(x);
  require_integrity(m, {});
}

TEST_CASE("only computed full blocks are published", "[block_manager]") {
  auto m = make(8, 4);
  const Tokens tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  le::SequenceBlocks a;
  REQUIRE(m.allocate(a, tokens, 10).ok());
  REQUIRE(m.commit_full_blocks(a, tokens, 7).ok());  // second block not yet computed
  CHECK(a.num_committed_blocks() == 1);
  CHECK(m.num_cached_blocks() == 1);
  REQUIRE(m.commit_full_blocks(a, tokens, 10).ok());
  CHECK(a.num_committed_blocks() == 2);
  CHECK(m.num_cached_blocks() == 2);  // the partial third block is never published
  const le::BlockHash h0 = le::hash_block_tokens(0, Tokens{1, 2, 3, 4});
  CHECK(a.committed[0].hash == h0);
  CHECK(a.parent_hash() == le::hash_block_tokens(h0, Tokens{5, 6, 7, 8}));
  m.free(a);
  require_integrity(m, {});
}

TEST_CASE("truncate returns rejected slots and protects committed blocks", "[block_manager]") {
  auto m = make(8, 4);
  Tokens tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  le::SequenceBlocks a;
  REQUIRE(m.allocate(a, tokens, 9).ok());
  REQUIRE(m.commit_full_blocks(a, tokens, 8).ok());
  REQUIRE(m.append_slots(a, 14).ok());  // room for drafts
  CHECK(a.block_table.size() == 4);
  REQUIRE(m.truncate(a, 10).ok());  // two drafts accepted
  CHECK(a.block_table.size() == 3);
  CHECK(m.num_cached_blocks() == 2);

  const auto before = a.block_table;
  CHECK_FALSE(m.truncate(a, 6).ok());  // inside a committed block that others may share
  CHECK(a.block_table == before);
  REQUIRE(m.truncate(a, 4).ok());  // aligned: keep the first block
  CHECK(a.block_table.size() == 1);
  CHECK(a.num_committed_blocks() == 1);
  CHECK(m.num_cached_blocks() == 2);  // what was computed stays valid in the cache
  CHECK(m.match_prefix(tokens).num_tokens == 8);
  require_integrity(m, {&a});
  m.free(a);
  require_integrity(m, {});
}

TEST_CASE("identical prompts computed together publish one copy and keep chaining",
          "[block_manager]") {
  auto m = make(12, 2);
  const Tokens prompt = {1, 2, 3, 4, 5};
  le::SequenceBlocks a, b;
  REQUIRE(m.allocate(a, prompt, 5).ok());
  REQUIRE(m.allocate(b, prompt, 5).ok());  // nothing cached yet: both compute
  REQUIRE(m.commit_full_blocks(a, prompt, 2).ok());
  REQUIRE(m.commit_full_blocks(b, prompt, 4).ok());  // block 0 duplicate, block 1 new
  CHECK(m.num_cached_blocks() == 2);
  const auto match = m.match_prefix(prompt);
  CHECK(match.blocks == std::vector<int32_t>{a.block_table[0], b.block_table[1]});
  REQUIRE(m.commit_full_blocks(a, prompt, 4).ok());  // a's block 1 is now the duplicate
  CHECK(m.num_cached_blocks() == 2);
  require_integrity(m, {&a, &b});
  m.free(a);
  m.free(b);
  require_integrity(m, {});
}

TEST_CASE("a hash that ignores the parent cannot splice another prefix", "[block_manager]") {
  auto m = make(12, 2, true, &hash_ignoring_parent);
  auto a = admit_computed(m, Tokens{1, 2, 7, 7, 9});
  auto z = admit_computed(m, Tokens{3, 4, 5});
  // [7,7] after [3,4] hashes like [7,7] after [1,2]; the tokens agree, the prefix does not.
  const Tokens query = {3, 4, 7, 7, 9};
  const auto match = m.match_prefix(query);
  CHECK(match.blocks == std::vector<int32_t>{z.block_table[0]});
  auto b = admit_computed(m, query);
  CHECK(b.num_cached_tokens == 2);
  CHECK(m.num_cached_blocks() == 3);  // b's [7,7] collides and stays private
  CHECK(m.match_prefix(Tokens{1, 2, 7, 7, 0}).num_tokens == 4);
  require_integrity(m, {&a, &z, &b});
  m.free(a);
  m.free(z);
  m.free(b);
  require_integrity(m, {});
}

TEST_CASE("a constant hash never returns other tokens", "[block_manager]") {
  auto m = make(8, 2, true, &constant_hash);
  auto a = admit_computed(m, Tokens{1, 2, 3});
  CHECK(m.match_prefix(Tokens{5, 6, 3}).num_tokens == 0);
  auto b = admit_computed(m, Tokens{5, 6, 3});
  CHECK(b.num_cached_tokens == 0);
  CHECK(m.num_cached_blocks() == 1);  // one slot; the second content stays private
  CHECK(m.match_prefix(Tokens{1, 2, 3}).num_tokens == 2);
  require_integrity(m, {&a, &b});
  m.free(a);
  m.free(b);
  require_integrity(m, {});
}

TEST_CASE("with the prefix cache disabled nothing is shared", "[block_manager]") {
  auto m = make(8, 2, false);
  const Tokens prompt = {1, 2, 3, 4, 5};
  auto a = admit_computed(m, prompt);
  auto b = admit_computed(m, prompt);
  CHECK(a.num_committed_blocks() == 0);
  CHECK(m.num_cached_blocks() == 0);
  CHECK(m.match_prefix(prompt).num_tokens == 0);
  for (const int32_t block : a.block_table) {
    CHECK(m.ref_count(block) == 1);
    CHECK(std::find(b.block_table.begin(), b.block_table.end(), block) == b.block_table.end());
  }
  require_integrity(m, {&a, &b});
  m.free(a);
  m.free(b);
  CHECK(m.num_evictable_blocks() == 0);
  require_integrity(m, {});
}

TEST_CASE("reset_prefix_cache forgets every entry and keeps owners", "[block_manager]") {
  auto m = make(8, 2);
  const Tokens prompt = {1, 2, 3, 4, 5};
  auto a = admit_computed(m, prompt);
  auto b = admit_computed(m, Tokens{6, 6, 6});
  m.free(b);
  CHECK(m.num_evictable_blocks() == 1);
  m.reset_prefix_cache();
  CHECK(m.num_cached_blocks() == 0);
  CHECK(m.num_evictable_blocks() == 0);
  CHECK(m.num_free_blocks() == 5);
  CHECK(m.match_prefix(prompt).num_tokens == 0);
  require_integrity(m, {&a});
  m.free(a);
  CHECK(m.num_free_blocks() == 8);
  require_integrity(m, {});
}
