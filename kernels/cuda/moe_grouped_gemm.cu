// The grouped expert GEMM (see moe_grouped_gemm.h for the tiling, the FP8 choice and the tile
// scheduler). Fragment layouts are those of PTX mma.m16n8k16 (.row.col, BF16 in, FP32
// accumulate), loaded with ldmatrix from XOR-swizzled tiles (mla_mma.cuh). Eight warps split
// the 128×128 block tile 2 (M) × 4 (N), 64×32 outputs each.
#include "kernels/cuda/moe_grouped_gemm.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <climits>
#include <string>
#include <type_traits>

#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_mma.cuh"
#include "kernels/cuda/moe_layer.h"
#include "kernels/cuda/moe_router.h"
#include "kernels/cuda/quantize.h"

namespace latentserve::kernels::cuda {
namespace {

using mla::cp_async_16;
using mla::cp_async_commit;
using mla::cp_async_wait;
using mla::ldmatrix_x4;
using mla::mma_bf16_16816;
using mla::smem_addr;
using mla::swizzled;

constexpr int kThreads = 256;
constexpr int kBM = int(kMoeGemmTileM), kBN = int(kMoeGemmTileN), kBK = 64;
constexpr int kStages = 3;
constexpr int kChunks = kBK / 8;           // 16-byte BF16 chunks per tile row
constexpr int kTileBytes = kBM * kBK * 2;  // one BF16 tile (A, or B when BF16)
constexpr int kRawBytes = kBN * kBK;       // one FP8 B tile as loaded
constexpr int kMaxExperts = int(kMoeMaxExperts);
constexpr int kPrefixBytes = ((kMaxExperts + 1) * 4 + 127) / 128 * 128;
static_assert(kMaxExperts % kThreads == 0, "the prefix scan gives each thread whole experts");
static_assert(kBM * kChunks == 4 * kThreads && kBN * (kBK / 16) == 2 * kThreads,
              "loaders give each thread 4 A/B BF16 chunks and 2 FP8 chunks per k-tile");

template <class TW>
constexpr int smem_bytes() {
  return std::is_same<TW, uint8_t>::value
             ? kPrefixBytes + kStages * (kTileBytes + kRawBytes) + kTileBytes
             : kPrefixBytes + kStages * 2 * kTileBytes;
}

struct Args {
  const MoeExpertWeights* experts;
  bool down;
  int num_experts;
  const int32_t* offsets;
  const __nv_bfloat16* a;
  int64_t lda;
  const int32_t* a_rows;
  int64_t n, k;
  int n_tiles;
  void* y;
  bool y_f32;
  bool y_pairs;  // two adjacent outputs can be stored as one aligned pair
  int64_t ldy;
  bool a_vec;    // A rows load as 16-byte chunks
  bool b_vec;    // so do weight rows, when the expert's matrix is 16-byte aligned
};

// s_prefix[e] = Σ_{e' < e} tiles(e'), s_prefix[E] = all tiles, tiles(e) = ceil(rows_e/kBM)·n_tiles.
__device__ void build_prefix(const Args& a, int* s_prefix, int* s_warp) {
  constexpr int kPer = kMaxExperts / kThreads;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  int c[kPer], sum = 0;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = tid * kPer + j;
    const int rows = e < a.num_experts ? max(0, a.offsets[e + 1] - a.offsets[e]) : 0;
    c[j] = (rows + kBM - 1) / kBM * a.n_tiles;
    sum += c[j];
  }
  int incl = sum;
#pragma unroll
  for (int o = 1; o < 32; o *= 2) {
    const int v = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += v;
  }
  if (lane == 31) s_warp[warp] = incl;
  __syncthreads();
  int run = incl - sum;
  for (int w = 0; w < warp; ++w) run += s_warp[w];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int e = tid * kPer + j;
    if (e < a.num_experts) s_prefix[e] = run;
    run += c[j];
  }
  if (tid == kThreads - 1) s_prefix[a.num_experts] = run;
  __syncthreads();
}

struct Tile {
  int expert;
  int first;   // the expert's first permuted row
  int count;   // its rows
  int m0;      // the tile's first row within the expert
  int n_tile;
};

__device__ __forceinline__ Tile decode(const Args& a, const int* s_prefix, int t) {
  int lo = 0, hi = a.num_experts - 1;  // the last expert whose tiles start at or before t
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (s_prefix[mid] <= t) lo = mid; else hi = mid - 1;
  }
  Tile tile;
  tile.expert = lo;
  tile.first = a.offsets[lo];
  tile.count = a.offsets[lo + 1] - tile.first;
  const int m_tiles = (tile.count + kBM - 1) / kBM;
  const int local = t - s_prefix[lo];
  tile.n_tile = local / m_tiles;
  tile.m0 = (local % m_tiles) * kBM;
  return tile;
}

