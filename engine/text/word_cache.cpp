#include "engine/text/word_cache.h"

#include <cstring>

namespace latentserve::engine::text {
namespace {
constexpr size_t kMaxKeyBytes = 8u << 20;
}

WordCache::WordCache(size_t max_entries) : max_entries_(max_entries) {
  size_t capacity = 16;
  while (capacity < max_entries * 2) capacity <<= 1;
  slots_.resize(capacity);
}

uint64_t WordCache::hash(std::string_view word) {
  // 64-bit FNV-1a over 8-byte words, then a final mix; pieces are short.
  uint64_t h = 0xcbf29ce484222325ULL ^ word.size();
  size_t i = 0;
  for (; i + 8 <= word.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, word.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, word.data() + i, word.size() - i);
  h = (h ^ tail) * 0x100000001b3ULL;
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ULL;
  h ^= h >> 32;
  return h;
}

bool WordCache::lookup(std::string_view word, uint64_t hash, std::span<const int32_t>& ids) const {
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.ids_len == 0) return false;
    if (s.hash == hash && s.key_len == word.size() &&
        std::memcmp(keys_.data() + s.key_offset, word.data(), word.size()) == 0) {
      ids = std::span<const int32_t>(ids_.data() + s.ids_offset, s.ids_len);
      return true;
    }
  }
}

void WordCache::insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids) {
  if (ids.empty()) return;
  if (entries_ >= max_entries_ || keys_.size() + word.size() > kMaxKeyBytes) clear();
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i].ids_len != 0) i = (i + 1) & mask;
  Slot& s = slots_[i];
  s.hash = hash;
  s.key_offset = static_cast<uint32_t>(keys_.size());
  s.key_len = static_cast<uint32_t>(word.size());
  s.ids_offset = static_cast<uint32_t>(ids_.size());
  s.ids_len = static_cast<uint32_t>(ids.size());
  keys_.append(word);
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  ++entries_;
}

void WordCache::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  keys_.clear();
  ids_.clear();
  entries_ = 0;
}

}  // namespace latentserve::engine::text
