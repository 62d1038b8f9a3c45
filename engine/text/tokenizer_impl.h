// Internal state of a loaded Tokenizer, shared by the loader (tokenizer_load.cpp) and the
// encode/decode paths (tokenizer.cpp). Not part of the public interface.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/text/added_tokens.h"
#include "engine/text/bpe.h"
#include "engine/text/pre_tokenizer.h"
#include "engine/text/tokenizer.h"

namespace latentserve::engine::text {

struct Tokenizer::Impl {
  BpeModel model;
  PreTokenizer pre_tokenizer;
  AddedTokens added;
  std::vector<std::string> id_bytes;  // what each id decodes to
  std::vector<uint8_t> id_kind;       // 0: no token, 1: vocabulary, 2: added, 3: added and special
  std::vector<int32_t> prefix_ids;    // added in front when add_special_tokens
  std::vector<int32_t> suffix_ids;    // appended when add_special_tokens
  std::optional<int32_t> bos_id;
  std::optional<int32_t> eos_id;
  std::string bos_token;
  std::string eos_token;
  std::string chat_template;
};

}  // namespace latentserve::engine::text
