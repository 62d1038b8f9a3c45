// TextProcessor: a model folder's tokenizer and chat template together — what front ends use to
// turn a text prompt or chat messages into token ids, and generated ids back into text.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/text/chat_template.h"
#include "engine/text/tokenizer.h"
#include "engine/token_decoder.h"

namespace latentserve::engine::text {

struct ChatPrompt {
  std::string text;              // the rendered template
  std::vector<int32_t> ids;      // added tokens matched only outside message content
};

class TextProcessor : public std::enable_shared_from_this<TextProcessor> {
 public:
  // Loads DIR/tokenizer.json (+ tokenizer_config.json) and parses the chat template, if any.
  static Result<std::shared_ptr<const TextProcessor>> load(const std::string& dir);

  const Tokenizer& tokenizer() const { return tokenizer_; }
  bool has_chat_template() const { return chat_template_.has_value(); }

  // A completion prompt: BOS added as the tokenizer's config says; added tokens in the text are
  // matched (as Hugging Face and vLLM do for completions).
  Result<std::vector<int32_t>> encode_prompt(const std::string& text, bool add_special_tokens = true) const;

  // Renders the chat template and tokenizes it. Text that came from the messages or tools never
  // becomes an added token, so a user cannot end or fake a turn.
  Result<ChatPrompt> encode_chat(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                                 bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra = nullptr) const;

  // A streaming detokenizer per sequence, for the engine. Ids past the tokenizer's vocabulary
  // (models pad their embedding) decode to no text.
  TokenDecoderFactory decoder_factory() const;

 private:
  TextProcessor(Tokenizer tokenizer, std::optional<ChatTemplate> chat_template)
      : tokenizer_(std::move(tokenizer)), chat_template_(std::move(chat_template)) {}

  Tokenizer tokenizer_;
  std::optional<ChatTemplate> chat_template_;
};

}  // namespace latentserve::engine::text
