// The pre-tokenizer of a tokenizer.json: a pipeline of Split and ByteLevel steps that cuts text
// into the pieces BPE encodes one by one. Pieces are views into the input (or into `storage`
// when ByteLevel adds a prefix space), so splitting does not copy the text.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "engine/text/regex.h"

namespace latentserve::engine::text {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Scratch space reused across calls so splitting does not allocate per piece.
struct PreTokenizeScratch {
  std::vector<std::string_view> next;
  std::vector<Span> matches;
  std::vector<std::pair<Span, bool>> splits;
  std::deque<std::string> storage;  // text made up by add_prefix_space
};

class PreTokenizer {
 public:
  // Reads the "pre_tokenizer" value of tokenizer.json (null, Split, ByteLevel or a Sequence of
  // them). Any other type, option or value is an error naming it.
  static Result<PreTokenizer> from_json(const nlohmann::json& spec);

  // Replaces `pieces` by the pieces of `text`. Text must be valid UTF-8.
  Status split(std::string_view text, PreTokenizeScratch& scratch, std::vector<std::string_view>& pieces) const;

  // Whether the last step maps bytes to the byte-level alphabet (required by the BPE model).
  bool byte_level() const { return byte_level_; }

 private:
  struct Step {
    enum class Kind { kSplit, kByteLevel } kind = Kind::kSplit;
    std::shared_ptr<const Regex> regex;  // kSplit, or kByteLevel with use_regex
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;
  };

  static Result<Step> parse_step(const nlohmann::json& spec, const std::string& where);
  Status apply(const Step& step, std::string_view piece, PreTokenizeScratch& scratch) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace latentserve::engine::text
