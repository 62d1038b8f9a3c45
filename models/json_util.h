// Bounded, exception-free JSON parsing for files read from disk (config.json, safetensors
// headers, index files): nesting depth and duplicate object keys are checked before use.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace latentserve::models {

// Deeper nesting than any file we read needs; rejecting it keeps parsing and destruction shallow.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; errors (naming `source`) for malformed JSON, nesting beyond kMaxJsonDepth, or an
// object holding the same key twice (a silent "last one wins" would hide a broken file).
Result<nlohmann::json> parse_json(std::string_view text, const std::string& source);

// Reads a whole file of at most `max_bytes` bytes.
Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes);

// "object", "array", "string", "integer", "number", "boolean", "null": for error messages.
std::string json_type_name(const nlohmann::json& value);

}  // namespace latentserve::models
