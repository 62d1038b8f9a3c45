#include "engine/text/detokenizer.h"

namespace latentserve::engine::text {

Result<std::string> Detokenizer::push(int32_t id) {
  if (!tokenizer_->has_id(id)) {
    return make_error("detokenizer: id " + std::to_string(id) + " has no token (vocab_size " +
                      std::to_string(tokenizer_->vocab_size()) + ")");
  }
  std::string delta;
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return delta;
  decoder_.feed(tokenizer_->token_bytes(id), delta);
  return delta;
}

std::string Detokenizer::flush() {
  std::string delta;
  decoder_.finish(delta);
  return delta;
}

}  // namespace latentserve::engine::text
