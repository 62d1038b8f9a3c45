// The MLA attention kernel (one thread block per plan work item) and the split-KV merge kernel.
// Fragment layouts are those of PTX mma.m16n8k16 (.row.col, BF16 in, FP32 accumulate); see
// mla_decode.h for the tiling and mla_mma.cuh for the shared-memory and tensor-core helpers.
#include "kernels/cuda/mla_decode.h"

#include <cuda_bf16.h>

#include <cmath>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_config.h"
#include "kernels/cuda/mla_mma.cuh"

namespace latentserve::kernels::cuda {

namespace {

using namespace mla;

struct KernelArgs {
  const __nv_bfloat16* q_latent;  // [num_tokens, heads, 512]
  const __nv_bfloat16* q_rope;    // [num_tokens, heads, 64]
  const __nv_bfloat16* cache;     // [num_blocks, block_size, 576]
  const int32_t* block_tables;    // [num_sequences, block_table_stride]
  void* out;                      // [num_tokens, heads, 512]
  MlaDevicePlan plan;
  int64_t block_size, block_table_stride, heads;
  float scale_log2;  // softmax_scale · log2(e)
};

// Q rows [row_begin, row_begin + 64) of the item's sequence into the swizzled Q tile; rows past
// the sequence's last row are zero-filled.
__device__ __forceinline__ void load_q_tile(const KernelArgs& a, const MlaWorkItem& w, char* sq) {
  const int64_t rows = int64_t(w.query_len) * a.heads;
  const int64_t base_row = int64_t(w.query_start) * a.heads + w.row_begin;
  for (int idx = threadIdx.x; idx < kRowsPerCta * kChunksPerRow; idx += kThreads) {
    const int r = idx / kChunksPerRow, c = idx % kChunksPerRow;
    const bool valid = w.row_begin + r < rows;
    const int64_t g = valid ? base_row + r : 0;
    const __nv_bfloat16* src = c < kLatentDim / 8 ? a.q_latent + g * kLatentDim + c * 8
                                                  : a.q_rope + g * kRopeDim + (c - kLatentDim / 8) * 8;
    cp_async_16(smem_addr(sq + swizzled(r, c, kChunksPerRow)), src, valid);
  }
}

// Cache positions [t0, t0 + 64) ∩ [.., kv_end) into a swizzled cache tile, zero past kv_end.
__device__ __forceinline__ void load_cache_tile(const KernelArgs& a, const MlaWorkItem& w, int t0,
                                                char* sk) {
  const int32_t* table = a.block_tables + int64_t(w.seq) * a.block_table_stride;
  for (int idx = threadIdx.x; idx < kKeysPerTile * kChunksPerRow; idx += kThreads) {
    const int j = idx / kChunksPerRow, c = idx % kChunksPerRow;
    const int t = t0 + j;
    const bool valid = t < w.kv_end;
    int64_t slot = 0;
    if (valid) slot = int64_t(table[t / a.block_size]) * a.block_size + t % a.block_size;
    cp_async_16(smem_addr(sk + swizzled(j, c, kChunksPerRow)), a.cache + slot * kQkDim + c * 8,
                valid);
  }
}

// The running state of one thread's two rows (g and g + 8 of its warp's row group).
struct RowState {
  float m[2] = {-INFINITY, -INFINITY};  // running max (log2 domain)
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum
  int pos[2];                           // causal limit: last visible cache position, -1 if none
};

// S (16 rows × this half's 32 keys) = Q · Kᵀ over the 576-wide dot products.
__device__ __forceinline__ void compute_scores(const char* sq, const char* sk, int rg, int hf,
                                               float s[4][4]) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < 4; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
  const int a_row = rg * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
  const int b_key = hf * kKeysPerWarp + (lane % 8) + (lane / 16) * 8;
#pragma unroll 4
  for (int ks = 0; ks < kQkDim / 16; ++ks) {
    uint32_t qa[4], kb[4], kb2[4];
    ldmatrix_x4(qa, smem_addr(sq + swizzled(a_row, ks * 2 + lane / 16, kChunksPerRow)));
    const int b_chunk = ks * 2 + (lane / 8) % 2;
    ldmatrix_x4(kb, smem_addr(sk + swizzled(b_key, b_chunk, kChunksPerRow)));
    ldmatrix_x4(kb2, smem_addr(sk + swizzled(b_key + 16, b_chunk, kChunksPerRow)));
    mma_bf16_16816(s[0], qa, kb[0], kb[1]);
    mma_bf16_16816(s[1], qa, kb[2], kb[3]);
    mma_bf16_16816(s[2], qa, kb2[0], kb2[1]);
    mma_bf16_16816(s[3], qa, kb2[2], kb2[3]);
  }
}

// Scales and masks S, agrees on the new row maxima with the other half through `xmax`, turns S
// into P (FP32 sums kept, BF16 written to `sp`) and returns the factor the old O must take.
__device__ __forceinline__ void softmax_step(float s[4][4], RowState& st, float alpha[2], int t0,
                                             int kv_end, int rg, int hf, float scale_log2,
                                             float* xmax, char* sp) {
  const int lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < 4; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int t = t0 + hf * kKeysPerWarp + n * 8 + tig * 2 + (e % 2);
      const int half = e / 2;
      const bool visible = t < kv_end && t <= st.pos[half];
      s[n][e] = visible ? s[n][e] * scale_log2 : -INFINITY;
      mx[half] = fmaxf(mx[half], s[n][e]);
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
  }
  const int r0 = rg * 16 + g;
  if (tig == 0) {
    xmax[hf * kRowsPerCta + r0] = mx[0];
    xmax[hf * kRowsPerCta + r0 + 8] = mx[1];
  }
  __syncthreads();
  float base[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + h * 8;
    const float m_new = fmaxf(st.m[h], fmaxf(xmax[r], xmax[kRowsPerCta + r]));
    base[h] = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet stays at zero
    alpha[h] = exp2f(st.m[h] - base[h]);
    st.m[h] = m_new;
    st.l[h] *= alpha[h];
  }
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    const float p0 = exp2f(s[n][0] - base[0]), p1 = exp2f(s[n][1] - base[0]);
    const float p2 = exp2f(s[n][2] - base[1]), p3 = exp2f(s[n][3] - base[1]);
    st.l[0] += p0 + p1;
    st.l[1] += p2 + p3;
    const int chunk = hf * (kKeysPerWarp / 8) + n;  // 8 keys per 16-byte chunk of a P row
    *reinterpret_cast<__nv_bfloat162*>(sp + swizzled(r0, chunk, kKeysPerTile / 8) + tig * 4) =
        __floats2bfloat162_rn(p0, p1);
    *reinterpret_cast<__nv_bfloat162*>(sp + swizzled(r0 + 8, chunk, kKeysPerTile / 8) + tig * 4) =
        __floats2bfloat162_rn(p2, p3);
  }
}

