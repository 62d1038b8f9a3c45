#include "engine/text/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <initializer_list>

namespace latentserve::engine::text {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A String pattern matches literally: escape every ASCII punctuation character.
std::string escape_literal(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u) && c != ' ' && c != '\n' && c != '\r' && c != '\t') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

Status check_keys(const json& spec, std::initializer_list<std::string_view> known, const std::string& where) {
  for (auto it = spec.begin(); it != spec.end(); ++it) {
    bool found = false;
    for (auto k : known) found = found || it.key() == k;
    if (!found) return make_error(where + ": unsupported option '" + it.key() + "'");
  }
  return ok_status();
}

Result<bool> get_bool(const json& spec, const char* key, bool fallback, const std::string& where) {
  if (!spec.contains(key) || spec[key].is_null()) return fallback;
  if (!spec[key].is_boolean()) return make_error(where + ": '" + key + "' must be a boolean");
  return spec[key].get<bool>();
}

Result<SplitBehavior> parse_behavior(const json& value, const std::string& where) {
  if (!value.is_string()) return make_error(where + ": 'behavior' must be a string");
  const auto name = value.get<std::string>();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  return make_error(where + ": unsupported split behavior '" + name + "'");
}

// Turns (match or gap) segments into kept ranges the way Hugging Face's
// NormalizedString::split does for each behavior; removed ranges get `false`.
void apply_behavior(SplitBehavior behavior, std::vector<std::pair<Span, bool>>& splits) {
  using B = SplitBehavior;
  if (behavior == B::kRemoved) {
    for (auto& s : splits) s.second = !s.second;  // keep the gaps, drop the matches
    return;
  }
  std::vector<std::pair<Span, bool>> out;
  out.reserve(splits.size());
  bool previous_match = false;
  if (behavior == B::kMergedWithNext) {
    for (auto it = splits.rbegin(); it != splits.rend(); ++it) {
      if (it->second && !previous_match && !out.empty()) {
        out.back().first.begin = it->first.begin;
      } else {
        out.push_back({it->first, true});
      }
      previous_match = it->second;
    }
    splits.assign(out.rbegin(), out.rend());
    return;
  }
  for (const auto& [span, is_match] : splits) {
    const bool merge = behavior == B::kContiguous ? is_match == previous_match : (is_match && !previous_match);
    if (merge && !out.empty()) {
      out.back().first.end = span.end;
    } else {
      out.push_back({span, true});
    }
    previous_match = is_match;
  }
  splits.swap(out);
}

}  // namespace

Result<PreTokenizer::Step> PreTokenizer::parse_step(const json& spec, const std::string& where) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
    return make_error(where + ": expected an object with a string 'type'");
  }
  const auto type = spec["type"].get<std::string>();
  Step step;
  if (type == "Split") {
    LS_RETURN_IF_ERROR(check_keys(spec, {"type", "pattern", "behavior", "invert"}, where + " (Split)"));
    if (!spec.contains("pattern") || !spec["pattern"].is_object() || spec["pattern"].size() != 1) {
      return make_error(where + " (Split): 'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
    }
    const auto& pattern = spec["pattern"];
    std::string regex_source;
    if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
      regex_source = pattern["Regex"].get<std::string>();
    } else if (pattern.contains("String") && pattern["String"].is_string()) {
      regex_source = escape_literal(pattern["String"].get<std::string>());
    } else {
      return make_error(where + " (Split): unsupported pattern kind '" + pattern.begin().key() + "'");
    }
    LS_ASSIGN_OR_RETURN(Regex regex, Regex::compile(regex_source, where + " (Split)"));
    step.regex = std::make_shared<const Regex>(std::move(regex));
    if (!spec.contains("behavior")) return make_error(where + " (Split): missing 'behavior'");
    LS_ASSIGN_OR_RETURN(step.behavior, parse_behavior(spec["behavior"], where + " (Split)"));
    LS_ASSIGN_OR_RETURN(step.invert, get_bool(spec, "invert", false, where + " (Split)"));
    step.kind = Step::Kind::kSplit;
    return step;
  }
  if (type == "ByteLevel") {
    LS_RETURN_IF_ERROR(check_keys(spec, {"type", "add_prefix_space", "trim_offsets", "use_regex"}, where + " (ByteLevel)"));
    LS_ASSIGN_OR_RETURN(step.add_prefix_space, get_bool(spec, "add_prefix_space", true, where + " (ByteLevel)"));
    LS_ASSIGN_OR_RETURN(bool use_regex, get_bool(spec, "use_regex", true, where + " (ByteLevel)"));
    if (use_regex) {
      LS_ASSIGN_OR_RETURN(Regex regex, Regex::compile(kGpt2Pattern, where + " (ByteLevel)"));
      step.regex = std::make_shared<const Regex>(std::move(regex));
    }
    step.kind = Step::Kind::kByteLevel;
    step.behavior = SplitBehavior::kIsolated;
    return step;
  }
  return make_error(where + ": unsupported pre-tokenizer type '" + type + "'");
}

