#include "engine/text/bpe.h"

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>

#include "engine/text/byte_level.h"
#include "engine/text/word_cache.h"

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

// Longer pieces are rare and would crowd the cache; Hugging Face draws the line at 256 too.
constexpr size_t kMaxCachedPieceBytes = 256;

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left) + 1) << 32) | (static_cast<uint32_t>(right) + 1);
}

inline size_t pair_hash(uint64_t key) {
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdULL;
  key ^= key >> 33;
  return static_cast<size_t>(key);
}

struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  int32_t len;  // 0 once merged into its left neighbour
};

struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std heap is a max-heap: the lowest rank, then the leftmost position, comes out first.
  bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct MergeScratch {
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

struct ThreadCache {
  uint64_t owner = 0;
  WordCache cache;
  std::vector<int32_t> ids;
};

std::atomic<uint64_t> next_instance{1};

}  // namespace

Status BpeModel::add_merge(std::string_view left, std::string_view right, int32_t rank, const std::string& where) {
  auto find = [&](const std::string& token) -> Result<int32_t> {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return make_error(where + ": token '" + token + "' is not in the vocabulary");
    return it->second;
  };
  LS_ASSIGN_OR_RETURN(int32_t l, find(std::string(left)));
  LS_ASSIGN_OR_RETURN(int32_t r, find(std::string(right)));
  LS_ASSIGN_OR_RETURN(int32_t merged, find(std::string(left) + std::string(right)));
  const uint64_t key = pair_key(l, r);
  const size_t mask = merges_.size() - 1;
  size_t i = pair_hash(key) & mask;
  while (merges_[i].pair != 0 && merges_[i].pair != key) i = (i + 1) & mask;
  if (merges_[i].pair == 0) ++merge_count_;
  // A repeated pair takes the later rank, as a hash map built in file order would.
  merges_[i] = MergeSlot{key, rank, merged};
  return ok_status();
}

const BpeModel::MergeSlot* BpeModel::find_merge(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = merges_.size() - 1;
  for (size_t i = pair_hash(key) & mask;; i = (i + 1) & mask) {
    const MergeSlot& s = merges_[i];
    if (s.pair == key) return &s;
    if (s.pair == 0) return nullptr;
  }
}

Result<BpeModel> BpeModel::from_json(const json& spec) {
  const std::string where = "model";
  if (!spec.is_object()) return make_error("tokenizer.json has no 'model' object");
  const std::string type = spec.value("type", "BPE");
  if (type != "BPE") return make_error(where + ": unsupported model type '" + type + "'");
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    if (k == "type" || k == "vocab" || k == "merges" || k == "fuse_unk") continue;
    if (k == "unk_token") continue;  // never used: every byte has a token (checked below)
    if (k == "dropout" && (v.is_null() || (v.is_number() && v.get<double>() == 0.0))) continue;
    if ((k == "continuing_subword_prefix" || k == "end_of_word_suffix") &&
        (v.is_null() || (v.is_string() && v.get<std::string>().empty()))) continue;
    if (k == "byte_fallback" && v.is_boolean() && !v.get<bool>()) continue;
    if (k == "ignore_merges" && v.is_boolean()) continue;
    return make_error(where + ": unsupported option '" + k + "' = " + v.dump());
  }
  BpeModel model;
  model.instance_ = next_instance.fetch_add(1);
  model.ignore_merges_ = spec.value("ignore_merges", false);
  if (!spec.contains("vocab") || !spec["vocab"].is_object()) return make_error(where + ": 'vocab' must be an object");
  int32_t max_id = -1;
  model.vocab_.reserve(spec["vocab"].size());
  for (auto it = spec["vocab"].begin(); it != spec["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX) {
      return make_error(where + ".vocab['" + it.key() + "']: id must be a non-negative 32-bit integer");
    }
    const auto id = static_cast<int32_t>(it.value().get<int64_t>());
    model.vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  model.tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : model.vocab_) model.tokens_[id] = token;
  for (int b = 0; b < 256; ++b) {
    const std::string written = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    auto it = model.vocab_.find(written);
    if (it == model.vocab_.end()) {
      return make_error(where + ".vocab: no token for byte " + std::to_string(b) + " ('" + written +
                        "'); only byte-level vocabularies are supported");
    }
    model.byte_ids_[b] = it->second;
  }
  if (!spec.contains("merges") || !spec["merges"].is_array()) return make_error(where + ": 'merges' must be an array");
  const json& merges = spec["merges"];
  size_t capacity = 16;
  while (capacity < merges.size() * 2) capacity <<= 1;
  model.merges_.assign(capacity, MergeSlot{});
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string mwhere = where + ".merges[" + std::to_string(i) + "]";
    const json& m = merges[i];
    if (m.is_string()) {
      const auto& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return make_error(mwhere + ": '" + s + "' is not two tokens separated by one space");
      }
      LS_RETURN_IF_ERROR(model.add_merge(std::string_view(s).substr(0, space), std::string_view(s).substr(space + 1),
                                         static_cast<int32_t>(i), mwhere));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      LS_RETURN_IF_ERROR(model.add_merge(m[0].get_ref<const std::string&>(), m[1].get_ref<const std::string&>(),
                                         static_cast<int32_t>(i), mwhere));
    } else {
      return make_error(mwhere + ": expected \"a b\" or [\"a\", \"b\"], got " + m.dump());
    }
  }
  if (model.ignore_merges_) {
    std::string bytes;
    for (const auto& [token, id] : model.vocab_) {
      if (byte_level_to_bytes(token, bytes)) model.bytes_to_id_.emplace(bytes, id);
    }
  }
  return model;
}