// O (16 rows × this half's 256 value columns) += P (16 × 64) · V (64 × 256); V is the first 512
// numbers of each cache row.
__device__ __forceinline__ void accumulate_values(const char* sp, const char* sk, int rg, int hf,
                                                  float o[kValuesPerWarp / 8][4]) {
  const int lane = threadIdx.x % 32;
  const int a_row = rg * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
#pragma unroll
  for (int kk = 0; kk < kKeysPerTile / 16; ++kk) {
    uint32_t pa[4];
    ldmatrix_x4(pa, smem_addr(sp + swizzled(a_row, kk * 2 + lane / 16, kKeysPerTile / 8)));
    const int v_key = kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8;
#pragma unroll
    for (int np = 0; np < kValuesPerWarp / 16; ++np) {
      uint32_t vb[4];
      const int chunk = (hf * kValuesPerWarp + np * 16) / 8 + lane / 16;
      ldmatrix_x4_trans(vb, smem_addr(sk + swizzled(v_key, chunk, kChunksPerRow)));
      mma_bf16_16816(o[2 * np], pa, vb[0], vb[1]);
      mma_bf16_16816(o[2 * np + 1], pa, vb[2], vb[3]);
    }
  }
}

__device__ __forceinline__ void store_pair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store_pair(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}

