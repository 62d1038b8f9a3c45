// Multi-head Latent Attention on the GPU in the absorbed form, over the paged BF16 latent cache:
// decode (1 query token per sequence), speculative verification (1+K tokens) and prefill with a
// cached prefix all run through this one kernel; semantics are those of
// kernels/cpu/attention.h's mla_attention_absorbed_reference.
//
// Design
// - Rows, not heads: a sequence's queries are flattened to rows r = token * heads + head and cut
//   into tiles of 64 rows (mla_config.h). All rows share the sequence's latent cache, so one thread
//   block reads each 64-token cache tile once for 64 rows; with 128 heads a decode token is two
//   blocks (the second finds the tile in L2), a prefill chunk of n tokens is 2n blocks, and the
//   causal limit of each row (position = context_len - query_len + token) is applied per row.
// - Tensor cores: S = Q·Kᵀ (64×64, K = 576) and O += P·V (64×512, K = 64) with BF16 mma.sync
//   m16n8k16, FP32 accumulation, ldmatrix from an XOR-swizzled shared-memory layout. Eight warps:
//   four row groups of 16 rows × two halves. For S each half takes 32 of the 64 keys; the halves
//   swap row maxima through shared memory, write P (BF16) there, and for O each half owns 256 of
//   the 512 value columns (128 FP32 accumulators per thread), so no product is computed twice.
// - Memory: Q (72 KiB) stays in shared memory; cache tiles (72 KiB each) are double-buffered with
//   cp.async so the next tile loads while the current one is multiplied. Block tables are read
//   per token, so any block_size works.
// - Softmax in FP32, online (running max and sum per row, in the log2 domain).
// - Split-KV, planned on the host once per step (mla_plan.h): if the row tiles alone leave SMs
//   idle, each tile's context is cut into equal runs of whole cache tiles, the shortest run that
//   still fits every block into one wave (at least kMinTilesPerSplit tiles). Splits write their
//   normalized output and log-sum-exp to the workspace; a merge kernel combines them. A tile that
//   is not split writes the output directly. The plan holds every per-step length, so a layer's
//   call passes only tensors and is safe to capture in a CUDA graph; for replaying one graph over
//   many decode steps, mla_fixed_plan.h writes a plan of fixed shape on the device instead.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"
#include "kernels/cuda/mla_plan.h"

namespace latentserve::kernels::cuda {

struct MlaAttentionParams {
  const void* q_latent = nullptr;      // [num_tokens, heads, 512] BF16, q_nope · W_UK per head
  const void* q_rope = nullptr;        // [num_tokens, heads, 64]  BF16, rotated
  const void* cache = nullptr;         // [num_blocks, block_size, 576] BF16: latent | rotated k_pe
  const int32_t* block_tables = nullptr;  // [num_sequences, block_table_stride] physical block ids
  void* out = nullptr;                 // [num_tokens, heads, 512] out_dtype (F32 or BF16)
  DType out_dtype = DType::F32;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t block_table_stride = 0;      // ≥ ceil(max context_len / block_size)
  int64_t heads = 0;                   // must equal the plan's
  float softmax_scale = 1.0f;
};

// Enqueues the attention (and the split merge when the plan has splits) on `stream`. Every
// pointer must be 16-byte aligned device memory; checks the parameters and the launches.
Status mla_attention(const MlaAttentionParams& p, const MlaDevicePlan& plan, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
