// Permutation kernels. The assignments are cut into chunks of kChunk, one warp per chunk:
//   1. count: each warp counts its chunk per expert (shared-memory histogram);
//   2. scan: one block turns the per-chunk counts into each chunk's first row per expert and the
//      experts' offsets (exclusive scans over chunks, then over experts);
//   3. scatter: each warp walks its chunk 32 entries at a time; lanes holding the same expert find
//      each other with __match_any_sync and take consecutive rows in lane order.
// No global atomics: every row lands in the same place on every run.
#include "kernels/cuda/moe_permute.h"

#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_router.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int64_t kChunk = 1024;
constexpr int kWarps = 4;
constexpr unsigned kFull = 0xffffffffu;

int64_t chunks_for(int64_t assignments) {
  return (assignments + kChunk - 1) / kChunk;
}

__global__ void __launch_bounds__(kWarps * 32)
    count_kernel(const int32_t* __restrict__ ids, int64_t n, int experts, int64_t chunks,
                 int32_t* __restrict__ chunk_counts) {
  extern __shared__ int32_t hist_all[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t chunk = int64_t(blockIdx.x) * kWarps + warp;
  if (chunk >= chunks) return;
  int32_t* hist = hist_all + size_t(warp) * experts;
  for (int e = lane; e < experts; e += 32) hist[e] = 0;
  __syncwarp();
  const int64_t end = min(n, (chunk + 1) * kChunk);
  for (int64_t i = chunk * kChunk + lane; i < end; i += 32) {
    const int32_t e = ids[i];
    if (e >= 0 && e < experts) atomicAdd(&hist[e], 1);
  }
  __syncwarp();
  for (int e = lane; e < experts; e += 32) chunk_counts[chunk * experts + e] = hist[e];
}

// One block of `experts` threads (rounded up to a warp multiple, ≤ 1024).
__global__ void scan_kernel(int32_t* __restrict__ chunk_counts, int64_t chunks, int experts,
                            int32_t* __restrict__ offsets) {
  __shared__ int32_t warp_totals[32];
  const int e = threadIdx.x, lane = e % 32, warp = e / 32;
  int32_t total = 0;
  if (e < experts) {
    for (int64_t c = 0; c < chunks; ++c) {
      const int32_t v = chunk_counts[c * experts + e];
      chunk_counts[c * experts + e] = total;  // rows of expert e in the chunks before c
      total += v;
    }
  }
  // Exclusive scan of the totals over experts: within warps, then over warp sums.
  int32_t incl = total;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const int32_t v = __shfl_up_sync(kFull, incl, off);
    if (lane >= off) incl += v;
  }
  if (lane == 31) warp_totals[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = (blockDim.x + 31) / 32;
    int32_t w = lane < nwarps ? warp_totals[lane] : 0;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const int32_t v = __shfl_up_sync(kFull, w, off);
      if (lane >= off) w += v;
    }
    if (lane < nwarps) warp_totals[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  const int32_t start = (warp > 0 ? warp_totals[warp - 1] : 0) + incl - total;
  if (e < experts) {
    offsets[e] = start;
    for (int64_t c = 0; c < chunks; ++c) chunk_counts[c * experts + e] += start;
  }
  if (e == experts - 1) offsets[experts] = start + total;
}

__global__ void __launch_bounds__(kWarps * 32)
    scatter_kernel(const int32_t* __restrict__ ids, int64_t n, int top_k, int experts,
                   int64_t chunks, const int32_t* __restrict__ chunk_base,
                   int32_t* __restrict__ source_token, int32_t* __restrict__ permuted_row) {
  extern __shared__ int32_t base_all[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t chunk = int64_t(blockIdx.x) * kWarps + warp;
  if (chunk >= chunks) return;
  int32_t* base = base_all + size_t(warp) * experts;
  for (int e = lane; e < experts; e += 32) base[e] = chunk_base[chunk * experts + e];
  __syncwarp();
  const unsigned below = (1u << lane) - 1u;
  const int64_t end = min(n, (chunk + 1) * kChunk);
  for (int64_t i0 = chunk * kChunk; i0 < end; i0 += 32) {
    const int64_t i = i0 + lane;
    const int32_t raw = i < end ? ids[i] : -1;
    const bool valid = raw >= 0 && raw < experts;
    const int32_t e = valid ? raw : -1;
    const unsigned peers = __match_any_sync(kFull, e);
    int32_t pos = -1;
    if (valid) pos = base[e] + __popc(peers & below);
    __syncwarp();
    if (valid && lane == __ffs(peers) - 1) base[e] += __popc(peers);
    __syncwarp();
    if (i < end) {
      permuted_row[i] = pos;
      if (valid) source_token[pos] = int32_t(i / top_k);
    }
  }
}

template <class Unit>
__global__ void gather_kernel(const char* __restrict__ x, int64_t ldx_bytes,
                              const int32_t* __restrict__ source_token,
                              const int32_t* __restrict__ row_count, char* __restrict__ out,
                              int64_t ldo_bytes, int64_t units_per_row) {
  const int64_t r = blockIdx.x;
  if (r >= *row_count) return;
  const Unit* src = reinterpret_cast<const Unit*>(x + int64_t(source_token[r]) * ldx_bytes);
  Unit* dst = reinterpret_cast<Unit*>(out + r * ldo_bytes);
  for (int64_t j = threadIdx.x; j < units_per_row; j += blockDim.x) dst[j] = src[j];
}

Status check_permute(const MoePermuteParams& p) {
  const std::string where = "cuda moe_permute: ";
  if (p.tokens < 0 || p.top_k < 1 || p.num_experts < 1 || p.num_experts > kMoeMaxExperts) {
    return make_error(where + "need tokens ≥ 0, top_k ≥ 1 and num_experts in [1, " +
                      std::to_string(kMoeMaxExperts) + "], got tokens=" +
                      std::to_string(p.tokens) + " top_k=" + std::to_string(p.top_k) +
                      " num_experts=" + std::to_string(p.num_experts));
  }
  if (p.tokens * p.top_k > 0x7fffffff) {
    return make_error(where + "tokens·top_k=" + std::to_string(p.tokens * p.top_k) +
                      " does not fit the int32 row indices");
  }
  const size_t need = moe_permute_scratch_bytes(p.tokens, p.top_k, p.num_experts);
  if (p.scratch_bytes < need) {
    return make_error(where + "scratch of " + std::to_string(p.scratch_bytes) +
                      " bytes, need " + std::to_string(need));
  }
  if (!p.offsets || (p.tokens > 0 && (!p.expert_ids || !p.source_token || !p.permuted_row ||
                                      !p.scratch))) {
    return make_error(where + "expert_ids, offsets, source_token, permuted_row and scratch must "
                              "be device pointers, got null");
  }
  return ok_status();
}

}  // namespace

size_t moe_permute_scratch_bytes(int64_t tokens, int64_t top_k, int64_t num_experts) {
  if (tokens <= 0 || top_k <= 0 || num_experts <= 0) return 0;
  return size_t(chunks_for(tokens * top_k) * num_experts) * sizeof(int32_t);
}

Status moe_permute(const MoePermuteParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check_permute(p));
  const int experts = int(p.num_experts);
  if (p.tokens == 0) {
    return LS_CUDA_CHECK(
        cudaMemsetAsync(p.offsets, 0, size_t(experts + 1) * sizeof(int32_t), stream));
  }
  const int64_t n = p.tokens * p.top_k, chunks = chunks_for(n);
  const unsigned grid = unsigned((chunks + kWarps - 1) / kWarps);
  const size_t smem = size_t(kWarps) * size_t(experts) * sizeof(int32_t);
  auto* chunk_counts = static_cast<int32_t*>(p.scratch);
  count_kernel<<<grid, kWarps * 32, smem, stream>>>(p.expert_ids, n, experts, chunks, chunk_counts);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const unsigned scan_threads = unsigned((experts + 31) / 32 * 32);
  scan_kernel<<<1, scan_threads, 0, stream>>>(chunk_counts, chunks, experts, p.offsets);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  scatter_kernel<<<grid, kWarps * 32, smem, stream>>>(p.expert_ids, n, int(p.top_k), experts,
                                                      chunks, chunk_counts, p.source_token,
                                                      p.permuted_row);
  return LS_CUDA_CHECK(cudaGetLastError());
}

