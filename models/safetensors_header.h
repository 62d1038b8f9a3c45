// Parsing and validation of one safetensors file's header: the 8-byte length, the JSON table
// of tensors, and the byte ranges they claim inside the data section.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::models {

// Headers larger than this are refused before anything is allocated for them.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length: where the data section begins in the file
  std::vector<SafetensorsEntry> entries;
};

// The dtype named in a header. Known but unsupported names (F64, I8, BOOL, F8_E5M2, ...) and
// unknown names are errors that say which.
Result<DType> parse_safetensors_dtype(std::string_view name);
std::string_view safetensors_dtype_name(DType dtype);

// Validates `file_bytes` (the whole file, e.g. a mapping) as a safetensors file: header length
// within the file and at most kMaxSafetensorsHeaderBytes, a JSON object of well-formed entries,
// unique names, sizes matching dtype x shape, ranges inside the data section and disjoint.
// `source` names the file in error messages.
Result<SafetensorsHeader> parse_safetensors_header(const uint8_t* file_bytes, uint64_t file_size,
                                                   const std::string& source);

}  // namespace latentserve::models