// The weight row behind row t of the block's B tile, or -1 past the matrix. kSiluMul tiles take
// 8 gate rows, then the matching 8 up rows, and so on.
template <bool kSilu>
__device__ __forceinline__ int64_t weight_row(const Args& a, int n_tile, int t) {
  if (kSilu) {
    const int64_t width = a.n / 2;
    const int64_t j = int64_t(n_tile) * (kBN / 2) + (t / 16) * 8 + t % 8;
    if (j >= width) return -1;
    return (t % 16 >= 8 ? width : 0) + j;
  }
  const int64_t j = int64_t(n_tile) * kBN + t;
  return j < a.n ? j : -1;
}

// 8 BF16 values (k0 .. k0 + 7 of `src`) into a 16-byte shared chunk, zero past k or when !valid.
__device__ __forceinline__ void load_chunk_bf16(char* dst, const __nv_bfloat16* src, int64_t k0,
                                                int64_t k, bool valid, bool vec) {
  if (vec) {
    const bool in = valid && k0 < k;
    cp_async_16(smem_addr(dst), in ? src + k0 : src, in);
    return;
  }
  alignas(16) __nv_bfloat16 v[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = valid && k0 + i < k ? src[k0 + i] : __float2bfloat16(0.0f);
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
}

// 16 FP8 values into a 16-byte shared chunk, as load_chunk_bf16.
__device__ __forceinline__ void load_chunk_fp8(char* dst, const uint8_t* src, int64_t k0, int64_t k,
                                               bool valid, bool vec) {
  if (vec) {
    const bool in = valid && k0 < k;
    cp_async_16(smem_addr(dst), in ? src + k0 : src, in);
    return;
  }
  alignas(16) uint8_t v[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) v[i] = valid && k0 + i < k ? src[k0 + i] : uint8_t(0);
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(v);
}

// The rows this thread loads for the current tile: 4 A rows and 4 (BF16) or 2 (FP8) weight rows,
// null when the row is past the expert's rows or the matrix.
template <class TW>
struct Rows {
  const __nv_bfloat16* a[4];
  const TW* b[4];
  const float* scale[2];  // FP8: each weight row's block-scale row
  const TW* b_base;       // the expert's matrix: a 16-byte aligned address for an empty copy
  bool b_vec;
};

template <class TW, bool kSilu>
__device__ __forceinline__ Rows<TW> tile_rows(const Args& a, const Tile& tile) {
  Rows<TW> r;
  const MoeExpertWeights& ew = a.experts[tile.expert];
  const TW* w = static_cast<const TW*>(a.down ? ew.down : ew.gate_up);
  const float* scales = a.down ? ew.down_scales : ew.gate_up_scales;
  r.b_base = w;
  r.b_vec = a.b_vec && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const int tid = threadIdx.x;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int row = tid / kChunks + i * (kThreads / kChunks);
    const int m = tile.m0 + row;
    if (m < tile.count) {
      const int32_t p = tile.first + m;
      r.a[i] = a.a + int64_t(a.a_rows ? a.a_rows[p] : p) * a.lda;
    } else {
      r.a[i] = nullptr;
    }
  }
  constexpr bool kFp8 = std::is_same<TW, uint8_t>::value;
  constexpr int kBRows = kFp8 ? 2 : 4, kBPerRow = kFp8 ? kBK / 16 : kChunks;
  const int64_t sld = weight_scale_ld(a.k);
#pragma unroll
  for (int i = 0; i < kBRows; ++i) {
    const int64_t n = weight_row<kSilu>(a, tile.n_tile, tid / kBPerRow + i * (kThreads / kBPerRow));
    r.b[i] = n >= 0 ? w + n * a.k : nullptr;
    if (kFp8) r.scale[i] = n >= 0 ? scales + (n / kFp8Group) * sld : nullptr;
  }
  return r;
}

