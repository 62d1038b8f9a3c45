// The BlockManager: owns the physical block ids of the paged latent KV cache (the memory lives in
// models/latent_cache.h), hands them to sequences with reference counts, and shares full blocks
// between sequences with identical prefixes (prefix caching). Pure host bookkeeping.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "engine/block_hash.h"

namespace latentserve::engine {

// One committed full block of a sequence, as the prefix cache names it.
struct ChainLink {
  BlockHash hash = 0;      // chained content hash (the cache key)
  uint64_t prefix_id = 0;  // exact identity of the token prefix ending here, never reused
};

// The per-sequence state the BlockManager reads and writes. The engine's Sequence holds one;
// only the BlockManager changes it (a default-constructed value is "holds no blocks").
struct SequenceBlocks {
  std::vector<int32_t> block_table;  // physical block of each block_size-token chunk, in order
  int64_t num_cached_tokens = 0;     // prefix tokens found in the cache at admission
  std::vector<ChainLink> committed;  // leading full blocks whose tokens are computed and final
  uint64_t salt = 0;                 // prefix-cache namespace, fixed at admission

  int64_t num_committed_blocks() const { return static_cast<int64_t>(committed.size()); }
  // The hash the next full block chains from: the last committed block's, or the salt.
  BlockHash parent_hash() const { return committed.empty() ? salt : committed.back().hash; }
};

struct PrefixMatch {
  std::vector<int32_t> blocks;  // cached blocks holding the prefix, in order
  int64_t num_tokens = 0;       // blocks.size() * block_size
};

// What admitting a prompt would take, so a scheduler can plan before it commits.
struct AllocationCost {
  int64_t num_cached_tokens = 0;  // tokens served by the prefix cache
  int64_t num_new_blocks = 0;     // fresh blocks beyond the cached prefix
  int64_t num_blocks_taken = 0;   // blocks leaving the free pool (new + reused evictable ones)
};

struct PrefixCacheStats {
  int64_t num_admissions = 0;      // allocate() calls that succeeded
  int64_t num_queried_tokens = 0;  // prompt tokens of those admissions
  int64_t num_hit_tokens = 0;      // of which served from the cache
  int64_t num_evicted_blocks = 0;  // cached blocks reclaimed for new content
};

// Every block is in exactly one state:
//   free       ref_count 0, not in the prefix cache, on the free list;
//   evictable  ref_count 0, in the prefix cache, on the LRU list (reusable until evicted);
//   in use     ref_count > 0 (= number of block tables holding it), cached or not.
// A cached block is full, its stored tokens and chain position are exactly those it was computed
// from, and the hash map points to it. Blocks of a sequence past its committed prefix are never
// cached and never shared, so writing new tokens into them cannot corrupt another sequence.
// Every operation that can fail checks first and changes nothing on failure.
class BlockManager {
 public:
  static Result<BlockManager> create(int64_t num_blocks, int64_t block_size,
                                     bool enable_prefix_cache,
                                     BlockHashFn hash_fn = &hash_block_tokens);

  int64_t num_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  int64_t block_size() const { return block_size_; }
  bool prefix_cache_enabled() const { return enable_prefix_cache_; }
  // Blocks an allocation can take: free plus evictable.
  int64_t num_free_blocks() const { return static_cast<int64_t>(free_.size()) + num_evictable_; }
  int64_t num_evictable_blocks() const { return num_evictable_; }
  int64_t num_cached_blocks() const { return static_cast<int64_t>(cached_.size()); }
  bool can_allocate(int64_t num_blocks_taken) const {
    return num_blocks_taken <= num_free_blocks();
  }

  // The longest run of cached full blocks that starts `tokens`. It stops one token short of the
  // whole sequence: the last token is always computed, since its logits are needed.
  PrefixMatch match_prefix(std::span<const int32_t> tokens, uint64_t salt = 0) const;
  AllocationCost allocation_cost(std::span<const int32_t> prompt_tokens, int64_t tokens_to_cover,
                                 uint64_t salt = 0) const;
  // Blocks append_slots would take to cover `new_total_tokens`.
  int64_t blocks_to_append(const SequenceBlocks& seq, int64_t new_total_tokens) const;