Status moe_gather(const MoeGatherParams& p, cudaStream_t stream) {
  const std::string where = "cuda moe_gather: ";
  if (p.dtype != DType::BF16 && p.dtype != DType::F32) {
    return make_error(where + "dtype " + std::string(dtype_name(p.dtype)) +
                      " is not supported (BF16 or F32)");
  }
  if (p.max_rows < 0 || p.hidden < 0 || p.ldx < p.hidden || p.ldo < p.hidden) {
    return make_error(where + "bad shape max_rows=" + std::to_string(p.max_rows) +
                      " hidden=" + std::to_string(p.hidden) + " ldx=" + std::to_string(p.ldx) +
                      " ldo=" + std::to_string(p.ldo));
  }
  if (p.max_rows > 0x7fffffff) return make_error(where + "max_rows exceeds the grid limit");
  if (p.max_rows == 0 || p.hidden == 0) return ok_status();
  if (!p.x || !p.source_token || !p.row_count || !p.out) {
    return make_error(where + "x, source_token, row_count and out must be device pointers");
  }
  const int64_t es = int64_t(dtype_size(p.dtype));
  const int64_t row_bytes = p.hidden * es, ldx_b = p.ldx * es, ldo_b = p.ldo * es;
  const auto aligned = [&](int64_t a) {
    return reinterpret_cast<uintptr_t>(p.x) % a == 0 && reinterpret_cast<uintptr_t>(p.out) % a == 0 &&
           row_bytes % a == 0 && ldx_b % a == 0 && ldo_b % a == 0;
  };
  const auto* x = static_cast<const char*>(p.x);
  auto* out = static_cast<char*>(p.out);
  const unsigned grid = unsigned(p.max_rows);
  if (aligned(16)) {
    gather_kernel<uint4><<<grid, 128, 0, stream>>>(x, ldx_b, p.source_token, p.row_count, out,
                                                   ldo_b, row_bytes / 16);
  } else if (aligned(4)) {
    gather_kernel<uint32_t><<<grid, 128, 0, stream>>>(x, ldx_b, p.source_token, p.row_count, out,
                                                      ldo_b, row_bytes / 4);
  } else {
    gather_kernel<uint16_t><<<grid, 128, 0, stream>>>(x, ldx_b, p.source_token, p.row_count, out,
                                                      ldo_b, row_bytes / 2);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
