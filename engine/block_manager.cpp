#include "engine/block_manager.h"

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

namespace latentserve::engine {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

Error out_of_blocks(const char* where, int64_t needed, int64_t available) {
  return make_error(std::string("BlockManager::") + where + ": needs " + str(needed) +
                    " free blocks, " + str(available) + " available");
}

}  // namespace

Result<BlockManager> BlockManager::create(int64_t num_blocks, int64_t block_size,
                                          bool enable_prefix_cache, BlockHashFn hash_fn) {
  if (num_blocks <= 0 || num_blocks > std::numeric_limits<int32_t>::max()) {
    return make_error("BlockManager: num_blocks must be in [1, 2^31), got " + str(num_blocks));
  }
  if (block_size <= 0 || block_size > (int64_t{1} << 20)) {
    return make_error("BlockManager: block_size must be in [1, 2^20], got " + str(block_size));
  }
  if (hash_fn == nullptr) return make_error("BlockManager: hash function is null");
  return BlockManager(num_blocks, block_size, enable_prefix_cache, hash_fn);
}

BlockManager::BlockManager(int64_t num_blocks, int64_t block_size, bool enable_prefix_cache,
                           BlockHashFn hash_fn)
    : block_size_(block_size),
      enable_prefix_cache_(enable_prefix_cache),
      hash_fn_(hash_fn),
      blocks_(static_cast<size_t>(num_blocks)) {
  // Popped from the back, so block 0 is handed out first.
  free_.reserve(blocks_.size());
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int64_t BlockManager::num_blocks_for(int64_t num_tokens) const {
  return (num_tokens + block_size_ - 1) / block_size_;
}

int32_t BlockManager::find_cached(BlockHash hash, uint64_t parent_prefix_id, uint64_t salt,
                                  std::span<const int32_t> tokens) const {
  const auto it = cached_.find(hash);
  if (it == cached_.end()) return kNone;
  const Block& b = blocks_[static_cast<size_t>(it->second)];
  // The hash only finds a candidate; identity is the exact parent prefix plus the exact tokens.
  if (b.parent_prefix_id != parent_prefix_id || b.salt != salt) return kNone;
  if (!std::equal(tokens.begin(), tokens.end(), b.tokens.begin(), b.tokens.end())) return kNone;
  return it->second;
}

PrefixMatch BlockManager::match_prefix(std::span<const int32_t> tokens, uint64_t salt) const {
  PrefixMatch match;
  if (!enable_prefix_cache_ || tokens.empty()) return match;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t max_blocks = (n - 1) / block_size_;
  BlockHash parent_hash = salt;
  uint64_t parent_id = 0;
  for (int64_t i = 0; i < max_blocks; ++i) {
    const auto chunk =
        tokens.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_));
    const BlockHash hash = hash_fn_(parent_hash, chunk);
    const int32_t block = find_cached(hash, parent_id, salt, chunk);
    if (block == kNone) break;
    match.blocks.push_back(block);
    parent_hash = hash;
    parent_id = blocks_[static_cast<size_t>(block)].prefix_id;
  }
  match.num_tokens = static_cast<int64_t>(match.blocks.size()) * block_size_;
  return match;
}

int64_t BlockManager::num_evictable_in(std::span<const int32_t> blocks) const {
  return std::count_if(blocks.begin(), blocks.end(), [this](int32_t b) {
    return blocks_[static_cast<size_t>(b)].ref_count == 0;
  });
}

AllocationCost BlockManager::allocation_cost(std::span<const int32_t> prompt_tokens,
                                             int64_t tokens_to_cover, uint64_t salt) const {
  const PrefixMatch match = match_prefix(prompt_tokens, salt);
  AllocationCost cost;
  cost.num_cached_tokens = match.num_tokens;
  const int64_t cover = std::max(tokens_to_cover, match.num_tokens);
  cost.num_new_blocks = num_blocks_for(cover) - static_cast<int64_t>(match.blocks.size());
  cost.num_blocks_taken = cost.num_new_blocks + num_evictable_in(match.blocks);
  return cost;
}

