// Serializes template values to JSON exactly as Python's json.dumps does inside Hugging Face's
// `tojson` filter (ensure_ascii off by default, ", "/": " separators, optional indent), keeping
// the input tags of every string so serialized message content stays marked as input.
#pragma once

#include <string>

#include "common/result.h"
#include "engine/text/jinja_value.h"

namespace latentserve::engine::text::jinja {

struct JsonOptions {
  int indent = -1;  // < 0: one line
  bool ensure_ascii = false;
  bool sort_keys = false;
  std::string item_separator;  // empty: Python's default (", " or "," with indent)
  std::string key_separator;   // empty: ": "
};

Result<TaggedString> to_json(const Value& value, const JsonOptions& options);

}  // namespace latentserve::engine::text::jinja
