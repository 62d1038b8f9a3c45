// The tokenizer of a DeepSeek-family checkpoint, read from its own tokenizer.json and
// tokenizer_config.json (Hugging Face format) and matching Hugging Face's Rust library: encode
// text to ids, decode ids to text, look up tokens. Immutable after load; safe to share.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "engine/text/added_tokens.h"

namespace latentserve::engine::text {

// A piece of input whose added-token text is recognised (parse_special) or taken literally
// (e.g. user content inside a chat template, so "<｜User｜>" typed by a user stays plain text).
struct TextSegment {
  std::string text;
  bool parse_special = true;
};

class Tokenizer {
 public:
  // Reads dir/tokenizer.json and, when present, dir/tokenizer_config.json.
  static Result<Tokenizer> load(const std::string& dir);
  // The same from the files' contents; `config_json` may be empty.
  static Result<Tokenizer> from_json(std::string_view tokenizer_json, std::string_view config_json);

  // add_special_tokens adds what the checkpoint's post-processing adds (e.g. BOS).
  // Input must be valid UTF-8; the error names the first bad byte's offset.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens, bool parse_special = true) const;
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_special_tokens, ParseSpecial mode) const;
  // Encodes the concatenation of the segments as one text: added tokens are recognised only
  // inside segments with parse_special, and plain text flows across segment boundaries.
  Result<std::vector<int32_t>> encode_segments(const std::vector<TextSegment>& segments, bool add_special_tokens) const;

  // Lossy like Hugging Face's: bytes that do not form UTF-8 become U+FFFD. Unknown ids are errors.
  Result<std::string> decode(std::span<const int32_t> ids, bool skip_special_tokens) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;  // token as written in tokenizer.json
  std::optional<std::string> id_to_token(int32_t id) const;
  // Raw bytes the id decodes to (empty for an id with no token).
  const std::string& token_bytes(int32_t id) const;
  bool has_id(int32_t id) const;
  bool is_special(int32_t id) const;
  // One past the largest id of the vocabulary and the added tokens.
  int32_t vocab_size() const;

  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  const std::string& bos_token() const;  // "" when the config names none
  const std::string& eos_token() const;
  const std::string& chat_template() const;  // "" when the config has none
  const AddedTokens& added_tokens() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  Status encode_into(std::string_view text, std::span<const AddedMatch> matches, bool add_special_tokens,
                     std::vector<int32_t>& out) const;

  std::shared_ptr<const Impl> impl_;
};

}  // namespace latentserve::engine::text
