#include "engine/text/text_processor.h"

#include "engine/text/detokenizer.h"

namespace latentserve::engine::text {

namespace {

// The engine's TokenDecoder over the text layer's Detokenizer.
class DetokenizerAdapter : public TokenDecoder {
 public:
  DetokenizerAdapter(std::shared_ptr<const TextProcessor> owner, bool skip_special_tokens)
      : owner_(std::move(owner)), detokenizer_(owner_->tokenizer(), skip_special_tokens) {}

  std::string push(int32_t id) override {
    auto text = detokenizer_.push(id);
    return text.ok() ? std::move(text).value() : std::string();
  }
  std::string flush() override { return detokenizer_.flush(); }

 private:
  std::shared_ptr<const TextProcessor> owner_;  // keeps the tokenizer alive
  Detokenizer detokenizer_;
};

}  // namespace

Result<std::shared_ptr<const TextProcessor>> TextProcessor::load(const std::string& dir) {
  LS_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::load(dir));
  std::optional<ChatTemplate> chat_template;
  if (!tokenizer.chat_template().empty()) {
    auto tmpl = ChatTemplate::parse(tokenizer.chat_template());
    if (!tmpl.ok()) return tmpl.error().with_context(dir + "/tokenizer_config.json: chat_template");
    chat_template = std::move(tmpl).value();
  }
  return std::shared_ptr<const TextProcessor>(
      new TextProcessor(std::move(tokenizer), std::move(chat_template)));
}

Result<std::vector<int32_t>> TextProcessor::encode_prompt(const std::string& text,
                                                          bool add_special_tokens) const {
  return tokenizer_.encode(text, add_special_tokens, ParseSpecial::kAll);
}

Result<ChatPrompt> TextProcessor::encode_chat(const nlohmann::ordered_json& messages,
                                              const nlohmann::ordered_json& tools,
                                              bool add_generation_prompt,
                                              const nlohmann::ordered_json& extra) const {
  if (!chat_template_) return make_error("this model's tokenizer_config.json has no chat_template");
  ChatRequest request;
  LS_ASSIGN_OR_RETURN(request.messages, normalize_messages(messages));
  request.tools = tools;
  request.add_generation_prompt = add_generation_prompt;
  request.bos_token = tokenizer_.bos_token();
  request.eos_token = tokenizer_.eos_token();
  request.extra = extra;
  LS_ASSIGN_OR_RETURN(auto rendered, chat_template_->render(request));
  std::vector<TextSegment> segments;
  for (const auto& s : rendered.segments) segments.push_back({s.text, !s.from_input});
  ChatPrompt prompt;
  // The template writes BOS itself; Hugging Face's apply_chat_template adds no special tokens.
  LS_ASSIGN_OR_RETURN(prompt.ids, tokenizer_.encode_segments(segments, /*add_special_tokens=*/false));
  prompt.text = std::move(rendered.text);
  return prompt;
}

TokenDecoderFactory TextProcessor::decoder_factory() const {
  std::shared_ptr<const TextProcessor> self = shared_from_this();  // load() always makes a shared_ptr
  return [self](bool skip_special_tokens) -> std::unique_ptr<TokenDecoder> {
    return std::make_unique<DetokenizerAdapter>(self, skip_special_tokens);
  };
}

}  // namespace latentserve::engine::text
