// Split-KV planning for the CUDA MLA attention: row tiles per sequence, then the shortest split
// length (in whole cache tiles) that still fits every split into one wave of thread blocks.
#include "kernels/cuda/mla_plan.h"

#include <algorithm>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_config.h"

namespace latentserve::kernels::cuda {

namespace {

namespace cfg = mla;

constexpr size_t kAlign = 256;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A tile of up to 64 query rows of one sequence and the causal context its last row sees.
struct RowTile {
  int32_t seq, row_begin, num_rows, kv_len, kv_tiles;
};

Status check_sequence(const MlaSequence& s, int32_t index, int64_t heads) {
  const std::string where = "mla_plan: sequence " + std::to_string(index) + ": ";
  if (s.query_start < 0 || s.query_len < 0) {
    return make_error(where + "negative query_start=" + std::to_string(s.query_start) +
                      " or query_len=" + std::to_string(s.query_len));
  }
  if (s.context_len < s.query_len) {
    return make_error(where + "context_len=" + std::to_string(s.context_len) +
                      " is shorter than query_len=" + std::to_string(s.query_len));
  }
  if (int64_t(s.query_len) * heads > INT32_MAX) {
    return make_error(where + "query_len × heads exceeds 2^31 rows");
  }
  return ok_status();
}

Result<std::vector<RowTile>> row_tiles(const MlaSequence* seqs, int32_t n, int64_t heads) {
  std::vector<RowTile> tiles;
  for (int32_t i = 0; i < n; ++i) {
    LS_RETURN_IF_ERROR(check_sequence(seqs[i], i, heads));
    const int64_t rows = int64_t(seqs[i].query_len) * heads;
    for (int64_t r = 0; r < rows; r += cfg::kRowsPerCta) {
      const int64_t last_token = (std::min(rows, r + cfg::kRowsPerCta) - 1) / heads;
      const int32_t kv_len = seqs[i].context_len - seqs[i].query_len + int32_t(last_token) + 1;
      tiles.push_back({i, int32_t(r), int32_t(std::min<int64_t>(cfg::kRowsPerCta, rows - r)),
                       kv_len, (kv_len + cfg::kKeysPerTile - 1) / cfg::kKeysPerTile});
    }
  }
  return tiles;
}

int64_t count_splits(const std::vector<RowTile>& tiles, int32_t tiles_per_split) {
  int64_t n = 0;
  for (const RowTile& t : tiles) n += (t.kv_tiles + tiles_per_split - 1) / tiles_per_split;
  return n;
}

// Smallest split length that keeps all thread blocks in one wave: long contexts then spread over
// the idle SMs, while a batch that fills the GPU on its own is never split.
int32_t auto_tiles_per_split(const std::vector<RowTile>& tiles, int num_sms) {
  int32_t max_tiles = 1;
  for (const RowTile& t : tiles) max_tiles = std::max(max_tiles, t.kv_tiles);
  int32_t lo = std::min(cfg::kMinTilesPerSplit, max_tiles), hi = max_tiles;
  if (count_splits(tiles, hi) >= num_sms) return hi;
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    if (count_splits(tiles, mid) <= num_sms) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return hi;
}

Result<int> resolve_num_sms(int requested) {
  if (requested > 0) return requested;
  int device = 0, sms = 0;
  LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  LS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

}  // namespace

size_t MlaPlan::workspace_bytes() const {
  return align_up(work.size() * sizeof(MlaWorkItem)) +
         align_up(merges.size() * sizeof(MlaMergeItem)) +
         align_up(size_t(num_partials) * cfg::kRowsPerCta * sizeof(float)) +
         align_up(size_t(num_partials) * cfg::kRowsPerCta * cfg::kLatentDim * sizeof(float));
}

Result<MlaPlan> mla_plan(const MlaSequence* sequences, int32_t num_sequences, int64_t heads,
                         const MlaPlanOptions& options) {
  if (heads < 1 || num_sequences < 0 || (num_sequences > 0 && !sequences)) {
    return make_error("mla_plan: need heads ≥ 1 and a sequence array, got heads=" +
                      std::to_string(heads) + " num_sequences=" + std::to_string(num_sequences));
  }
  if (options.tiles_per_split < 0) {
    return make_error("mla_plan: tiles_per_split=" + std::to_string(options.tiles_per_split) +
                      " must be ≥ 0");
  }
  LS_ASSIGN_OR_RETURN(std::vector<RowTile> tiles, row_tiles(sequences, num_sequences, heads));
  MlaPlan plan;
  plan.heads = heads;
  for (int32_t i = 0; i < num_sequences; ++i) {
    plan.num_tokens = std::max<int64_t>(plan.num_tokens,
                                        int64_t(sequences[i].query_start) + sequences[i].query_len);
    plan.max_context = std::max(plan.max_context, sequences[i].context_len);
  }
  int32_t per_split = options.tiles_per_split;
  if (per_split == 0) {
    LS_ASSIGN_OR_RETURN(const int sms, resolve_num_sms(options.num_sms));
    per_split = auto_tiles_per_split(tiles, sms);
  }
  const int32_t split_keys = per_split * cfg::kKeysPerTile;
  for (const RowTile& t : tiles) {
    const MlaSequence& s = sequences[t.seq];
    MlaWorkItem w{t.seq, s.query_start, s.query_len, s.context_len, t.row_begin, 0, t.kv_len, -1};
    const int32_t splits = (t.kv_tiles + per_split - 1) / per_split;
    if (splits <= 1) {
      plan.work.push_back(w);
      continue;
    }
    plan.merges.push_back({s.query_start, t.row_begin, t.num_rows, plan.num_partials, splits});
    for (int32_t k = 0; k < splits; ++k) {
      w.kv_begin = k * split_keys;
      w.kv_end = std::min(t.kv_len, (k + 1) * split_keys);
      w.partial = plan.num_partials++;
      plan.work.push_back(w);
    }
  }
  // Longest first, so that when there is more than one wave the short blocks fill the tail.
  std::stable_sort(plan.work.begin(), plan.work.end(), [](const MlaWorkItem& a, const MlaWorkItem& b) {
    return a.kv_end - a.kv_begin > b.kv_end - b.kv_begin;
  });
  return plan;
}

Result<MlaDevicePlan> mla_plan_upload(const MlaPlan& plan, void* workspace, size_t workspace_bytes,
                                      cudaStream_t stream) {
  const size_t need = plan.workspace_bytes();
  if (workspace_bytes < need || (need > 0 && !workspace)) {
    return make_error("mla_plan_upload: workspace of " + std::to_string(workspace_bytes) +
                      " bytes, the plan needs " + std::to_string(need));
  }
  if (reinterpret_cast<uintptr_t>(workspace) % kAlign != 0) {
    return make_error("mla_plan_upload: workspace must be 256-byte aligned");
  }
  char* base = static_cast<char*>(workspace);
  MlaDevicePlan d;
  d.work = reinterpret_cast<const MlaWorkItem*>(base);
  base += align_up(plan.work.size() * sizeof(MlaWorkItem));
  d.merges = reinterpret_cast<const MlaMergeItem*>(base);
  base += align_up(plan.merges.size() * sizeof(MlaMergeItem));
  d.partial_lse = reinterpret_cast<float*>(base);
  base += align_up(size_t(plan.num_partials) * cfg::kRowsPerCta * sizeof(float));
  d.partial_out = reinterpret_cast<float*>(base);
  d.num_work = int32_t(plan.work.size());
  d.num_merges = int32_t(plan.merges.size());
  d.heads = plan.heads;
  d.num_tokens = plan.num_tokens;
  d.max_context = plan.max_context;
  if (!plan.work.empty()) {
    LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(const_cast<MlaWorkItem*>(d.work), plan.work.data(),
                                            plan.work.size() * sizeof(MlaWorkItem),
                                            cudaMemcpyHostToDevice, stream));
  }
  if (!plan.merges.empty()) {
    LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(const_cast<MlaMergeItem*>(d.merges),
                                            plan.merges.data(),
                                            plan.merges.size() * sizeof(MlaMergeItem),
                                            cudaMemcpyHostToDevice, stream));
  }
  return d;
}

}  // namespace latentserve::kernels::cuda
