// A decode plan for the CUDA MLA attention (mla_decode.h) whose shape depends only on the number
// of sequences, the head count and a split count, never on the context lengths: a small kernel
// writes the work list on the device from each sequence's position, so a captured CUDA graph can
// be replayed step after step while the contexts grow.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "common/result.h"
#include "kernels/cuda/mla_plan.h"

namespace latentserve::kernels::cuda {

// Every sequence has one query token (decode). Its row tiles (ceil(heads/64)) are each cut into
// `splits` runs of whole 64-token cache tiles, at least kMinTilesPerSplit long, derived from the
// context on the device; splits past the end of a short context are empty and write a partial
// the merge ignores.
struct MlaFixedPlanShape {
  int32_t num_sequences = 0;
  int64_t heads = 0;
  int32_t splits = 1;       // 1: no split, no merge
  int32_t max_context = 0;  // the longest context the block tables can hold (for mla_attention's check)
};

// Splits that fill one wave of `num_sms` thread blocks with num_sequences' row tiles (at least 1,
// at most kMlaFixedMaxSplits). num_sms 0: the current device's SM count.
inline constexpr int32_t kMlaFixedMaxSplits = 64;
Result<int32_t> mla_fixed_plan_splits(int32_t num_sequences, int64_t heads, int num_sms = 0);

// Device bytes of the work and merge lists and the partial outputs.
size_t mla_fixed_plan_workspace_bytes(const MlaFixedPlanShape& shape);

// positions: [num_sequences] device int32, each sequence's query position (= context_len - 1).
// Enqueues the kernel that fills the lists in `workspace` (256-byte aligned, at least
// mla_fixed_plan_workspace_bytes) and returns the plan; its pointers and sizes are the same for
// every call with the same shape and workspace.
Result<MlaDevicePlan> mla_fixed_plan(const MlaFixedPlanShape& shape, const int32_t* positions,
                                     void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
