#include "models/safetensors_header.h"

#include <algorithm>
#include <cstring>

#include "models/json_util.h"

namespace latentserve::models {
namespace {

using nlohmann::json;

// No tensor may claim more elements than this; keeps numel * element size far from overflow.
constexpr uint64_t kMaxElements = uint64_t(1) << 56;

Result<std::vector<int64_t>> parse_shape(const json& shape, uint64_t& numel) {
  if (!shape.is_array()) return make_error("'shape' must be an array, got " + json_type_name(shape));
  if (shape.size() > 8) return make_error("'shape' has " + std::to_string(shape.size()) +
                                          " dimensions (at most 8 supported)");
  std::vector<int64_t> dims;
  numel = 1;
  for (const json& d : shape) {
    if (!d.is_number_unsigned()) {
      return make_error("'shape' entries must be non-negative integers, got " + d.dump());
    }
    uint64_t v = d.get<uint64_t>();
    if (v > kMaxElements) return make_error("'shape' dimension " + d.dump() + " is too large");
    uint64_t product = 0;
    if (__builtin_mul_overflow(numel, v, &product) || product > kMaxElements) {
      return make_error("'shape' " + shape.dump() + " has too many elements");
    }
    numel = product;
    dims.push_back(int64_t(v));
  }
  return dims;
}

Result<SafetensorsEntry> parse_entry(const std::string& name, const json& info,
                                     uint64_t data_size) {
  if (!info.is_object()) return make_error("expected an object, got " + json_type_name(info));
  for (const auto& [key, unused] : info.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return make_error("unexpected key '" + key + "'");
    }
  }
  if (!info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
    return make_error("needs 'dtype', 'shape' and 'data_offsets'");
  }
  const json& dtype = info["dtype"];
  if (!dtype.is_string()) return make_error("'dtype' must be a string");
  SafetensorsEntry e;
  e.name = name;
  LS_ASSIGN_OR_RETURN(e.dtype, parse_safetensors_dtype(dtype.get<std::string>()));
  uint64_t numel = 0;
  LS_ASSIGN_OR_RETURN(e.shape, parse_shape(info["shape"], numel));
  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return make_error("'data_offsets' must be [begin, end] of non-negative integers, got " +
                      offsets.dump());
  }
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  if (e.begin > e.end) return make_error("'data_offsets' " + offsets.dump() + ": begin > end");
  if (e.end > data_size) {
    return make_error("'data_offsets' " + offsets.dump() + " end beyond the data section (" +
                      std::to_string(data_size) + " bytes)");
  }
  const uint64_t expected = numel * dtype_size(e.dtype);
  if (e.end - e.begin != expected) {
    return make_error("holds " + std::to_string(e.end - e.begin) + " bytes but " +
                      std::string(dtype.get<std::string>()) + " " + info["shape"].dump() +
                      " needs " + std::to_string(expected));
  }
  return e;
}

Status check_disjoint(std::vector<SafetensorsEntry>& entries, const std::string& source) {
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : entries) {
    if (e.end > e.begin) by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end) {
      return make_error(source + ": tensors '" + by_offset[i - 1]->name + "' and '" +
                        by_offset[i]->name + "' overlap in the data section");
    }
  }
  return ok_status();
}

}  // namespace

Result<DType> parse_safetensors_dtype(std::string_view name) {
  static constexpr DType kSupported[] = {DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                                         DType::I32, DType::I64};
  for (DType t : kSupported) {
    if (safetensors_dtype_name(t) == name) return t;
  }
  static constexpr std::string_view kKnown[] = {"F64", "F8_E5M2", "F8_E8M0", "F6_E2M3",
                                                "F6_E3M2", "F4", "C64", "BOOL", "I8", "U8",
                                                "I16", "U16", "U32", "U64"};
  for (std::string_view k : kKnown) {
    if (k == name) return make_error("dtype " + std::string(name) + " not supported");
  }
  return make_error("unknown dtype '" + std::string(name.substr(0, 64)) + "'");
}

std::string_view safetensors_dtype_name(DType dtype) { return dtype_name(dtype); }

Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* file_bytes, uint64_t file_size,
                                                   const std::string& source) {
  if (file_size < 8) {
    return make_error(source + ": " + std::to_string(file_size) +
                      " bytes, too short for a safetensors file (needs an 8-byte header length)");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return make_error(source + ": header length " + std::to_string(header_len) +
                      " exceeds the limit of " + std::to_string(kMaxSafetensorsHeaderBytes));
  }
  if (header_len > file_size - 8) {
    return make_error(source + ": header length " + std::to_string(header_len) +
                      " runs past the end of the file (" + std::to_string(file_size) + " bytes)");
  }
  std::string_view text(reinterpret_cast<const char*>(file_bytes + 8), header_len);
  LS_ASSIGN_OR_RETURN(json header, parse_json(text, source + " header"));
  if (!header.is_object()) {
    return make_error(source + ": header is a JSON " + json_type_name(header) +
                      ", expected an object");
  }
  SafetensorsHeader out;
  out.data_start = 8 + header_len;
  const uint64_t data_size = file_size - out.data_start;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) return make_error(source + ": __metadata__ must be an object");
      for (const auto& [key, value] : info.items()) {
        if (!value.is_string()) {
          return make_error(source + ": __metadata__ value of '" + key + "' is not a string");
        }
      }
      continue;
    }
    auto entry = parse_entry(name, info, data_size);
    if (!entry.ok()) return entry.error().with_context(source + ": tensor '" + name + "'");
    out.entries.push_back(std::move(entry).value());
  }
  LS_RETURN_IF_ERROR(check_disjoint(out.entries, source));
  return out;
}

}  // namespace latentserve::models