int64_t BlockManager::blocks_to_append(const SequenceBlocks& seq, int64_t new_total_tokens) const {
  return std::max<int64_t>(
      0, num_blocks_for(new_total_tokens) - static_cast<int64_t>(seq.block_table.size()));
}

Status BlockManager::allocate(SequenceBlocks& seq, std::span<const int32_t> prompt_tokens,
                              int64_t tokens_to_cover, uint64_t salt) {
  if (!seq.block_table.empty() || !seq.committed.empty()) {
    return make_error("BlockManager::allocate: sequence already holds " +
                      str(static_cast<int64_t>(seq.block_table.size())) + " blocks");
  }
  if (tokens_to_cover <= 0 || tokens_to_cover > num_blocks() * block_size_) {
    return make_error("BlockManager::allocate: tokens_to_cover must be in [1, " +
                      str(num_blocks() * block_size_) + "], got " + str(tokens_to_cover));
  }
  const PrefixMatch match = match_prefix(prompt_tokens, salt);
  const int64_t cover = std::max(tokens_to_cover, match.num_tokens);
  const int64_t num_new = num_blocks_for(cover) - static_cast<int64_t>(match.blocks.size());
  const int64_t taken = num_new + num_evictable_in(match.blocks);
  if (!can_allocate(taken)) return out_of_blocks("allocate", taken, num_free_blocks());

  // Reuse the cached prefix before taking fresh blocks, so eviction cannot reclaim it.
  seq.salt = salt;
  seq.num_cached_tokens = match.num_tokens;
  seq.block_table.reserve(static_cast<size_t>(num_blocks_for(cover)));
  for (const int32_t b : match.blocks) {
    take_cached_block(b);
    seq.block_table.push_back(b);
    const Block& block = blocks_[static_cast<size_t>(b)];
    seq.committed.push_back(ChainLink{block.hash, block.prefix_id});
  }
  for (int64_t i = 0; i < num_new; ++i) seq.block_table.push_back(take_fresh_block());
  ++stats_.num_admissions;
  stats_.num_queried_tokens += static_cast<int64_t>(prompt_tokens.size());
  stats_.num_hit_tokens += match.num_tokens;
  return ok_status();
}

Status BlockManager::append_slots(SequenceBlocks& seq, int64_t new_total_tokens) {
  if (new_total_tokens < 0 || new_total_tokens > num_blocks() * block_size_) {
    return make_error("BlockManager::append_slots: new_total_tokens must be in [0, " +
                      str(num_blocks() * block_size_) + "], got " + str(new_total_tokens));
  }
  const int64_t needed = blocks_to_append(seq, new_total_tokens);
  if (!can_allocate(needed)) return out_of_blocks("append_slots", needed, num_free_blocks());
  for (int64_t i = 0; i < needed; ++i) seq.block_table.push_back(take_fresh_block());
  return ok_status();
}

