// The fixed-shape decode plan: work item i is (sequence, row tile, split) in that order, so a row
// tile's splits are contiguous and their partial slots equal their work indices.
#include "kernels/cuda/mla_fixed_plan.h"

#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_config.h"

namespace latentserve::kernels::cuda {

namespace {

namespace cfg = mla;

constexpr size_t kAlign = 256;
constexpr int kThreads = 128;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

int32_t row_tiles(int64_t heads) { return int32_t((heads + cfg::kRowsPerCta - 1) / cfg::kRowsPerCta); }

__global__ void fill_kernel(const int32_t* positions, int32_t num_work, int32_t tiles, int32_t splits,
                            int32_t heads, MlaWorkItem* work, MlaMergeItem* merges) {
  const int32_t i = int32_t(blockIdx.x) * kThreads + int32_t(threadIdx.x);
  if (i >= num_work) return;
  const int32_t s = i / (tiles * splits), t = (i / splits) % tiles, k = i % splits;
  const int32_t ctx = max(positions[s], 0) + 1;
  const int32_t kv_tiles = (ctx + cfg::kKeysPerTile - 1) / cfg::kKeysPerTile;
  const int32_t per_split = max((kv_tiles + splits - 1) / splits, cfg::kMinTilesPerSplit);
  const int32_t split_keys = per_split * cfg::kKeysPerTile;
  MlaWorkItem w;
  w.seq = s;
  w.query_start = s;
  w.query_len = 1;
  w.context_len = ctx;
  w.row_begin = t * cfg::kRowsPerCta;
  // k · split_keys may pass ctx: the split is then empty (kv_begin == kv_end).
  w.kv_begin = int32_t(min(int64_t(ctx), int64_t(k) * split_keys));
  w.kv_end = int32_t(min(int64_t(ctx), int64_t(k + 1) * split_keys));
  w.partial = splits > 1 ? i : -1;
  work[i] = w;
  if (splits > 1 && k == 0) {
    merges[i / splits] = MlaMergeItem{s, w.row_begin, min(cfg::kRowsPerCta, heads - w.row_begin), i, splits};
  }
}

Status check(const MlaFixedPlanShape& s) {
  if (s.num_sequences < 0 || s.heads < 1 || s.heads > (int64_t(1) << 24) || s.splits < 1 ||
      s.splits > kMlaFixedMaxSplits || s.max_context < 0) {
    return make_error("mla_fixed_plan: num_sequences=" + std::to_string(s.num_sequences) +
                      " heads=" + std::to_string(s.heads) + " splits=" + std::to_string(s.splits) +
                      " (1.." + std::to_string(kMlaFixedMaxSplits) + ") max_context=" +
                      std::to_string(s.max_context));
  }
  if (int64_t(s.num_sequences) * row_tiles(s.heads) * s.splits > INT32_MAX / 2) {
    return make_error("mla_fixed_plan: " + std::to_string(s.num_sequences) + " sequences × " +
                      std::to_string(s.splits) + " splits is too many work items");
  }
  return ok_status();
}

struct Sizes {
  int32_t work, merges, partials;
};

Sizes sizes(const MlaFixedPlanShape& s) {
  const int32_t tiles = s.num_sequences * row_tiles(s.heads);
  return {tiles * s.splits, s.splits > 1 ? tiles : 0, s.splits > 1 ? tiles * s.splits : 0};
}

}  // namespace

Result<int32_t> mla_fixed_plan_splits(int32_t num_sequences, int64_t heads, int num_sms) {
  if (num_sequences < 1 || heads < 1) {
    return make_error("mla_fixed_plan_splits: num_sequences=" + std::to_string(num_sequences) +
                      " heads=" + std::to_string(heads) + " must be positive");
  }
  if (num_sms <= 0) {
    int device = 0;
    LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    LS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  }
  const int64_t tiles = int64_t(num_sequences) * row_tiles(heads);
  return int32_t(std::max<int64_t>(1, std::min<int64_t>(kMlaFixedMaxSplits, num_sms / tiles)));
}

size_t mla_fixed_plan_workspace_bytes(const MlaFixedPlanShape& shape) {
  const Sizes n = sizes(shape);
  return align_up(size_t(n.work) * sizeof(MlaWorkItem)) + align_up(size_t(n.merges) * sizeof(MlaMergeItem)) +
         align_up(size_t(n.partials) * cfg::kRowsPerCta * sizeof(float)) +
         align_up(size_t(n.partials) * cfg::kRowsPerCta * cfg::kLatentDim * sizeof(float));
}

Result<MlaDevicePlan> mla_fixed_plan(const MlaFixedPlanShape& shape, const int32_t* positions,
                                     void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(shape));
  const size_t need = mla_fixed_plan_workspace_bytes(shape);
  if (workspace_bytes < need || !workspace || reinterpret_cast<uintptr_t>(workspace) % kAlign != 0) {
    return make_error("mla_fixed_plan: workspace of " + std::to_string(workspace_bytes) +
                      " bytes (256-byte aligned) needed " + std::to_string(need));
  }
  if (shape.num_sequences > 0 && !positions) return make_error("mla_fixed_plan: positions is null");
  const Sizes n = sizes(shape);
  char* base = static_cast<char*>(workspace);
  auto* work = reinterpret_cast<MlaWorkItem*>(base);
  base += align_up(size_t(n.work) * sizeof(MlaWorkItem));
  auto* merges = reinterpret_cast<MlaMergeItem*>(base);
  base += align_up(size_t(n.merges) * sizeof(MlaMergeItem));
  MlaDevicePlan d;
  d.work = work;
  d.merges = merges;
  d.partial_lse = reinterpret_cast<float*>(base);
  base += align_up(size_t(n.partials) * cfg::kRowsPerCta * sizeof(float));
  d.partial_out = reinterpret_cast<float*>(base);
  d.num_work = n.work;
  d.num_merges = n.merges;
  d.heads = shape.heads;
  d.num_tokens = shape.num_sequences;
  d.max_context = shape.max_context;
  if (n.work == 0) return d;
  const unsigned blocks = unsigned((n.work + kThreads - 1) / kThreads);
  fill_kernel<<<blocks, kThreads, 0, stream>>>(positions, n.work, row_tiles(shape.heads), shape.splits,
                                               int32_t(shape.heads), work, merges);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return d;
}

}  // namespace latentserve::kernels::cuda
