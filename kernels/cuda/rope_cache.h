// RoPE on the GPU as DeepSeek-V3 applies it (interleaved pairs, kernels/cpu/rope.h), for the
// query's rope part and while writing a step's latents into the paged BF16 MLA cache.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

// Rotates in place, for each row r and head h, the pairs (x[2i], x[2i+1]), i < rotary_dim / 2, of
//   x + r * ld + h * head_stride
// by angle float(positions[r]) * inv_freq[i] (FP32), cos and sin scaled by cos_sin_factor.
struct RopeInterleavedParams {
  void* x = nullptr;                   // [rows, ld] dtype F32 or BF16, heads at head_stride
  DType dtype = DType::F32;
  const int32_t* positions = nullptr;  // [rows]
  const float* inv_freq = nullptr;     // [rotary_dim / 2] (kernels/cpu/rope.h: rope_inv_freq)
  int64_t rows = 0;
  int64_t ld = 0;
  int64_t heads = 0;
  int64_t head_stride = 0;
  int64_t rotary_dim = 0;  // even
  float cos_sin_factor = 1.0f;
};

Status rope_interleaved(const RopeInterleavedParams& p, cudaStream_t stream);

// Writes token i's [latent | RoPE(k_pe)] to cache slot slot_mapping[i] (skipped when negative) in
// BF16. The latent is already normalized (kv_a_layernorm); k_pe is rotated here, at positions[i].
struct MlaCacheWriteParams {
  const void* kv = nullptr;               // [num_tokens, ld_kv] kv_dtype: latent | k_pe (unrotated)
  DType kv_dtype = DType::F32;            // F32 or BF16
  const int32_t* positions = nullptr;     // [num_tokens]
  const int64_t* slot_mapping = nullptr;  // [num_tokens] block * block_size + offset, < 0: padding
  const float* inv_freq = nullptr;        // [rope_dim / 2]
  void* cache = nullptr;                  // [num_blocks, block_size, kv_lora_rank + rope_dim] BF16
  int64_t num_tokens = 0;
  int64_t ld_kv = 0;  // ≥ kv_lora_rank + rope_dim
  int64_t kv_lora_rank = 0;
  int64_t rope_dim = 0;  // even
  float cos_sin_factor = 1.0f;
};

Status mla_write_latent_cache(const MlaCacheWriteParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
