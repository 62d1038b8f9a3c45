// Multi-head Latent Attention on the CPU, in both forms DeepSeek's reference keeps side by side:
// absorbed (queries in latent space, attention over the paged latent cache) and naive (plain MHA).
#pragma once

#include <cstdint>

namespace latentserve::kernels::cpu {

// One layer's paged latent cache: [num_blocks, block_size, kv_lora_rank + rope_dim] floats.
// Each token stores its normalized latent c (kv_lora_rank) then its rotated shared key k_pe.
struct LatentCache {
  float* data = nullptr;
  int64_t num_blocks = 0;
  int64_t block_size = 0;
  int64_t kv_lora_rank = 0;
  int64_t rope_dim = 0;

  int64_t token_dim() const { return kv_lora_rank + rope_dim; }
  float* slot(int64_t s) const { return data + s * token_dim(); }  // slot = block * block_size + offset
};

// One sequence's share of a step. Its query tokens are rows [query_start, query_start + query_len)
// and sit at positions context_len - query_len + i; each attends causally to positions ≤ its own.
struct AttentionSequence {
  int32_t query_start = 0;
  int32_t query_len = 0;
  int32_t context_len = 0;            // tokens in the cache for this sequence after this step
  const int32_t* block_table = nullptr;  // [ceil(context_len / block_size)] physical block ids
};

// Copies latent[i, :] ([num_tokens, token_dim]) to cache slot slot_mapping[i].
void write_latent_cache(const float* latent, const int64_t* slot_mapping, int64_t num_tokens,
                        const LatentCache& cache);

struct MlaAbsorbedParams {
  const float* q_latent = nullptr;  // [num_tokens, heads, kv_lora_rank]  q_nope · W_UK per head
  const float* q_rope = nullptr;    // [num_tokens, heads, rope_dim]      rotated
  LatentCache cache;                // already holds this step's tokens
  const AttentionSequence* sequences = nullptr;
  int32_t num_sequences = 0;
  int64_t heads = 0;
  float softmax_scale = 1.0f;
  float* out_latent = nullptr;  // [num_tokens, heads, kv_lora_rank]  Σ_t p_t · c_t
};

// score(h, t) = (q_latent[h] · c_t + q_rope[h] · k_pe_t) · softmax_scale, softmax in FP32 over
// the causal context; all heads of a token share every cache row, so each block is read once.
void mla_attention_absorbed(const MlaAbsorbedParams& p);
void mla_attention_absorbed_reference(const MlaAbsorbedParams& p);

// Plain variable-length causal attention (the naive MLA form, K and V expanded per head).
struct VarlenSequence {
  int32_t q_start = 0;   // first query row
  int32_t q_len = 0;
  int32_t kv_start = 0;  // first key/value row
  int32_t kv_len = 0;    // query i attends keys [0, kv_len - q_len + i]
};

struct AttentionParams {
  const float* q = nullptr;  // [num_q_rows, heads, head_dim_qk]
  const float* k = nullptr;  // [num_kv_rows, heads, head_dim_qk]
  const float* v = nullptr;  // [num_kv_rows, heads, head_dim_v]
  const VarlenSequence* sequences = nullptr;
  int32_t num_sequences = 0;
  int64_t heads = 0;
  int64_t head_dim_qk = 0;
  int64_t head_dim_v = 0;
  float softmax_scale = 1.0f;
  float* out = nullptr;  // [num_q_rows, heads, head_dim_v]
};

void attention_varlen(const AttentionParams& p);
void attention_varlen_reference(const AttentionParams& p);

}  // namespace latentserve::kernels::cpu