  // Admits a sequence holding no blocks: reuses the cached prefix of `prompt_tokens`, then adds
  // fresh blocks so the table covers max(tokens_to_cover, cached tokens). All or nothing.
  Status allocate(SequenceBlocks& seq, std::span<const int32_t> prompt_tokens,
                  int64_t tokens_to_cover, uint64_t salt = 0);
  // Grows the table to cover `new_total_tokens` (decode, next prefill chunk, drafts).
  // All or nothing; a no-op when it already does.
  Status append_slots(SequenceBlocks& seq, int64_t new_total_tokens);
  // Publishes the full blocks among the first `num_computed_tokens` of `all_tokens` to the prefix
  // cache. Only pass tokens whose latents are written and final (accepted, not drafts).
  Status commit_full_blocks(SequenceBlocks& seq, std::span<const int32_t> all_tokens,
                            int64_t num_computed_tokens);
  // Returns every block, tail first, so the tail of a cached prefix is evicted before its head.
  void free(SequenceBlocks& seq);
  // Gives back the blocks past `num_tokens` (rejected drafts). Cache entries stay: whatever was
  // committed remains true. Cutting inside a committed block is refused, since that block may be
  // shared and must not be rewritten.
  Status truncate(SequenceBlocks& seq, int64_t num_tokens);
  // Forgets every cache entry (e.g. after weights change). Blocks in use stay with their owners.
  void reset_prefix_cache();

  // Checks the states above: lists, counts, hash map and stored tokens agree.
  Status check_integrity() const;
  // Also recomputes each block's reference count from the live sequences and checks the
  // per-sequence invariants (uncommitted blocks private and uncached).
  Status check_integrity(std::span<const SequenceBlocks* const> live) const;

  const PrefixCacheStats& stats() const { return stats_; }
  // Introspection for tests, debugging and metrics. Out-of-range blocks read as free/uncached.
  // Tokens a cached block was computed from (empty when not cached).
  std::span<const int32_t> cached_tokens(int32_t block) const;
  int32_t ref_count(int32_t block) const;
  // Evictable blocks in eviction order, oldest first.
  std::vector<int32_t> evictable_blocks() const;

 private:
  static constexpr int32_t kNone = -1;

  struct Block {
    int32_t ref_count = 0;
    bool cached = false;
    BlockHash hash = 0;
    BlockHash parent_hash = 0;      // kept so integrity checks can recompute `hash`
    uint64_t prefix_id = 0;         // identity of the prefix ending with this block
    uint64_t parent_prefix_id = 0;  // 0: first block of a sequence
    uint64_t salt = 0;
    std::vector<int32_t> tokens;  // block_size tokens while cached
    int32_t lru_prev = kNone;     // LRU links while evictable
    int32_t lru_next = kNone;
  };

  BlockManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_cache,
               BlockHashFn hash_fn);

  // The cached block continuing the prefix `parent_prefix_id` with `tokens`, verified
  // token by token; kNone when absent or when the hash collides with other content.
  int32_t find_cached(BlockHash hash, uint64_t parent_prefix_id, uint64_t salt,
                      std::span<const int32_t> tokens) const;
  int64_t num_blocks_for(int64_t num_tokens) const;
  int64_t num_evictable_in(std::span<const int32_t> blocks) const;
  int32_t take_fresh_block();
  void take_cached_block(int32_t block);
  void release_block(int32_t block);
  void uncache(int32_t block);
  void lru_push_newest(int32_t block);
  void lru_remove(int32_t block);
  Status check_lists() const;
  Status check_cache_entries() const;
  Status check_sequence(const SequenceBlocks& seq, size_t index,
                        std::vector<int32_t>& ref_counts) const;

  int64_t block_size_ = 0;
  bool enable_prefix_cache_ = true;
  BlockHashFn hash_fn_ = nullptr;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;  // stack; popped from the back
  int32_t lru_oldest_ = kNone;
  int32_t lru_newest_ = kNone;
  int64_t num_evictable_ = 0;
  std::unordered_map<BlockHash, int32_t> cached_;
  uint64_t next_prefix_id_ = 1;
  PrefixCacheStats stats_;
};

}  // namespace latentserve::engine
