// A Hugging Face safetensors checkpoint (one file or shards with model.safetensors.index.json),
// memory-mapped and validated before use. Tensors are views into the mapped files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::models {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mapped file, valid while the Checkpoint lives
  size_t nbytes = 0;
  std::string file;  // shard file name, for error messages

  int64_t numel() const;
  std::string shape_string() const;  // "[96, 256]"
};

class MappedFile;

class Checkpoint {
 public:
  Checkpoint();
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  // Opens DIR/model.safetensors.index.json (sharded) or DIR/model.safetensors (or the only
  // *.safetensors file). Every header is validated; tensors may not overlap or leave the file.
  static Result<Checkpoint> open(const std::string& model_dir);
  // Opens a single .safetensors file.
  static Result<Checkpoint> open_file(const std::string& path);

  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, TensorInfo, std::less<>>& tensors() const { return tensors_; }

 private:
  // Every tensor comes through the index's weight_map; see checkpoint.cpp for the rules.
  static Result<Checkpoint> open_sharded(const std::string& model_dir,
                                         const std::string& index_path);

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
};

}  // namespace latentserve::models