Status BlockManager::commit_full_blocks(SequenceBlocks& seq, std::span<const int32_t> all_tokens,
                                        int64_t num_computed_tokens) {
  const int64_t capacity = static_cast<int64_t>(seq.block_table.size()) * block_size_;
  if (num_computed_tokens < 0 || num_computed_tokens > static_cast<int64_t>(all_tokens.size()) ||
      num_computed_tokens > capacity) {
    return make_error("BlockManager::commit_full_blocks: num_computed_tokens " +
                      str(num_computed_tokens) + " outside [0, min(" +
                      str(static_cast<int64_t>(all_tokens.size())) + " tokens, " + str(capacity) +
                      " slots)]");
  }
  if (!enable_prefix_cache_) return ok_status();
  const int64_t num_full = num_computed_tokens / block_size_;
  for (int64_t i = seq.num_committed_blocks(); i < num_full; ++i) {
    const auto chunk =
        all_tokens.subspan(static_cast<size_t>(i * block_size_), static_cast<size_t>(block_size_));
    const BlockHash parent_hash = seq.parent_hash();
    const uint64_t parent_id = seq.committed.empty() ? 0 : seq.committed.back().prefix_id;
    const BlockHash hash = hash_fn_(parent_hash, chunk);
    const int32_t existing = find_cached(hash, parent_id, seq.salt, chunk);
    if (existing != kNone) {
      // Same content computed twice (e.g. two identical prompts in one step): keep the first
      // entry and chain from it, so later blocks of either copy are found.
      seq.committed.push_back(ChainLink{hash, blocks_[static_cast<size_t>(existing)].prefix_id});
      continue;
    }
    const uint64_t prefix_id = next_prefix_id_++;
    seq.committed.push_back(ChainLink{hash, prefix_id});
    // A different prefix already holds this hash (a collision): this block stays private.
    if (cached_.count(hash) != 0) continue;
    const int32_t b = seq.block_table[static_cast<size_t>(i)];
    Block& block = blocks_[static_cast<size_t>(b)];
    block.cached = true;
    block.hash = hash;
    block.parent_hash = parent_hash;
    block.prefix_id = prefix_id;
    block.parent_prefix_id = parent_id;
    block.salt = seq.salt;
    block.tokens.assign(chunk.begin(), chunk.end());
    cached_.emplace(hash, b);
  }
  return ok_status();
}

void BlockManager::free(SequenceBlocks& seq) {
  for (auto it = seq.block_table.rbegin(); it != seq.block_table.rend(); ++it) release_block(*it);
  seq = SequenceBlocks{};
}

Status BlockManager::truncate(SequenceBlocks& seq, int64_t num_tokens) {
  if (num_tokens < 0) {
    return make_error("BlockManager::truncate: num_tokens must be >= 0, got " + str(num_tokens));
  }
  const int64_t committed_tokens = seq.num_committed_blocks() * block_size_;
  if (num_tokens < committed_tokens && num_tokens % block_size_ != 0) {
    return make_error("BlockManager::truncate: " + str(num_tokens) +
                      " tokens cuts inside a committed block (committed prefix " +
                      str(committed_tokens) + " tokens, block_size " + str(block_size_) + ")");
  }
  const auto keep = static_cast<size_t>(num_blocks_for(num_tokens));
  while (seq.block_table.size() > keep) {
    release_block(seq.block_table.back());
    seq.block_table.pop_back();
  }
  if (seq.committed.size() > keep) seq.committed.resize(keep);
  seq.num_cached_tokens = std::min(seq.num_cached_tokens, num_tokens);
  return ok_status();
}

void BlockManager::reset_prefix_cache() {
  for (size_t b = 0; b < blocks_.size(); ++b) {
    if (!blocks_[b].cached) continue;
    const auto id = static_cast<int32_t>(b);
    uncache(id);
    if (blocks_[b].ref_count == 0) {
      lru_remove(id);
      free_.push_back(id);
    }
  }
}

std::span<const int32_t> BlockManager::cached_tokens(int32_t block) const {
  if (block < 0 || block >= num_blocks()) return {};
  return blocks_[static_cast<size_t>(block)].tokens;
}

int32_t BlockManager::ref_count(int32_t block) const {
  if (block < 0 || block >= num_blocks()) return 0;
  return blocks_[static_cast<size_t>(block)].ref_count;
}

std::vector<int32_t> BlockManager::evictable_blocks() const {
  std::vector<int32_t> order;
  order.reserve(static_cast<size_t>(num_evictable_));
  for (int32_t b = lru_oldest_; b != kNone; b = blocks_[static_cast<size_t>(b)].lru_next) {
    order.push_back(b);
  }
  return order;
}

int32_t BlockManager::take_fresh_block() {
  int32_t b = kNone;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = lru_oldest_;
    lru_remove(b);
    uncache(b);
    ++stats_.num_evicted_blocks;
  }
  blocks_[static_cast<size_t>(b)].ref_count = 1;
  return b;
}

void BlockManager::take_cached_block(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  if (block.ref_count == 0) lru_remove(b);
  ++block.ref_count;
}

