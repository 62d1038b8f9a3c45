// The routed experts' GEMMs of a MoE layer for prefill-sized batches: one launch multiplies every
// expert's permuted rows by that expert's weight, reading the per-expert row offsets from device
// memory, so nothing waits on the host and a CUDA graph can capture it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

struct MoeExpertWeights;  // moe_layer.h

// Which matrix of each expert's MoeExpertWeights the GEMM multiplies by.
enum class MoeGemmWeight {
  kGateUp,  // [2·width, hidden] (+ its block scales)
  kDown,    // [hidden, width]
};

enum class MoeGemmEpilogue {
  kStore,    // y[r, j] = Σ_k a[r, k] · W[j, k] for j < n
  kSiluMul,  // y[r, j] = silu(g_j) · u_j for j < n/2, g_j = row j of W, u_j = row n/2 + j
};

struct MoeGroupedGemmParams {
  DType w_dtype = DType::BF16;  // BF16, or F8_E4M3 with 128×128 block scales
  // [num_experts] in device memory. Expert e's matrix is [n, k], row-major and contiguous; FP8
  // scales are [ceil(n/128), weight_scale_ld(k)] (quantize.h's Fp8BlockWeight layout).
  const MoeExpertWeights* experts = nullptr;
  MoeGemmWeight weight = MoeGemmWeight::kGateUp;
  int64_t num_experts = 0;  // ≤ kMoeMaxExperts
  // [num_experts + 1] in device memory (moe_permute): expert e owns permuted rows
  // [offsets[e], offsets[e + 1]); offsets[num_experts] ≤ max_rows.
  const int32_t* offsets = nullptr;
  int64_t max_rows = 0;  // the most permuted rows there can be (tokens · top_k); sizes the grid
  // A: permuted row r reads row a_rows[r] of `a` (a gather fused into the load, e.g. moe_permute's
  // source_token), or row r when a_rows is null. BF16, row stride lda elements.
  const void* a = nullptr;
  int64_t lda = 0;
  const int32_t* a_rows = nullptr;  // [max_rows] or null
  int64_t n = 0;                    // rows of the weight (output features; 2·width for kSiluMul)
  int64_t k = 0;                    // columns of the weight (input features)
  MoeGemmEpilogue epilogue = MoeGemmEpilogue::kStore;
  // [max_rows, n] (kStore) or [max_rows, n/2] (kSiluMul), y_dtype BF16 or F32, row stride ldy
  // elements; row r is permuted row r, rows past offsets[num_experts] are left untouched.
  void* y = nullptr;
  DType y_dtype = DType::BF16;
  int64_t ldy = 0;
};

// Tiling. A 128×128 output tile per thread block (kSiluMul: 64 gate and the matching 64 up rows
// of W, interleaved by 8 so each warp holds both factors of its outputs), 64-wide k-tiles in a
// three-stage cp.async pipeline, BF16 tensor cores (mma.sync m16n8k16, FP32 accumulate).
//
// FP8 weights are widened to BF16 in shared memory, one k-tile at a time, with their block scale
// multiplied in (the product rounded to BF16, a relative error ≤ 2⁻⁹ per weight). Chosen over FP8
// tensor cores because the activations then stay BF16 (no per-token quantization pass and its
// error, no per-128-k rescaling of the accumulators, which would double their registers), both
// dtypes share one main loop, and the weights still travel from memory as FP8. Its cost: the
// tensor-core rate is the BF16 one; the benchmark (benchmarks/gpu/moe_layer_bench.cu) measures
// what that gives against the FP8 dense GEMM.
//
// Scheduling: a persistent grid walks a global tile index over (expert, N-tile, M-tile). Each
// block first turns the device-side offsets into a prefix over experts of their tile counts
// (ceil(rows/128) · N-tiles) in shared memory, then finds a tile's expert by binary search. An
// expert's M-tiles for one N-tile are adjacent, so blocks running together share its weight
// tile through L2. The grid depends only on max_rows, the shapes and the device.
inline constexpr int64_t kMoeGemmTileM = 128;
inline constexpr int64_t kMoeGemmTileN = 128;

// Checks the parameters and enqueues the one kernel on `stream` (not its completion). Any n, k ≥ 1
// work. Rows load as 16-byte cp.async chunks when they allow it (A: k and lda multiples of 8, `a`
// 16-byte aligned; weights: k a multiple of 8 for BF16, 16 for FP8, each matrix 16-byte aligned),
// element by element otherwise (slow; for odd test shapes).
Status moe_grouped_gemm(const MoeGroupedGemmParams& p, cudaStream_t stream);

// The plain CPU twin for tests: the same products with the weights (FP8: fp8 · scale, as float)
// and activations widened to float, summed in double; y is F32 [max_rows, n or n/2] with row
// stride ldy. `experts` is the host copy of the table (pointers into host memory), `offsets`,
// `a_rows` host arrays.
void moe_grouped_gemm_reference(const MoeGroupedGemmParams& p, const MoeExpertWeights* experts,
                                const int32_t* offsets, const uint16_t* a, const int32_t* a_rows,
                                float* y);

}  // namespace latentserve::kernels::cuda
