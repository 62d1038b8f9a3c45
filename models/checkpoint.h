// A Hugging Face safetensors checkpoint (one file or shards with model.safetensors.index.json),
// memory-mapped or copied into memory, and validated before use. Tensors are views into the
// files' bytes, which the Checkpoint owns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"
#include "models/checkpoint_file.h"

namespace latentserve::models {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the file's bytes, valid while the Checkpoint lives
  size_t nbytes = 0;
  std::string file;  // shard file name, for error messages

  int64_t numel() const;
  std::string shape_string() const;  // "[96, 256]"
};

class Checkpoint {
 public:
  Checkpoint();
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  // Opens DIR/model.safetensors.index.json (sharded) or DIR/model.safetensors (or the only
  // *.safetensors file). Every header is validated; tensors may not overlap or leave the file.
  // `load` says whether the files are mapped or copied (see checkpoint_file.h); the validation
  // and the tensors' bytes are the same either way.
  static Result<Checkpoint> open(const std::string& model_dir, WeightLoad load = WeightLoad::kMmap);
  // Opens a single .safetensors file.
  static Result<Checkpoint> open_file(const std::string& path, WeightLoad load = WeightLoad::kMmap);

  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, TensorInfo, std::less<>>& tensors() const { return tensors_; }

 private:
  // Every tensor comes through the index's weight_map; see checkpoint.cpp for the rules.
  static Result<Checkpoint> open_sharded(const std::string& model_dir,
                                         const std::string& index_path, WeightLoad load);

  std::vector<std::unique_ptr<CheckpointFile>> files_;
  std::map<std::string, TensorInfo, std::less<>> tensors_;
};

}  // namespace latentserve::models