// Issues the loads of k-tile kt into stage buffers sa (A) and sb (B: BF16 tile or raw FP8).
template <class TW>
__device__ __forceinline__ void load_stage(const Args& a, const Rows<TW>& r, int kt, char* sa,
                                           char* sb) {
  const int tid = threadIdx.x;
  const int64_t k0 = int64_t(kt) * kBK;
  {
    const int c = tid % kChunks;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = tid / kChunks + i * (kThreads / kChunks);
      load_chunk_bf16(sa + swizzled(row, c, kChunks), r.a[i] ? r.a[i] : a.a, k0 + c * 8, a.k,
                      r.a[i] != nullptr, a.a_vec);
    }
  }
  if constexpr (std::is_same<TW, uint8_t>::value) {
    const int c = tid % (kBK / 16);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = tid / (kBK / 16) + i * (kThreads / (kBK / 16));
      load_chunk_fp8(sb + row * kBK + c * 16, r.b[i] ? r.b[i] : r.b_base,
                     k0 + c * 16, a.k, r.b[i] != nullptr, r.b_vec);
    }
  } else {
    const int c = tid % kChunks;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = tid / kChunks + i * (kThreads / kChunks);
      load_chunk_bf16(sb + swizzled(row, c, kChunks), r.b[i] ? r.b[i] : r.b_base, k0 + c * 8, a.k,
                      r.b[i] != nullptr, r.b_vec);
    }
  }
}

__device__ __forceinline__ uint32_t widen_pair(uint16_t two, float s) {
  const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(two, __NV_E4M3)));
  const __nv_bfloat162 b = __floats2bfloat162_rn(f.x * s, f.y * s);
  return *reinterpret_cast<const uint32_t*>(&b);
}

// The raw FP8 k-tile kt → the swizzled BF16 tile, each weight times its 128×128 block's scale
// (a 64-wide k-tile lies inside one 128-wide block). Each thread converts the chunks it loaded.
__device__ __forceinline__ void widen_stage(const Rows<uint8_t>& r, int kt, const char* raw,
                                            char* sb) {
  const int tid = threadIdx.x, c = tid % (kBK / 16);
  const int kb = kt * kBK / int(kFp8Group);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = tid / (kBK / 16) + i * (kThreads / (kBK / 16));
    const float s = r.scale[i] ? r.scale[i][kb] : 0.0f;
    const uint4 q = *reinterpret_cast<const uint4*>(raw + row * kBK + c * 16);
    const uint32_t words[4] = {q.x, q.y, q.z, q.w};
    uint32_t out[8];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      out[2 * j] = widen_pair(uint16_t(words[j] & 0xffffu), s);
      out[2 * j + 1] = widen_pair(uint16_t(words[j] >> 16), s);
    }
    *reinterpret_cast<uint4*>(sb + swizzled(row, 2 * c, kChunks)) =
        make_uint4(out[0], out[1], out[2], out[3]);
    *reinterpret_cast<uint4*>(sb + swizzled(row, 2 * c + 1, kChunks)) =
        make_uint4(out[4], out[5], out[6], out[7]);
  }
}

// acc (this warp's 64×32) += A tile (its 64 rows) · B tile (its 32 rows)ᵀ over one k-tile.
__device__ __forceinline__ void mma_stage(const char* sa, const char* sb, float (&acc)[4][4][4]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = warp / 4, wn = warp % 4;
#pragma unroll
  for (int ks = 0; ks < kBK / 16; ++ks) {
    uint32_t af[4][4], bf[2][4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
      const int row = wm * 64 + mi * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
      ldmatrix_x4(af[mi], smem_addr(sa + swizzled(row, ks * 2 + lane / 16, kChunks)));
    }
#pragma unroll
    for (int nj = 0; nj < 2; ++nj) {
      const int row = wn * 32 + nj * 16 + (lane % 8) + (lane / 16) * 8;
      ldmatrix_x4(bf[nj], smem_addr(sb + swizzled(row, ks * 2 + (lane / 8) % 2, kChunks)));
    }
#pragma unroll
    for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) {
        mma_bf16_16816(acc[mi][2 * nj], af[mi], bf[nj][0], bf[nj][1]);
        mma_bf16_16816(acc[mi][2 * nj + 1], af[mi], bf[nj][2], bf[nj][3]);
      }
    }
  }
}

// y[row, col], y[row, col + 1] = v0, v1, the second only when col + 1 < cols.
__device__ __forceinline__ void store2(const Args& a, int64_t row, int64_t col, int64_t cols,
                                       float v0, float v1) {
  if (col >= cols) return;
  const int64_t at = row * a.ldy + col;
  const bool pair = a.y_pairs && col + 1 < cols;
  if (a.y_f32) {
    float* y = static_cast<float*>(a.y) + at;
    if (pair) {
      *reinterpret_cast<float2*>(y) = make_float2(v0, v1);
    } else {
      y[0] = v0;
      if (col + 1 < cols) y[1] = v1;
    }
  } else {
    __nv_bfloat16* y = static_cast<__nv_bfloat16*>(a.y) + at;
    if (pair) {
      *reinterpret_cast<__nv_bfloat162*>(y) = __floats2bfloat162_rn(v0, v1);
    } else {
      y[0] = __float2bfloat16_rn(v0);
      if (col + 1 < cols) y[1] = __float2bfloat16_rn(v1);
    }
  }
}

