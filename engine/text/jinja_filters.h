// The filters (`x | tojson`) and tests (`x is defined`) that chat templates use, with Jinja2's
// semantics. The parser asks which names exist so unknown ones fail when a template is loaded.
#pragma once

#include <string>

#include "common/result.h"
#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);

Result<Value> apply_filter(const std::string& name, const Value& input, const CallArgs& args);
Result<bool> apply_test(const std::string& name, const Value& input, const CallArgs& args);

// Items of an iterable as Jinja iterates them: list items, dict keys, string characters;
// undefined gives nothing. Errors for values that are not iterable.
Result<List> iterate(const Value& v);
// Python's `item in container` for strings (substring), lists, dicts (keys) and undefined (false).
Result<bool> contains(const Value& container, const Value& item);
// Looks up a dotted attribute path ("function.name") the way filters like map and selectattr do.
Value lookup_path(const Value& v, const std::string& path);

}  // namespace latentserve::engine::text::jinja
