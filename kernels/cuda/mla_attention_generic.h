// MLA attention in the absorbed form for latent and rope widths the tensor-core kernel
// (mla_decode.h, fixed at 512 + 64) does not take, e.g. small test models: one warp per (token,
// head), online softmax over the paged BF16 cache. Same semantics as kernels/cpu/attention.h's
// mla_attention_absorbed_reference; every per-step length is read from device memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

// Widths this kernel takes (each lane holds latent/32 and rope/32 values of a row).
inline constexpr int64_t kMlaGenericMaxLatent = 1024;
inline constexpr int64_t kMlaGenericMaxRope = 128;

struct MlaGenericParams {
  const void* q_latent = nullptr;  // [num_tokens, heads, kv_lora_rank] BF16, q_nope · W_UK per head
  const void* q_rope = nullptr;    // [num_tokens, heads, rope_dim] BF16, rotated
  const void* cache = nullptr;     // [num_blocks, block_size, kv_lora_rank + rope_dim] BF16
  const int32_t* block_tables = nullptr;    // [num_sequences, block_table_stride]
  const int32_t* token_sequence = nullptr;  // [num_tokens] row of block_tables of each token
  // [num_tokens] position of each token; it attends to cache positions 0..positions[t]. Block ids
  // outside [0, num_blocks) are skipped, not read.
  const int32_t* positions = nullptr;
  void* out = nullptr;  // [num_tokens, heads, kv_lora_rank] out_dtype (F32 or BF16)
  DType out_dtype = DType::BF16;
  int64_t num_tokens = 0;
  int64_t heads = 0;
  int64_t kv_lora_rank = 0;  // ≤ kMlaGenericMaxLatent
  int64_t rope_dim = 0;      // ≤ kMlaGenericMaxRope
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t block_table_stride = 0;
  float softmax_scale = 1.0f;
};

// Enqueues on `stream`; checks the parameters and the launch, not completion.
Status mla_attention_generic(const MlaGenericParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