__device__ __forceinline__ float silu_mul(float g, float u) {
  return g / (1.0f + expf(-g)) * u;
}

template <bool kSilu>
__device__ __forceinline__ void epilogue(const Args& a, const Tile& tile, float (&acc)[4][4][4]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int wm = warp / 4, wn = warp % 4, g = lane / 4, tig = lane % 4;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = tile.m0 + wm * 64 + mi * 16 + g + 8 * h;
      if (m >= tile.count) continue;
      const int64_t row = int64_t(tile.first) + m;
      if (kSilu) {
#pragma unroll
        for (int p = 0; p < 2; ++p) {
          const int64_t col = int64_t(tile.n_tile) * (kBN / 2) + wn * 16 + p * 8 + 2 * tig;
          const float* gate = acc[mi][2 * p];
          const float* up = acc[mi][2 * p + 1];
          store2(a, row, col, a.n / 2, silu_mul(gate[2 * h], up[2 * h]),
                 silu_mul(gate[2 * h + 1], up[2 * h + 1]));
        }
      } else {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
          const int64_t col = int64_t(tile.n_tile) * kBN + wn * 32 + ni * 8 + 2 * tig;
          store2(a, row, col, a.n, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
        }
      }
    }
  }
}

template <class TW, bool kSilu>
__global__ void __launch_bounds__(kThreads, 2) grouped_gemm_kernel(const Args a) {
  extern __shared__ __align__(128) char smem[];
  constexpr bool kFp8 = std::is_same<TW, uint8_t>::value;
  constexpr int kBStage = kFp8 ? kRawBytes : kTileBytes;
  int* s_prefix = reinterpret_cast<int*>(smem);
  __shared__ int s_warp[kThreads / 32];
  char* sa = smem + kPrefixBytes;
  char* sb = sa + kStages * kTileBytes;
  char* sb_wide = sb + kStages * kBStage;  // FP8 only: the widened BF16 tile

  build_prefix(a, s_prefix, s_warp);
  const int total = s_prefix[a.num_experts];
  const int kt_count = int((a.k + kBK - 1) / kBK);
  for (int64_t t = blockIdx.x; t < total; t += gridDim.x) {
    const Tile tile = decode(a, s_prefix, int(t));
    const Rows<TW> rows = tile_rows<TW, kSilu>(a, tile);
    float acc[4][4][4];
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
      for (int ni = 0; ni < 4; ++ni)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[mi][ni][i] = 0.0f;

#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (s < kt_count) load_stage(a, rows, s, sa + s * kTileBytes, sb + s * kBStage);
      cp_async_commit();
    }
    for (int kt = 0; kt < kt_count; ++kt) {
      cp_async_wait<kStages - 2>();
      __syncthreads();  // k-tile kt has landed for everyone; k-tile kt - 1 is no longer read
      const int next = kt + kStages - 1;
      if (next < kt_count) {
        const int s = next % kStages;
        load_stage(a, rows, next, sa + s * kTileBytes, sb + s * kBStage);
      }
      cp_async_commit();
      const int s = kt % kStages;
      if constexpr (kFp8) {
        widen_stage(rows, kt, sb + s * kBStage, sb_wide);
        __syncthreads();
        mma_stage(sa + s * kTileBytes, sb_wide, acc);
      } else {
        mma_stage(sa + s * kTileBytes, sb + s * kBStage, acc);
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the next tile's first loads may overwrite every stage
    epilogue<kSilu>(a, tile, acc);
  }
}

Status check(const MoeGroupedGemmParams& p) {
  const std::string where = "moe_grouped_gemm: ";
  if (p.w_dtype != DType::BF16 && p.w_dtype != DType::F8_E4M3) {
    return make_error(where + "weight dtype " + std::string(dtype_name(p.w_dtype)) +
                      " is not supported (BF16 or F8_E4M3)");
  }
  if (p.y_dtype != DType::BF16 && p.y_dtype != DType::F32) {
    return make_error(where + "y dtype " + std::string(dtype_name(p.y_dtype)) +
                      " is not supported (BF16 or F32)");
  }
  const bool silu = p.epilogue == MoeGemmEpilogue::kSiluMul;
  const int64_t out_cols = silu ? p.n / 2 : p.n;
  if (p.num_experts < 1 || p.num_experts > kMoeMaxExperts || p.max_rows < 0 ||
      p.max_rows > INT_MAX || p.n < 1 || p.k < 1 || p.lda < p.k || p.ldy < out_cols ||
      (silu && p.n % 2 != 0)) {
    return make_error(where + "num_experts=" + std::to_string(p.num_experts) + " (1.." +
                      std::to_string(kMoeMaxExperts) + "), max_rows=" + std::to_string(p.max_rows) +
                      ", n=" + std::to_string(p.n) + (silu ? " (even for kSiluMul)" : "") +
                      ", k=" + std::to_string(p.k) + ", lda=" + std::to_string(p.lda) +
                      " (≥ k), ldy=" + std::to_string(p.ldy) + " (≥ " + std::to_string(out_cols) +
                      ")");
  }
  if (p.max_rows > 0 && (!p.experts || !p.offsets || !p.a || !p.y)) {
    return make_error(where + "experts, offsets, a and y must be device pointers, got null");
  }
  return ok_status();
}

template <class TW, bool kSilu>
Status launch(const MoeGroupedGemmParams& p, const Args& a, int64_t tile_bound,
              cudaStream_t stream) {
  const auto kernel = grouped_gemm_kernel<TW, kSilu>;
  constexpr int bytes = smem_bytes<TW>();
  int device = 0, sms = 0, per_sm = 0;
  LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  LS_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  // Always the same size for a kernel, so a graph captured earlier never sees it change.
  LS_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  LS_CUDA_RETURN_IF_ERROR(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, bytes));
  if (per_sm < 1) {
    return make_error("moe_grouped_gemm: the kernel (" + std::to_string(bytes) +
                      " bytes of shared memory, " + std::to_string(kThreads) +
                      " threads) does not fit on an SM of this device");
  }
  const int64_t grid = std::min<int64_t>(tile_bound, int64_t(sms) * per_sm);
  kernel<<<unsigned(grid), kThreads, bytes, stream>>>(a);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return ok_status();
}

}  // namespace