void BlockManager::release_block(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  if (--block.ref_count > 0) return;
  if (block.cached) {
    lru_push_newest(b);
  } else {
    free_.push_back(b);
  }
}

void BlockManager::uncache(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  cached_.erase(block.hash);
  block.cached = false;
  block.hash = 0;
  block.parent_hash = 0;
  block.prefix_id = 0;
  block.parent_prefix_id = 0;
  block.salt = 0;
  block.tokens.clear();
}

void BlockManager::lru_push_newest(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  block.lru_prev = lru_newest_;
  block.lru_next = kNone;
  if (lru_newest_ != kNone) {
    blocks_[static_cast<size_t>(lru_newest_)].lru_next = b;
  } else {
    lru_oldest_ = b;
  }
  lru_newest_ = b;
  ++num_evictable_;
}

void BlockManager::lru_remove(int32_t b) {
  Block& block = blocks_[static_cast<size_t>(b)];
  if (block.lru_prev != kNone) {
    blocks_[static_cast<size_t>(block.lru_prev)].lru_next = block.lru_next;
  } else {
    lru_oldest_ = block.lru_next;
  }
  if (block.lru_next != kNone) {
    blocks_[static_cast<size_t>(block.lru_next)].lru_prev = block.lru_prev;
  } else {
    lru_newest_ = block.lru_prev;
  }
  block.lru_prev = kNone;
  block.lru_next = kNone;
  --num_evictable_;
}

// ---- integrity checks ------------------------------------------------------------------------

Status BlockManager::check_lists() const {
  const auto n = num_blocks();
  std::vector<char> seen(blocks_.size(), 0);
  for (const int32_t b : free_) {
    if (b < 0 || b >= n) return make_error("free list holds out-of-range block " + str(b));
    const Block& block = blocks_[static_cast<size_t>(b)];
    if (seen[static_cast<size_t>(b)]++) {
      return make_error("block " + str(b) + " twice in free list");
    }
    if (block.ref_count != 0 || block.cached) {
      return make_error("free block " + str(b) + " has ref_count " + str(block.ref_count) +
                        (block.cached ? " and is cached" : ""));
    }
  }
  int64_t count = 0;
  int32_t prev = kNone;
  for (int32_t b = lru_oldest_; b != kNone; b = blocks_[static_cast<size_t>(b)].lru_next) {
    if (b < 0 || b >= n) return make_error("LRU list holds out-of-range block " + str(b));
    const Block& block = blocks_[static_cast<size_t>(b)];
    if (seen[static_cast<size_t>(b)]++) return make_error("block " + str(b) + " listed twice");
    if (block.lru_prev != prev) return make_error("LRU back link of block " + str(b) + " broken");
    if (block.ref_count != 0 || !block.cached) {
      return make_error("evictable block " + str(b) + " has ref_count " + str(block.ref_count) +
                        (block.cached ? "" : " and is not cached"));
    }
    prev = b;
    ++count;
  }
  if (prev != lru_newest_) return make_error("LRU newest end does not match the list");
  if (count != num_evictable_) {
    return make_error("LRU holds " + str(count) + " blocks, counter says " + str(num_evictable_));
  }
  for (int64_t b = 0; b < n; ++b) {
    const Block& block = blocks_[static_cast<size_t>(b)];
    if (block.ref_count < 0) return make_error("block " + str(b) + " has negative ref_count");
    if (block.ref_count == 0 && !seen[static_cast<size_t>(b)]) {
      return make_error("block " + str(b) + " has ref_count 0 but is on no list");
    }
    if (block.ref_count > 0 && (block.lru_prev != kNone || block.lru_next != kNone)) {
      return make_error("block " + str(b) + " in use but linked into the LRU list");
    }
  }
  return ok_status();
}

