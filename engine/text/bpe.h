// The byte-level BPE model of a tokenizer.json: vocabulary, merge ranks, and the merge loop that
// turns one pre-token's bytes into ids. Results are cached per thread (see word_cache.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace latentserve::engine::text {

class BpeModel {
 public:
  // Reads the "model" value of tokenizer.json. Only byte-level BPE without dropout, unknown
  // token fallback, or subword prefixes/suffixes is supported; other settings are errors.
  static Result<BpeModel> from_json(const nlohmann::json& spec);

  // Appends the ids of one pre-token given as raw bytes.
  void encode_piece(std::string_view bytes, std::vector<int32_t>& out) const;

  // The same without the cache: the plain algorithm, kept for tests and as the reference.
  void encode_piece_uncached(std::string_view bytes, std::vector<int32_t>& out) const;

  // Vocabulary entries as written in tokenizer.json (byte-level alphabet); "" marks a hole.
  const std::vector<std::string>& tokens() const { return tokens_; }
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  size_t merge_count() const { return merge_count_; }

 private:
  struct MergeSlot {
    uint64_t pair = 0;  // (left id + 1) << 32 | (right id + 1); 0 marks an empty slot
    int32_t rank = 0;
    int32_t new_id = 0;
  };

  Status add_merge(std::string_view left, std::string_view right, int32_t rank, const std::string& where);
  const MergeSlot* find_merge(int32_t left, int32_t right) const;
  void merge(std::string_view bytes, std::vector<int32_t>& out) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> tokens_;
  std::vector<MergeSlot> merges_;  // open addressing, power-of-two size
  size_t merge_count_ = 0;
  int32_t byte_ids_[256] = {};
  bool ignore_merges_ = false;
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // only with ignore_merges
  uint64_t instance_ = 0;  // keys the per-thread word cache
};

}  // namespace latentserve::engine::text
