#include "engine/text/tokenizer.h"

#include "engine/text/tokenizer_impl.h"
#include "engine/text/utf8.h"

namespace latentserve::engine::text {
namespace {

// Reused per thread so encoding allocates nothing per piece.
struct EncodeScratch {
  PreTokenizeScratch pre;
  std::vector<std::string_view> pieces;
  std::vector<AddedMatch> matches;
};

EncodeScratch& scratch() {
  thread_local EncodeScratch s;
  return s;
}

Status check_utf8(std::string_view text, const std::string& what) {
  // Pre-tokenizer offsets are 32-bit.
  if (text.size() > UINT32_MAX) return make_error(what + " is longer than 4 GiB");
  const size_t bad = first_invalid_utf8(text);
  if (bad == text.size()) return ok_status();
  return make_error(what + " is not valid UTF-8: bad byte 0x" +
                    "0123456789abcdef"[static_cast<uint8_t>(text[bad]) >> 4] +
                    "0123456789abcdef"[static_cast<uint8_t>(text[bad]) & 15] + " at byte offset " +
                    std::to_string(bad));
}

}  // namespace

Status Tokenizer::encode_into(std::string_view text, std::span<const AddedMatch> matches, bool add_special_tokens,
                              std::vector<int32_t>& out) const {
  const Impl& impl = *impl_;
  EncodeScratch& s = scratch();
  out.reserve(text.size() / 3 + impl.prefix_ids.size() + impl.suffix_ids.size() + 4);
  if (add_special_tokens) out.insert(out.end(), impl.prefix_ids.begin(), impl.prefix_ids.end());
  size_t at = 0;
  auto plain = [&](size_t begin, size_t end) -> Status {
    if (end <= begin) return ok_status();
    LS_RETURN_IF_ERROR(impl.pre_tokenizer.split(text.substr(begin, end - begin), s.pre, s.pieces));
    for (std::string_view piece : s.pieces) impl.model.encode_piece(piece, out);
    return ok_status();
  };
  for (const AddedMatch& m : matches) {
    LS_RETURN_IF_ERROR(plain(at, m.begin));
    out.push_back(m.id);
    at = m.end;
  }
  LS_RETURN_IF_ERROR(plain(at, text.size()));
  if (add_special_tokens) out.insert(out.end(), impl.suffix_ids.begin(), impl.suffix_ids.end());
  return ok_status();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens, bool parse_special) const {
  return encode(text, add_special_tokens, parse_special ? ParseSpecial::kAll : ParseSpecial::kNone);
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special_tokens, ParseSpecial mode) const {
  LS_RETURN_IF_ERROR(check_utf8(text, "encode input"));
  // Copied out of the per-thread scratch: encode_into uses the scratch for its own pieces.
  std::vector<AddedMatch> matches;
  impl_->added.find(text, mode, 0, matches);
  std::vector<int32_t> ids;
  LS_RETURN_IF_ERROR(encode_into(text, matches, add_special_tokens, ids));
  return ids;
}

Result<std::vector<int32_t>> Tokenizer::encode_segments(const std::vector<TextSegment>& segments,
                                                        bool add_special_tokens) const {
  std::string text;
  std::vector<AddedMatch> matches;
  size_t i = 0;
  while (i < segments.size()) {
    // Neighbouring segments with the same setting are searched as one text.
    const size_t run_start = text.size();
    const bool parse = segments[i].parse_special;
    for (; i < segments.size() && segments[i].parse_special == parse; ++i) {
      LS_RETURN_IF_ERROR(check_utf8(segments[i].text, "encode segment " + std::to_string(i)));
      text += segments[i].text;
    }
    if (parse) {
      impl_->added.find(std::string_view(text).substr(run_start), ParseSpecial::kAll, run_start, matches);
    }
  }
  std::vector<int32_t> ids;
  LS_RETURN_IF_ERROR(encode_into(text, matches, add_special_tokens, ids));
  return ids;
}

Result<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (!has_id(id)) {
      return make_error("decode: id " + std::to_string(id) + " at position " + std::to_string(i) +
                        " has no token (vocab_size " + std::to_string(vocab_size()) + ")");
    }
    if (skip_special_tokens && impl.id_kind[id] == 3) continue;
    bytes += impl.id_bytes[id];
  }
  return utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const AddedToken* t = impl_->added.by_content(token)) return t->id;
  const auto& vocab = impl_->model.vocab();
  auto it = vocab.find(std::string(token));
  if (it == vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (!has_id(id)) return std::nullopt;
  if (const AddedToken* t = impl_->added.by_id(id)) return t->content;
  return impl_->model.tokens()[id];
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  static const std::string kNone;
  return has_id(id) ? impl_->id_bytes[id] : kNone;
}

bool Tokenizer::has_id(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->id_kind[id] != 0;
}

bool Tokenizer::is_special(int32_t id) const { return has_id(id) && impl_->id_kind[id] == 3; }
int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_kind.size()); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos_id; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos_id; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
const AddedTokens& Tokenizer::added_tokens() const { return impl_->added; }

}  // namespace latentserve::engine::text
