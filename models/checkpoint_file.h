// The bytes of one checkpoint file in memory: a read-only mapping of the file (pages shared with
// the page cache, 4 KiB each), or a private copy in 2 MiB-aligned anonymous memory that the kernel
// may back with transparent huge pages, which decode's weight streaming reads faster.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"

namespace latentserve::models {

enum class WeightLoad {
  kMmap,  // map the files; nothing is copied, the page cache holds the weights
  kCopy,  // read the files into anonymous memory (huge pages where the kernel allows)
};

const char* weight_load_name(WeightLoad load);  // "mmap", "copy"

class CheckpointFile {
 public:
  // Errors name `path`: it cannot be opened, is not a regular file, cannot be mapped, memory for
  // the copy cannot be allocated, or reading it fails or ends early.
  static Result<std::unique_ptr<CheckpointFile>> open(const std::string& path, WeightLoad load);
  ~CheckpointFile();
  CheckpointFile(const CheckpointFile&) = delete;
  CheckpointFile& operator=(const CheckpointFile&) = delete;

  const uint8_t* data() const { return data_; }  // null for an empty file
  uint64_t size() const { return size_; }

 private:
  CheckpointFile() = default;

  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  size_t mapped_bytes_ = 0;  // what munmap releases: the file's size, or the rounded copy
};

}  // namespace latentserve::models