void BpeModel::merge(std::string_view bytes, std::vector<int32_t>& out) const {
  thread_local MergeScratch scratch;
  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  const auto n = static_cast<int32_t>(bytes.size());
  symbols.resize(static_cast<size_t>(n));
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = Symbol{byte_ids_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, 1};
  }
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const MergeSlot* m = find_merge(symbols[i].id, symbols[i + 1].id)) heap.push_back({m->rank, i, m->new_id});
  }
  std::make_heap(heap.begin(), heap.end());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& cur = symbols[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    Symbol& right = symbols[cur.next];
    // Stale if either side changed since the candidate was queued.
    const MergeSlot* m = find_merge(cur.id, right.id);
    if (m == nullptr || m->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    right.len = 0;
    cur.next = right.next;
    if (cur.next >= 0) symbols[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (const MergeSlot* p = find_merge(symbols[cur.prev].id, cur.id)) {
        heap.push_back({p->rank, cur.prev, p->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
    if (cur.next >= 0) {
      if (const MergeSlot* q = find_merge(cur.id, symbols[cur.next].id)) {
        heap.push_back({q->rank, top.pos, q->new_id});
        std::push_heap(heap.begin(), heap.end());
      }
    }
  }
  for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) out.push_back(symbols[i].id);
}

void BpeModel::encode_piece_uncached(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {
    auto it = bytes_to_id_.find(std::string(bytes));
    if (it != bytes_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  merge(bytes, out);
}

void BpeModel::encode_piece(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  if (bytes.empty() || bytes.size() > kMaxCachedPieceBytes) {
    encode_piece_uncached(bytes, out);
    return;
  }
  thread_local ThreadCache tc;
  if (tc.owner != instance_) {
    tc.cache.clear();
    tc.owner = instance_;
  }
  const uint64_t h = WordCache::hash(bytes);
  std::span<const int32_t> hit;
  if (tc.cache.lookup(bytes, h, hit)) {
    out.insert(out.end(), hit.begin(), hit.end());
    return;
  }
  const size_t before = out.size();
  encode_piece_uncached(bytes, out);
  tc.cache.insert(bytes, h, std::span<const int32_t>(out.data() + before, out.size() - before));
}

}  // namespace latentserve::engine::text
