// A bounded map from a pre-token's bytes to its BPE ids. Text repeats the same words, so most
// pieces skip merging. Not thread-safe: each thread keeps its own (see bpe.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace latentserve::engine::text {

class WordCache {
 public:
  explicit WordCache(size_t max_entries = 1 << 15);

  // The cached ids of `word`, or an empty span with found=false.
  bool lookup(std::string_view word, uint64_t hash, std::span<const int32_t>& ids) const;
  // Starts over when full, which keeps memory bounded without per-entry bookkeeping.
  void insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids);
  void clear();
  size_t size() const { return entries_; }

  static uint64_t hash(std::string_view word);

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0;
    uint32_t key_len = 0;
    uint32_t ids_offset = 0;
    uint32_t ids_len = 0;  // 0 marks an empty slot (no word has zero ids)
  };

  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t entries_ = 0;
  size_t max_entries_;
};

}  // namespace latentserve::engine::text
