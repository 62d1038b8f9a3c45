// The memory of the paged latent KV cache on the CPU: for each attention layer (main layers,
// then MTP layers), num_blocks × block_size tokens of kv_lora_rank + qk_rope_head_dim floats.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"
#include "kernels/cpu/attention.h"
#include "models/config.h"

namespace latentserve::models {

class LatentCacheStorage {
 public:
  // Fails (without throwing) when the memory cannot be allocated.
  static Result<LatentCacheStorage> allocate(const ModelConfig& config, int64_t num_layers,
                                             int64_t num_blocks, int64_t block_size);

  // Bytes one block takes over all layers; used to size the pool from a memory budget.
  static int64_t bytes_per_block(const ModelConfig& config, int64_t num_layers, int64_t block_size);

  kernels::cpu::LatentCache layer(int64_t i) const;
  int64_t num_layers() const { return num_layers_; }
  int64_t num_blocks() const { return num_blocks_; }
  int64_t block_size() const { return block_size_; }

 private:
  std::unique_ptr<float[]> data_;
  int64_t num_layers_ = 0;
  int64_t num_blocks_ = 0;
  int64_t block_size_ = 0;
  int64_t kv_lora_rank_ = 0;
  int64_t rope_dim_ = 0;
};

}  // namespace latentserve::models