Status moe_grouped_gemm(const MoeGroupedGemmParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.max_rows == 0) return ok_status();
  const bool silu = p.epilogue == MoeGemmEpilogue::kSiluMul;
  const bool fp8 = p.w_dtype == DType::F8_E4M3;
  const int64_t n_tiles = silu ? ceil_div(p.n / 2, kBN / 2) : ceil_div(p.n, kBN);
  // Σ_e ceil(rows_e/kBM) ≤ ceil(max_rows/kBM) + the experts that can have a partial tile.
  const int64_t tile_bound =
      (ceil_div(p.max_rows, kBM) + std::min(p.num_experts, p.max_rows)) * n_tiles;
  if (tile_bound > INT_MAX) {
    return make_error("moe_grouped_gemm: up to " + std::to_string(tile_bound) +
                      " tiles do not fit the int32 tile index (max_rows=" +
                      std::to_string(p.max_rows) + ", n=" + std::to_string(p.n) + ")");
  }
  const size_t y_size = p.y_dtype == DType::F32 ? 4 : 2;
  Args a;
  a.experts = p.experts;
  a.down = p.weight == MoeGemmWeight::kDown;
  a.num_experts = int(p.num_experts);
  a.offsets = p.offsets;
  a.a = static_cast<const __nv_bfloat16*>(p.a);
  a.lda = p.lda;
  a.a_rows = p.a_rows;
  a.n = p.n;
  a.k = p.k;
  a.n_tiles = int(n_tiles);
  a.y = p.y;
  a.y_f32 = p.y_dtype == DType::F32;
  a.y_pairs = p.ldy % 2 == 0 && reinterpret_cast<uintptr_t>(p.y) % (2 * y_size) == 0;
  a.ldy = p.ldy;
  a.a_vec = p.k % 8 == 0 && p.lda % 8 == 0 && reinterpret_cast<uintptr_t>(p.a) % 16 == 0;
  a.b_vec = p.k % (fp8 ? 16 : 8) == 0;
  if (fp8) {
    return silu ? launch<uint8_t, true>(p, a, tile_bound, stream)
                : launch<uint8_t, false>(p, a, tile_bound, stream);
  }
  return silu ? launch<__nv_bfloat16, true>(p, a, tile_bound, stream)
              : launch<__nv_bfloat16, false>(p, a, tile_bound, stream);
}

}  // namespace latentserve::kernels::cuda
