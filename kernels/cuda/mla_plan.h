// Host-side plan of the CUDA MLA attention (mla_decode.h): which thread block computes which query
// rows over which cache range, and how split-KV partial results are merged. Built once per step
// from the batch's lengths, uploaded once, reused by every layer (the kernels only read it).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/result.h"

namespace latentserve::kernels::cuda {

// One sequence's share of the step, as in kernels/cpu/attention.h: query tokens are rows
// [query_start, query_start + query_len) at positions context_len - query_len + i.
struct MlaSequence {
  int32_t query_start = 0;
  int32_t query_len = 0;
  int32_t context_len = 0;  // tokens in the cache after this step (≥ query_len)
};

// One thread block's work: query rows [row_begin, row_begin + 64) of a sequence, where row
// r = token_in_sequence * heads + head, against cache positions [kv_begin, kv_end).
struct MlaWorkItem {
  int32_t seq = 0;          // row of block_tables
  int32_t query_start = 0;  // the sequence's first query token
  int32_t query_len = 0;
  int32_t context_len = 0;
  int32_t row_begin = 0;
  int32_t kv_begin = 0;
  int32_t kv_end = 0;
  int32_t partial = -1;  // -1: the only split, writes the output; else its slot in the partials
};

// Combines the splits of one row tile: partials [first_partial, first_partial + num_splits).
struct MlaMergeItem {
  int32_t query_start = 0;
  int32_t row_begin = 0;
  int32_t num_rows = 0;  // ≤ 64 valid rows in the tile
  int32_t first_partial = 0;
  int32_t num_splits = 0;
};

struct MlaPlanOptions {
  int num_sms = 0;          // thread blocks that run at once; 0: the current device's SM count
  int tiles_per_split = 0;  // split length in 64-token cache tiles; 0: chosen to fill the GPU
};

struct MlaPlan {
  int64_t heads = 0;
  int64_t num_tokens = 0;    // rows of q / out the batch covers (max query_start + query_len)
  int32_t max_context = 0;   // longest context_len, to check block-table widths
  int32_t num_partials = 0;  // split outputs held in the workspace
  std::vector<MlaWorkItem> work;
  std::vector<MlaMergeItem> merges;

  // Device bytes mla_plan_upload needs: the work and merge lists plus the partial outputs.
  size_t workspace_bytes() const;
};

// Splits every sequence's rows into tiles of 64 and, when the tiles alone leave SMs idle, each
// tile's causal context into equal runs of whole 64-token tiles (see mla_decode.h).
Result<MlaPlan> mla_plan(const MlaSequence* sequences, int32_t num_sequences, int64_t heads,
                         const MlaPlanOptions& options);

// What the kernels read; every pointer lies in the caller's workspace.
struct MlaDevicePlan {
  const MlaWorkItem* work = nullptr;    // [num_work]
  const MlaMergeItem* merges = nullptr; // [num_merges]
  float* partial_lse = nullptr;         // [num_partials, 64]       log2-sum-exp of each row
  float* partial_out = nullptr;         // [num_partials, 64, 512]  each split's normalized output
  int32_t num_work = 0;
  int32_t num_merges = 0;
  int64_t heads = 0;
  int64_t num_tokens = 0;
  int32_t max_context = 0;
};

// Copies the lists into `workspace` (device memory of at least plan.workspace_bytes(), 256-byte
// aligned) on `stream`; the host plan may be destroyed once this returns.
Result<MlaDevicePlan> mla_plan_upload(const MlaPlan& plan, void* workspace, size_t workspace_bytes,
                                      cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
