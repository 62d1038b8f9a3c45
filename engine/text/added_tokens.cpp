#include "engine/text/added_tokens.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

// Unicode White_Space, which is what lstrip/rstrip strip (Rust's char::is_whitespace).
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

char32_t decode_at(std::string_view s, size_t i, size_t& len) {
  const auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) { len = 1; return b; }
  if (b < 0xE0) { len = 2; return ((b & 0x1F) << 6) | (s[i + 1] & 0x3F); }
  if (b < 0xF0) { len = 3; return ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F); }
  len = 4;
  return ((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
}

// Start of the run of whitespace that ends text[..end].
size_t whitespace_run_start(std::string_view s, size_t end) {
  size_t i = end;
  while (i > 0) {
    size_t start = i - 1;
    while (start > 0 && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    if (!is_white_space(decode_at(s, start, len))) break;
    i = start;
  }
  return i;
}

// End of the run of whitespace that starts at text[begin].
size_t whitespace_run_end(std::string_view s, size_t begin) {
  size_t i = begin;
  while (i < s.size()) {
    size_t len = 0;
    if (!is_white_space(decode_at(s, i, len))) break;
    i += len;
  }
  return i;
}

Result<bool> flag(const json& t, const char* key, const std::string& where) {
  if (!t.contains(key) || t[key].is_null()) return false;
  if (!t[key].is_boolean()) return make_error(where + ": '" + key + "' must be a boolean");
  return t[key].get<bool>();
}

}  // namespace

AddedTokens::Trie::Trie() {
  nodes.emplace_back();
  std::fill(std::begin(root_child), std::end(root_child), -1);
}

void AddedTokens::Trie::insert(std::string_view content, int32_t token) {
  empty = false;
  int32_t node = 0;
  for (size_t i = 0; i < content.size(); ++i) {
    const auto b = static_cast<uint8_t>(content[i]);
    int32_t child = -1;
    if (node == 0) {
      child = root_child[b];
    } else {
      for (const auto& [byte, c] : nodes[node].children) {
        if (byte == b) child = c;
      }
    }
    if (child < 0) {
      child = static_cast<int32_t>(nodes.size());
      nodes.emplace_back();
      if (node == 0) {
        root_child[b] = child;
      } else {
        auto& ch = nodes[node].children;
        ch.insert(std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1})), {b, child});
      }
    }
    node = child;
  }
  if (nodes[node].token < 0) nodes[node].token = token;  // the first of duplicate contents wins
}

int32_t AddedTokens::Trie::longest_at(std::string_view text, size_t pos, size_t& length) const {
  int32_t node = root_child[static_cast<uint8_t>(text[pos])];
  int32_t best = -1;
  size_t i = pos + 1;
  while (node >= 0) {
    if (nodes[node].token >= 0) {
      best = nodes[node].token;
      length = i - pos;
    }
    if (i >= text.size()) break;
    const auto b = static_cast<uint8_t>(text[i]);
    const auto& ch = nodes[node].children;
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
    node = (it != ch.end() && it->first == b) ? it->second : -1;
    ++i;
  }
  return best;
}

Result<AddedTokens> AddedTokens::from_json(const json& spec) {
  AddedTokens result;
  if (spec.is_null()) return result;
  if (!spec.is_array()) return make_error("added_tokens: expected an array");
  for (size_t i = 0; i < spec.size(); ++i) {
    const json& t = spec[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object() || !t.contains("content") || !t["content"].is_string() || !t.contains("id") ||
        !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 || t["id"].get<int64_t>() > INT32_MAX) {
      return make_error(where + ": expected {\"id\": non-negative integer, \"content\": string, ...}");
    }
    AddedToken token;
    token.content = t["content"].get<std::string>();
    token.id = static_cast<int32_t>(t["id"].get<int64_t>());
    if (token.content.empty()) return make_error(where + ": empty content");
    LS_ASSIGN_OR_RETURN(token.special, flag(t, "special", where));
    LS_ASSIGN_OR_RETURN(token.normalized, flag(t, "normalized", where));
    LS_ASSIGN_OR_RETURN(token.lstrip, flag(t, "lstrip", where));
    LS_ASSIGN_OR_RETURN(token.rstrip, flag(t, "rstrip", where));
    LS_ASSIGN_OR_RETURN(bool single_word, flag(t, "single_word", where));
    if (single_word) return make_error(where + " ('" + token.content + "'): single_word is not supported");
    for (auto it = t.begin(); it != t.end(); ++it) {
      static constexpr std::string_view kKnown[] = {"id", "content", "special", "normalized",
                                                    "lstrip", "rstrip", "single_word"};
      if (std::find(std::begin(kKnown), std::end(kKnown), it.key()) == std::end(kKnown)) {
        return make_error(where + ": unsupported option '" + it.key() + "'");
      }
    }
    const auto index = static_cast<int32_t>(result.tokens_.size());
    result.by_id_.emplace(token.id, index);
    result.by_content_.emplace(token.content, index);
    (token.normalized ? result.normalized_trie_ : result.raw_trie_).insert(token.content, index);
    result.tokens_.push_back(std::move(token));
  }
  return result;
}

const AddedToken* AddedTokens::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::by_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

void AddedTokens::find_with(const Trie& trie, std::string_view text, ParseSpecial mode, size_t base,
                            std::vector<AddedMatch>& out) const {
  size_t taken = 0;  // text before this is already in a match (or its stripped whitespace)
  size_t pos = 0;
  while (pos < text.size()) {
    if (trie.root_child[static_cast<uint8_t>(text[pos])] < 0) {
      ++pos;
      continue;
    }
    size_t length = 0;
    const int32_t index = trie.longest_at(text, pos, length);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t begin = pos;
    size_t end = pos + length;
    pos = end;
    // Skipped matches still consume their text, as Hugging Face's matcher does.
    if (mode == ParseSpecial::kNonSpecialOnly && token.special) continue;
    if (begin < taken) continue;  // inside whitespace an rstrip token already took
    if (token.lstrip) begin = std::max(whitespace_run_start(text, begin), taken);
    if (token.rstrip) end = whitespace_run_end(text, end);
    out.push_back(AddedMatch{base + begin, base + end, token.id});
    taken = end;
  }
}

void AddedTokens::find(std::string_view text, ParseSpecial mode, size_t base, std::vector<AddedMatch>& out) const {
  if (mode == ParseSpecial::kNone || text.empty()) return;
  const size_t first = out.size();
  if (!raw_trie_.empty) find_with(raw_trie_, text, mode, base, out);
  if (normalized_trie_.empty) return;
  // Normalized tokens are looked for only in the text between the raw matches.
  std::vector<AddedMatch> raw(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
  out.resize(first);
  size_t gap = base;
  for (size_t i = 0; i <= raw.size(); ++i) {
    const size_t gap_end = i < raw.size() ? raw[i].begin : base + text.size();
    if (gap_end > gap) find_with(normalized_trie_, text.substr(gap - base, gap_end - gap), mode, gap, out);
    if (i < raw.size()) {
      out.push_back(raw[i]);
      gap = raw[i].end;
    }
  }
}

}  // namespace latentserve::engine::text
