#include "models/json_util.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

namespace latentserve::models {
namespace {

// Scans brackets outside strings; the parser itself is iterative but values are not, so a
// hostile "[[[[..." must be refused before it becomes a deep tree.
bool depth_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace

Result<nlohmann::json> parse_json(std::string_view text, const std::string& source) {
  if (!depth_within(text, kMaxJsonDepth)) {
    return make_error(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                      " levels");
  }
  // One set of seen keys per open object; the callback sees keys in document order.
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                      nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) {
      keys_per_object.emplace_back();
    } else if (event == E::object_end) {
      if (!keys_per_object.empty()) keys_per_object.pop_back();
    } else if (event == E::key && !keys_per_object.empty() && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!keys_per_object.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), callback,
                                               /*allow_exceptions=*/false);
  if (value.is_discarded()) return make_error(source + ": malformed JSON");
  if (!duplicate.empty()) return make_error(source + ": key '" + duplicate + "' appears twice");
  return value;
}

Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return make_error(path + ": not found or not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(path + ": cannot open");
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return make_error(path + ": cannot determine size (not a regular file?)");
  if (uint64_t(size) > max_bytes) {
    return make_error(path + ": " + std::to_string(size) + " bytes, more than the limit of " +
                      std::to_string(max_bytes));
  }
  in.seekg(0, std::ios::beg);
  std::string text(size_t(size), '\0');
  if (!in.read(text.data(), size)) return make_error(path + ": read failed");
  return text;
}

std::string json_type_name(const nlohmann::json& value) {
  if (value.is_object()) return "object";
  if (value.is_array()) return "array";
  if (value.is_string()) return "string";
  if (value.is_number_integer()) return "integer";
  if (value.is_number()) return "number";
  if (value.is_boolean()) return "boolean";
  if (value.is_null()) return "null";
  return "unknown";
}

}  // namespace latentserve::models