// Normalizes O and writes it to the output (single split) or to the item's partial slot.
template <class TOut>
__device__ __forceinline__ void write_result(const KernelArgs& a, const MlaWorkItem& w,
                                             RowState& st, float o[kValuesPerWarp / 8][4], int rg,
                                             int hf, float* xsum) {
  const int lane = threadIdx.x % 32, g = lane / 4, tig = lane % 4;
  const int r0 = rg * 16 + g;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    st.l[h] += __shfl_xor_sync(0xffffffffu, st.l[h], 1);
    st.l[h] += __shfl_xor_sync(0xffffffffu, st.l[h], 2);
  }
  if (tig == 0) {
    xsum[hf * kRowsPerCta + r0] = st.l[0];
    xsum[hf * kRowsPerCta + r0 + 8] = st.l[1];
  }
  __syncthreads();
  const int64_t rows = int64_t(w.query_len) * a.heads;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + h * 8;
    if (w.row_begin + r >= rows) continue;
    const float l = xsum[r] + xsum[kRowsPerCta + r];
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    if (w.partial < 0) {
      TOut* dst = static_cast<TOut*>(a.out) +
                  (int64_t(w.query_start) * a.heads + w.row_begin + r) * kLatentDim;
#pragma unroll
      for (int n = 0; n < kValuesPerWarp / 8; ++n) {
        store_pair(dst + hf * kValuesPerWarp + n * 8 + tig * 2, o[n][2 * h] * inv,
                   o[n][2 * h + 1] * inv);
      }
    } else {
      // An empty split (a fixed-shape plan's split past the context) is marked by its -inf
      // log-sum-exp alone: the merge never reads its values.
      float* dst = a.plan.partial_out + (int64_t(w.partial) * kRowsPerCta + r) * kLatentDim;
#pragma unroll
      for (int n = 0; n < kValuesPerWarp / 8; ++n) {
        if (l > 0.0f) {
          store_pair(dst + hf * kValuesPerWarp + n * 8 + tig * 2, o[n][2 * h] * inv,
                     o[n][2 * h + 1] * inv);
        }
      }
      if (hf == 0 && tig == 0) {
        a.plan.partial_lse[int64_t(w.partial) * kRowsPerCta + r] =
            l > 0.0f ? st.m[h] + log2f(l) : -INFINITY;
      }
    }
  }
}

template <class TOut>
__global__ void __launch_bounds__(kThreads, 1) mla_attention_kernel(const KernelArgs a) {
  extern __shared__ __align__(128) char smem[];
  char* sq = smem;
  char* sk = smem + kTileBytes;
  char* sp = sk + kStages * kCacheTileBytes;
  float* xchg = reinterpret_cast<float*>(sp + kPBytes);

  const MlaWorkItem w = a.plan.work[blockIdx.x];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int rg = warp % kRowGroups, hf = warp / kRowGroups;

  RowState st;
  const int64_t rows = int64_t(w.query_len) * a.heads;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t r = w.row_begin + rg * 16 + lane / 4 + h * 8;
    st.pos[h] = r < rows ? w.context_len - w.query_len + int(r / a.heads) : -1;
  }
  float o[kValuesPerWarp / 8][4];
