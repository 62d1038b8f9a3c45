// Compile-time tiles of the CUDA MLA attention kernel (absorbed form over the paged latent cache).
// The latent and rope widths are fixed by the kernel's shared-memory layout; block_size is not.
#pragma once

namespace latentserve::kernels::cuda::mla {

constexpr int kLatentDim = 512;                 // kv_lora_rank: the value width and most of the key
constexpr int kRopeDim = 64;                    // qk_rope_head_dim: the rest of the key
constexpr int kQkDim = kLatentDim + kRopeDim;   // 576 numbers per cached token

constexpr int kRowsPerCta = 64;   // query rows (token, head) pairs per thread block
constexpr int kKeysPerTile = 64;  // cache tokens per pipeline stage
constexpr int kStages = 2;        // cache tiles in flight (cp.async double buffering)

constexpr int kWarps = 8;          // 4 row groups of 16 rows × 2 halves (of the keys, then of the values)
constexpr int kThreads = kWarps * 32;
constexpr int kRowGroups = kRowsPerCta / 16;
constexpr int kHalves = kWarps / kRowGroups;
static_assert(kRowGroups * kHalves == kWarps && kHalves == 2, "warp layout is 4 × 2");
constexpr int kKeysPerWarp = kKeysPerTile / kHalves;  // S columns each warp computes: 32
constexpr int kValuesPerWarp = kLatentDim / kHalves;  // O columns each warp owns: 256

// Shared memory: Q tile, kStages cache tiles (each row 576 BF16 = 72 chunks of 16 bytes, XOR
// swizzled so ldmatrix's 8 rows hit 8 different bank groups), P in BF16, softmax exchange.
constexpr int kChunksPerRow = kQkDim / 8;
static_assert(kChunksPerRow % 8 == 0, "the swizzle permutes chunks within groups of 8");
constexpr int kTileBytes = kRowsPerCta * kQkDim * 2;           // 73,728
constexpr int kCacheTileBytes = kKeysPerTile * kQkDim * 2;     // 73,728
constexpr int kPBytes = kRowsPerCta * kKeysPerTile * 2;        // 8,192
constexpr int kExchangeBytes = kHalves * kRowsPerCta * 4 * 2;  // row max, then row sum
constexpr int kSharedBytes = kTileBytes + kStages * kCacheTileBytes + kPBytes + kExchangeBytes;
static_assert(kSharedBytes <= 227 * 1024, "exceeds the opt-in shared memory of sm_90");

// Split-KV planning: a split never holds fewer cache tiles than this unless the sequence is
// shorter, so the partial outputs (64 rows × 512 FP32 each) stay small next to the cache read.
constexpr int kMinTilesPerSplit = 4;

// Merge kernel: one block per (row tile, row); each thread combines 4 of the 512 columns.
constexpr int kMergeThreads = kLatentDim / 4;

}  // namespace latentserve::kernels::cuda::mla
