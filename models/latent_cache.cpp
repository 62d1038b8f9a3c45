#include "models/latent_cache.h"

#include <new>
#include <string>

namespace latentserve::models {

int64_t LatentCacheStorage::bytes_per_block(const ModelConfig& config, int64_t num_layers,
                                            int64_t block_size) {
  return num_layers * block_size * (config.kv_lora_rank + config.qk_rope_head_dim) *
         int64_t(sizeof(float));
}

Result<LatentCacheStorage> LatentCacheStorage::allocate(const ModelConfig& config,
                                                        int64_t num_layers, int64_t num_blocks,
                                                        int64_t block_size) {
  if (num_layers < 1 || num_blocks < 1 || block_size < 1) {
    return make_error("latent cache: layers, blocks and block size must be positive (got " +
                      std::to_string(num_layers) + ", " + std::to_string(num_blocks) + ", " +
                      std::to_string(block_size) + ")");
  }
  LatentCacheStorage s;
  s.num_layers_ = num_layers;
  s.num_blocks_ = num_blocks;
  s.block_size_ = block_size;
  s.kv_lora_rank_ = config.kv_lora_rank;
  s.rope_dim_ = config.qk_rope_head_dim;
  const int64_t floats = num_layers * num_blocks * block_size * (s.kv_lora_rank_ + s.rope_dim_);
  s.data_.reset(new (std::nothrow) float[floats]);
  if (!s.data_) {
    return make_error("latent cache: cannot allocate " + std::to_string(floats * 4) + " bytes for " +
                      std::to_string(num_blocks) + " blocks");
  }
  return s;
}

kernels::cpu::LatentCache LatentCacheStorage::layer(int64_t i) const {
  kernels::cpu::LatentCache c;
  const int64_t per_layer = num_blocks_ * block_size_ * (kv_lora_rank_ + rope_dim_);
  c.data = data_.get() + i * per_layer;
  c.num_blocks = num_blocks_;
  c.block_size = block_size_;
  c.kv_lora_rank = kv_lora_rank_;
  c.rope_dim = rope_dim_;
  return c;
}

}  // namespace latentserve::models