#pragma unroll
  for (int n = 0; n < kValuesPerWarp / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

  load_q_tile(a, w, sq);
  load_cache_tile(a, w, w.kv_begin, sk);
  cp_async_commit();
  const int n_tiles = (w.kv_end - w.kv_begin + kKeysPerTile - 1) / kKeysPerTile;
  for (int it = 0; it < n_tiles; ++it) {
    const int t0 = w.kv_begin + it * kKeysPerTile;
    char* cur = sk + (it % kStages) * kCacheTileBytes;
    if (it + 1 < n_tiles) {
      load_cache_tile(a, w, t0 + kKeysPerTile, sk + ((it + 1) % kStages) * kCacheTileBytes);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float s[4][4], alpha[2];
    compute_scores(sq, cur, rg, hf, s);
    softmax_step(s, st, alpha, t0, w.kv_end, rg, hf, a.scale_log2, xchg, sp);
#pragma unroll
    for (int n = 0; n < kValuesPerWarp / 8; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    __syncthreads();  // P complete
    accumulate_values(sp, cur, rg, hf, o);
    __syncthreads();  // this stage, P and the exchange may be overwritten
  }
  cp_async_wait<0>();
  write_result<TOut>(a, w, st, o, rg, hf, xchg + kHalves * kRowsPerCta);
}

// Combines a row tile's splits: out = Σ 2^(lse_i - max) o_i / Σ 2^(lse_i - max).
template <class TOut>
__global__ void __launch_bounds__(kMergeThreads) mla_merge_kernel(const MlaDevicePlan plan,
                                                                  void* out) {
  const MlaMergeItem m = plan.merges[blockIdx.x];
  const int r = blockIdx.y;
  if (r >= m.num_rows) return;
  float mx = -INFINITY;
  for (int k = 0; k < m.num_splits; ++k) {
    mx = fmaxf(mx, plan.partial_lse[int64_t(m.first_partial + k) * kRowsPerCta + r]);
  }
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, total = 0.0f;
  if (mx != -INFINITY) {
    for (int k = 0; k < m.num_splits; ++k) {
      const int64_t slot = int64_t(m.first_partial + k) * kRowsPerCta + r;
      const float lse = plan.partial_lse[slot];
      if (lse == -INFINITY) continue;
      const float wgt = exp2f(lse - mx);
      const float4 v = reinterpret_cast<const float4*>(plan.partial_out + slot * kLatentDim)[threadIdx.x];
      acc[0] += wgt * v.x;
      acc[1] += wgt * v.y;
      acc[2] += wgt * v.z;
      acc[3] += wgt * v.w;
      total += wgt;
    }
  }
  const float inv = total > 0.0f ? 1.0f / total : 0.0f;
  TOut* dst = static_cast<TOut*>(out) + (int64_t(m.query_start) * plan.heads + m.row_begin + r) *
                                            kLatentDim + threadIdx.x * 4;
  store_pair(dst, acc[0] * inv, acc[1] * inv);
  store_pair(dst + 2, acc[2] * inv, acc[3] * inv);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

Status check(const MlaAttentionParams& p, const MlaDevicePlan& plan) {
  if (p.heads != plan.heads) {
    return make_error("mla_attention: heads=" + std::to_string(p.heads) + " but the plan has " +
                      std::to_string(plan.heads));
  }
  if (p.out_dtype != DType::F32 && p.out_dtype != DType::BF16) {
    return make_error("mla_attention: out_dtype " + std::string(dtype_name(p.out_dtype)) +
                      " is not supported (F32 or BF16)");
  }
  if (p.block_size < 1 || p.num_blocks < 0) {
    return make_error("mla_attention: block_size=" + std::to_string(p.block_size) +
                      " num_blocks=" + std::to_string(p.num_blocks));
  }
  const int64_t blocks_needed = (int64_t(plan.max_context) + p.block_size - 1) / p.block_size;
  if (p.block_table_stride < blocks_needed) {
    return make_error("mla_attention: block_table_stride=" + std::to_string(p.block_table_stride) +
                      " is shorter than the " + std::to_string(blocks_needed) +
                      " blocks of the longest context (" + std::to_string(plan.max_context) + ")");
  }
  if (plan.num_work == 0) return ok_status();
  if (!p.q_latent || !p.q_rope || !p.cache || !p.block_tables || !p.out || !plan.work) {
    return make_error("mla_attention: q_latent, q_rope, cache, block_tables and out must be "
                      "device pointers, got null");
  }
  if (!aligned16(p.q_latent) || !aligned16(p.q_rope) || !aligned16(p.cache) || !aligned16(p.out)) {
    return make_error("mla_attention: q_latent, q_rope, cache and out must be 16-byte aligned");
  }
  return ok_status();
}

template <class TOut>
Status launch(const MlaAttentionParams& p, const MlaDevicePlan& plan, cudaStream_t stream) {
  KernelArgs a{static_cast<const __nv_bfloat16*>(p.q_latent),
               static_cast<const __nv_bfloat16*>(p.q_rope),
               static_cast<const __nv_bfloat16*>(p.cache),
               p.block_tables,
               p.out,
               plan,
               p.block_size,
               p.block_table_stride,
               p.heads,
               p.softmax_scale * 1.4426950408889634f};
  // Set on every call: the opt-in is per device, the call is host-only and cheap.
  LS_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(
      mla_attention_kernel<TOut>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
  mla_attention_kernel<TOut><<<unsigned(plan.num_work), kThreads, kSharedBytes, stream>>>(a);
  LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  if (plan.num_merges > 0) {
    mla_merge_kernel<TOut><<<dim3(unsigned(plan.num_merges), kRowsPerCta), kMergeThreads, 0,
                             stream>>>(plan, p.out);
    LS_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return ok_status();
}

}  // namespace

Status mla_attention(const MlaAttentionParams& p, const MlaDevicePlan& plan, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p, plan));
  if (plan.num_work == 0) return ok_status();
  if (p.out_dtype == DType::BF16) return launch<__nv_bfloat16>(p, plan, stream);
  return launch<float>(p, plan, stream);
}

}  // namespace latentserve::kernels::cuda