Status BlockManager::check_cache_entries() const {
  if (!enable_prefix_cache_ && !cached_.empty()) {
    return make_error("prefix cache disabled but " + str(num_cached_blocks()) + " entries exist");
  }
  int64_t num_cached = 0;
  std::unordered_map<uint64_t, int32_t> prefix_ids;
  for (int64_t b = 0; b < num_blocks(); ++b) {
    const Block& block = blocks_[static_cast<size_t>(b)];
    if (!block.cached) {
      if (!block.tokens.empty()) return make_error("uncached block " + str(b) + " keeps tokens");
      continue;
    }
    ++num_cached;
    const auto it = cached_.find(block.hash);
    if (it == cached_.end() || it->second != b) {
      return make_error("cached block " + str(b) + " is not the hash map's entry for its hash");
    }
    if (static_cast<int64_t>(block.tokens.size()) != block_size_) {
      return make_error("cached block " + str(b) + " stores " +
                        str(static_cast<int64_t>(block.tokens.size())) + " tokens");
    }
    if (hash_fn_(block.parent_hash, block.tokens) != block.hash) {
      return make_error("cached block " + str(b) + " hash does not match its tokens");
    }
    if (block.prefix_id == 0 || block.prefix_id >= next_prefix_id_ ||
        block.parent_prefix_id >= block.prefix_id) {
      return make_error("cached block " + str(b) + " has an impossible prefix id");
    }
    if (!prefix_ids.emplace(block.prefix_id, static_cast<int32_t>(b)).second) {
      return make_error("cached block " + str(b) + " shares its prefix id with another block");
    }
  }
  if (num_cached != num_cached_blocks()) {
    return make_error("hash map holds " + str(num_cached_blocks()) + " entries for " +
                      str(num_cached) + " cached blocks");
  }
  return ok_status();
}

Status BlockManager::check_integrity() const {
  LS_RETURN_IF_ERROR(check_lists());
  return check_cache_entries();
}

Status BlockManager::check_sequence(const SequenceBlocks& seq, size_t index,
                                    std::vector<int32_t>& ref_counts) const {
  const std::string where = "sequence " + str(static_cast<int64_t>(index)) + ": ";
  const size_t num_committed = seq.committed.size();
  if (num_committed > seq.block_table.size()) {
    return make_error(where + "more committed blocks than blocks");
  }
  if (seq.num_cached_tokens < 0 ||
      seq.num_cached_tokens > static_cast<int64_t>(num_committed) * block_size_) {
    return make_error(where + "cached prefix longer than its committed blocks");
  }
  std::vector<int32_t> sorted = seq.block_table;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return make_error(where + "holds a block twice");
  }
  for (size_t i = 0; i < seq.block_table.size(); ++i) {
    const int32_t b = seq.block_table[i];
    if (b < 0 || b >= num_blocks()) return make_error(where + "out-of-range block " + str(b));
    ++ref_counts[static_cast<size_t>(b)];
    const Block& block = blocks_[static_cast<size_t>(b)];
    if (i >= num_committed && (block.cached || block.ref_count != 1)) {
      return make_error(where + "uncommitted block " + str(b) + " is shared or cached");
    }
    if (i < num_committed && block.cached &&
        (block.hash != seq.committed[i].hash || block.prefix_id != seq.committed[i].prefix_id)) {
      return make_error(where + "committed block " + str(b) + " disagrees with the cache entry");
    }
  }
  return ok_status();
}

Status BlockManager::check_integrity(std::span<const SequenceBlocks* const> live) const {
  LS_RETURN_IF_ERROR(check_integrity());
  std::vector<int32_t> ref_counts(blocks_.size(), 0);
  for (size_t s = 0; s < live.size(); ++s) {
    LS_RETURN_IF_ERROR(check_sequence(*live[s], s, ref_counts));
  }
  for (size_t b = 0; b < blocks_.size(); ++b) {
    if (ref_counts[b] != blocks_[b].ref_count) {
      return make_error("block " + str(static_cast<int64_t>(b)) + " has ref_count " +
                        str(blocks_[b].ref_count) + " but " + str(ref_counts[b]) +
                        " live sequences hold it");
    }
  }
  return ok_status();
}

}  // namespace latentserve::engine
