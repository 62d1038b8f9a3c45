// The added tokens of a tokenizer.json (special markers, chat roles, tool markers): finding them
// in text, longest match first as Hugging Face does, before the rest is pre-tokenized and BPE'd.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace latentserve::engine::text {

// Which added tokens are recognised when they occur in input text.
enum class ParseSpecial {
  kAll,             // every added token (Hugging Face's default)
  kNonSpecialOnly,  // tokens marked special are plain text (Hugging Face's split_special_tokens)
  kNone,            // no added token is recognised; all text is plain
};

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
};

// One recognised token: [begin, end) in the searched text, including whitespace taken by
// lstrip/rstrip.
struct AddedMatch {
  size_t begin = 0;
  size_t end = 0;
  int32_t id = 0;
};

class AddedTokens {
 public:
  // Reads the "added_tokens" array of tokenizer.json (null or absent means none).
  static Result<AddedTokens> from_json(const nlohmann::json& spec);

  // Appends the matches in `text` (valid UTF-8), in order, offsets shifted by `base`.
  void find(std::string_view text, ParseSpecial mode, size_t base, std::vector<AddedMatch>& out) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* by_id(int32_t id) const;
  const AddedToken* by_content(std::string_view content) const;

 private:
  // A byte trie over token contents; the root has a direct table because it is hit per byte.
  struct Trie {
    struct Node {
      int32_t token = -1;  // index into tokens_, or -1
      std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    };
    std::vector<Node> nodes;
    int32_t root_child[256];
    bool empty = true;

    Trie();
    void insert(std::string_view content, int32_t token);
    // The longest token starting at text[pos], as an index into tokens_, with its length.
    int32_t longest_at(std::string_view text, size_t pos, size_t& length) const;
  };

  void find_with(const Trie& trie, std::string_view text, ParseSpecial mode, size_t base,
                 std::vector<AddedMatch>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  Trie raw_trie_;         // tokens with normalized=false, matched first on the raw text
  Trie normalized_trie_;  // tokens with normalized=true, matched in what is left
};

}  // namespace latentserve::engine::text
