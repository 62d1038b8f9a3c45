// Writes safetensors files: a header laid out up front from names, dtypes and shapes, then each
// tensor's bytes written at its place in any order, in pieces if large (so nothing big is held).
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::models {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  // Writes the header for `tensors`, stored in the given order (callers put wider element types
  // first so every tensor stays aligned), padded with spaces to a multiple of 8 bytes.
  static Result<SafetensorsWriter> create(const std::string& path, std::vector<TensorSpec> tensors,
                                          const std::map<std::string, std::string>& metadata = {
                                              {"format", "pt"}});

  // Writes `nbytes` of tensor `name` starting `offset` bytes into that tensor.
  Status write(std::string_view name, uint64_t offset, const void* data, uint64_t nbytes);
  // Fails unless every byte of every tensor was written (each piece once).
  Status finish();

 private:
  struct Slot {
    uint64_t begin = 0;  // in the data section
    uint64_t nbytes = 0;
    uint64_t written = 0;
  };
  std::string path_;
  std::ofstream out_;
  uint64_t data_start_ = 0;
  std::map<std::string, Slot, std::less<>> slots_;
};

// Small files in one call (tests): each tensor with all its bytes.
struct TensorBytes {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};
Status write_safetensors(const std::string& path, const std::vector<TensorBytes>& tensors);

}  // namespace latentserve::models
