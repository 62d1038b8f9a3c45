// Token permutation for the MoE layer on the GPU: groups the (token, k) assignments by expert so
// each expert's rows are contiguous (count, exclusive scan, stable scatter), and gathers the input
// rows into that order. The map it keeps, (token, k) → permuted row, is what the combine reads.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

// Device scratch moe_permute needs for `tokens * top_k` assignments over `num_experts` experts.
size_t moe_permute_scratch_bytes(int64_t tokens, int64_t top_k, int64_t num_experts);

struct MoePermuteParams {
  const int32_t* expert_ids = nullptr;  // [tokens, top_k]; ids outside [0, num_experts) are dropped
  int64_t tokens = 0;
  int64_t top_k = 0;
  int64_t num_experts = 0;  // ≤ 1024
  // [num_experts + 1]: expert e owns permuted rows [offsets[e], offsets[e + 1]); offsets[E] is the
  // number of permuted rows (tokens · top_k unless ids were dropped).
  int32_t* offsets = nullptr;
  int32_t* source_token = nullptr;  // [tokens * top_k]: the token each permuted row comes from
  int32_t* permuted_row = nullptr;  // [tokens, top_k]: where (t, k) went; -1 for a dropped id
  void* scratch = nullptr;          // moe_permute_scratch_bytes(tokens, top_k, num_experts) bytes
  size_t scratch_bytes = 0;
};

// Within an expert, rows keep the order of (t, k), so the result does not depend on timing.
// Enqueues on `stream`; checks the parameters and the launches, not completion.
Status moe_permute(const MoePermuteParams& p, cudaStream_t stream);

struct MoeGatherParams {
  const void* x = nullptr;  // [tokens, hidden] dtype, row stride ldx elements
  int64_t ldx = 0;
  DType dtype = DType::BF16;              // BF16 or F32
  const int32_t* source_token = nullptr;  // [max_rows] from moe_permute
  const int32_t* row_count = nullptr;     // device scalar (offsets + num_experts), ≤ max_rows
  void* out = nullptr;                    // [max_rows, hidden] dtype, row stride ldo elements
  int64_t ldo = 0;
  int64_t max_rows = 0;  // tokens · top_k
  int64_t hidden = 0;
};

// out[r] = x[source_token[r]] for r < *row_count; rows past it are left untouched.
Status moe_gather(const MoeGatherParams& p, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