Result<PreTokenizer> PreTokenizer::from_json(const json& spec) {
  PreTokenizer pre;
  const std::string where = "pre_tokenizer";
  if (spec.is_null()) return pre;
  std::vector<std::pair<const json*, std::string>> specs;
  if (spec.is_object() && spec.value("type", "") == "Sequence") {
    LS_RETURN_IF_ERROR(check_keys(spec, {"type", "pretokenizers"}, where + " (Sequence)"));
    if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array()) {
      return make_error(where + " (Sequence): 'pretokenizers' must be an array");
    }
    for (size_t i = 0; i < spec["pretokenizers"].size(); ++i) {
      specs.push_back({&spec["pretokenizers"][i], where + ".pretokenizers[" + std::to_string(i) + "]"});
    }
  } else {
    specs.push_back({&spec, where});
  }
  for (const auto& [step_spec, step_where] : specs) {
    if (pre.byte_level_) {
      return make_error(step_where + ": a step after ByteLevel is not supported");
    }
    LS_ASSIGN_OR_RETURN(Step step, parse_step(*step_spec, step_where));
    pre.byte_level_ = step.kind == Step::Kind::kByteLevel;
    pre.steps_.push_back(std::move(step));
  }
  return pre;
}

Status PreTokenizer::apply(const Step& step, std::string_view piece, PreTokenizeScratch& scratch) const {
  if (step.kind == Step::Kind::kByteLevel) {
    if (step.add_prefix_space && piece.front() != ' ') {
      scratch.storage.push_back(" " + std::string(piece));
      piece = scratch.storage.back();
    }
    if (!step.regex) {
      scratch.next.push_back(piece);
      return ok_status();
    }
  }
  scratch.matches.clear();
  LS_RETURN_IF_ERROR(step.regex->find_all(piece, scratch.matches));
  if (step.behavior == SplitBehavior::kIsolated) {
    // Every match and every gap becomes a piece (invert only swaps which is which).
    uint32_t prev = 0;
    for (const Span& m : scratch.matches) {
      if (m.begin > prev) scratch.next.push_back(piece.substr(prev, m.begin - prev));
      if (m.end > m.begin) scratch.next.push_back(piece.substr(m.begin, m.end - m.begin));
      prev = m.end;
    }
    if (prev < piece.size()) scratch.next.push_back(piece.substr(prev));
    return ok_status();
  }
  auto& splits = scratch.splits;
  splits.clear();
  uint32_t prev = 0;
  for (const Span& m : scratch.matches) {
    if (m.begin != prev) splits.push_back({Span{prev, m.begin}, step.invert});
    splits.push_back({m, !step.invert});
    prev = m.end;
  }
  if (prev != piece.size()) splits.push_back({Span{prev, static_cast<uint32_t>(piece.size())}, step.invert});
  apply_behavior(step.behavior, splits);
  for (const auto& [span, keep] : splits) {
    if (keep && span.end > span.begin) scratch.next.push_back(piece.substr(span.begin, span.end - span.begin));
  }
  return ok_status();
}

Status PreTokenizer::split(std::string_view text, PreTokenizeScratch& scratch,
                           std::vector<std::string_view>& pieces) const {
  pieces.clear();
  scratch.storage.clear();
  if (text.empty()) return ok_status();
  pieces.push_back(text);
  for (const Step& step : steps_) {
    scratch.next.clear();
    for (std::string_view piece : pieces) LS_RETURN_IF_ERROR(apply(step, piece, scratch));
    pieces.swap(scratch.next);
  }
  return ok_status();
}

}  // namespace latentserve::engine::text
