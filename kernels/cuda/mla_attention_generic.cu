// Generic absorbed MLA: a warp owns one (token, head) row; lane l holds the row's query values
// l, l + 32, ... and the same output columns, so a key's score is one warp reduction and its value
// accumulation needs no communication. Softmax is online, in FP32, in the natural-log domain.
#include "kernels/cuda/mla_attention_generic.h"

#include <cuda_bf16.h>

#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxLatentPerLane = int(kMlaGenericMaxLatent / 32);
constexpr int kMaxRopePerLane = int(kMlaGenericMaxRope / 32);

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

template <class TO>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) mla_generic_kernel(MlaGenericParams p) {
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // token * heads + head
  if (row >= p.num_tokens * p.heads) return;
  const int64_t token = row / p.heads;
  const int64_t lora = p.kv_lora_rank, rope = p.rope_dim, dim = lora + p.rope_dim;
  const auto* ql = static_cast<const __nv_bfloat16*>(p.q_latent) + row * lora;
  const auto* qr = static_cast<const __nv_bfloat16*>(p.q_rope) + row * rope;
  float q[kMaxLatentPerLane], qp[kMaxRopePerLane], acc[kMaxLatentPerLane];
#pragma unroll
  for (int i = 0; i < kMaxLatentPerLane; ++i) {
    const int64_t j = lane + 32 * i;
    q[i] = j < lora ? __bfloat162float(ql[j]) : 0.0f;
    acc[i] = 0.0f;
  }
#pragma unroll
  for (int i = 0; i < kMaxRopePerLane; ++i) {
    const int64_t j = lane + 32 * i;
    qp[i] = j < rope ? __bfloat162float(qr[j]) : 0.0f;
  }
  const int32_t* table = p.block_tables + int64_t(p.token_sequence[token]) * p.block_table_stride;
  const int64_t last = p.positions[token];
  const auto* cache = static_cast<const __nv_bfloat16*>(p.cache);
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int64_t pos = 0; pos <= last; ++pos) {
    const int64_t block = table[pos / p.block_size];
    if (block < 0 || block >= p.num_blocks) continue;
    const __nv_bfloat16* c = cache + (block * p.block_size + pos % p.block_size) * dim;
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxLatentPerLane; ++i) {
      const int64_t j = lane + 32 * i;
      if (j < lora) s += q[i] * __bfloat162float(c[j]);
    }
#pragma unroll
    for (int i = 0; i < kMaxRopePerLane; ++i) {
      const int64_t j = lane + 32 * i;
      if (j < rope) s += qp[i] * __bfloat162float(c[lora + j]);
    }
    s = warp_sum(s) * p.softmax_scale;
    const float new_max = fmaxf(running_max, s);
    const float rescale = expf(running_max - new_max);  // 0 on the first key (exp(-inf))
    const float weight = expf(s - new_max);
    running_sum = running_sum * rescale + weight;
    running_max = new_max;
#pragma unroll
    for (int i = 0; i < kMaxLatentPerLane; ++i) {
      const int64_t j = lane + 32 * i;
      if (j < lora) acc[i] = acc[i] * rescale + weight * __bfloat162float(c[j]);
    }
  }
  const float inv = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
  TO* out = static_cast<TO*>(p.out) + row * lora;
#pragma unroll
  for (int i = 0; i < kMaxLatentPerLane; ++i) {
    const int64_t j = lane + 32 * i;
    if (j < lora) store(out + j, acc[i] * inv);
  }
}

}  // namespace

Status mla_attention_generic(const MlaGenericParams& p, cudaStream_t stream) {
  if (p.num_tokens < 0 || p.heads <= 0 || p.kv_lora_rank <= 0 || p.rope_dim < 0) {
    return make_error("mla_attention_generic: bad sizes (tokens " + std::to_string(p.num_tokens) +
                      ", heads " + std::to_string(p.heads) + ", latent " +
                      std::to_string(p.kv_lora_rank) + ", rope " + std::to_string(p.rope_dim) + ")");
  }
  if (p.kv_lora_rank > kMlaGenericMaxLatent || p.rope_dim > kMlaGenericMaxRope) {
    return make_error("mla_attention_generic: latent " + std::to_string(p.kv_lora_rank) + " / rope " +
                      std::to_string(p.rope_dim) + " exceed the supported " +
                      std::to_string(kMlaGenericMaxLatent) + " / " + std::to_string(kMlaGenericMaxRope));
  }
  if (p.num_tokens == 0) return ok_status();
  if (p.block_size <= 0 || p.num_blocks <= 0 || p.block_table_stride <= 0) {
    return make_error("mla_attention_generic: empty cache geometry (blocks " +
                      std::to_string(p.num_blocks) + ", block size " + std::to_string(p.block_size) +
                      ", table stride " + std::to_string(p.block_table_stride) + ")");
  }
  if (p.q_latent == nullptr || p.cache == nullptr || p.block_tables == nullptr ||
      p.token_sequence == nullptr || p.positions == nullptr || p.out == nullptr ||
      (p.rope_dim > 0 && p.q_rope == nullptr)) {
    return make_error("mla_attention_generic: a required pointer is null");
  }
  if (p.out_dtype != DType::F32 && p.out_dtype != DType::BF16) {
    return make_error(std::string("mla_attention_generic: output dtype ") + std::string(dtype_name(p.out_dtype)) +
                      " unsupported (F32 or BF16)");
  }
  const int64_t blocks = (p.num_tokens * p.heads + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffff) return make_error("mla_attention_generic: too many rows for the grid");
  if (p.out_dtype == DType::F32) {
    mla_generic_kernel<float><<<unsigned(blocks), kWarpsPerBlock * 32, 0, stream>>>(p);
  } else {
    mla_generic_kernel<__nv_bfloat16><<<unsigned(blocks), kWarpsPerBlock * 32, 0, stream>>>(p);
  }
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
