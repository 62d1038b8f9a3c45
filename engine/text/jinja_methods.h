// Python methods that chat templates call on strings and dicts (content.split('</think>'),
// message.get('reasoning_content'), tools.items(), ...), and the tag-preserving string operations
// that the filters share with them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

// The method `name` of `receiver` bound to it, or undefined when it has none.
Value bound_method(const Value& receiver, const std::string& name);

// Argument `index` (or keyword `name`) of a call, or `fallback` when absent.
Value call_arg(const CallArgs& args, size_t index, const char* name, Value fallback = Value());

// str.strip/lstrip/rstrip: `chars` none means whitespace.
TaggedString strip_string(const TaggedString& s, const std::optional<std::string>& chars, bool left, bool right);
// str.replace(old, new, count); count < 0 replaces all.
TaggedString replace_string(const TaggedString& s, const std::string& old, const TaggedString& replacement, int64_t count);
// str.split / str.rsplit: no separator splits on whitespace runs.
Result<std::vector<TaggedString>> split_string(const TaggedString& s, const std::optional<std::string>& sep,
                                               int64_t maxsplit, bool from_right);
// ASCII case mapping; other characters are left as they are.
TaggedString upper_string(const TaggedString& s);
TaggedString lower_string(const TaggedString& s);
TaggedString capitalize_string(const TaggedString& s);
TaggedString title_string(const TaggedString& s);

}  // namespace latentserve::engine::text::jinja
