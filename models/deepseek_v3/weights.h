// The DeepSeek-V3 weights as the forward pass uses them: views into the checkpoint's bytes
// (mapped or copied) for matrices, small F32 copies for norms and biases. Filled from one
// declarative name table.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernels/cpu/matmul.h"
#include "models/checkpoint.h"
#include "models/config.h"

namespace latentserve::models::deepseek_v3 {

using kernels::cpu::WeightMatrix;

struct MlaWeights {
  // With q_lora_rank: q = q_b_proj(q_a_layernorm(q_a_proj(x))); without: q = q_proj(x).
  WeightMatrix q_a_proj;              // [q_lora_rank, hidden]
  std::vector<float> q_a_layernorm;   // [q_lora_rank]
  WeightMatrix q_b_proj;              // [heads * qk_head_dim, q_lora_rank]
  WeightMatrix q_proj;                // [heads * qk_head_dim, hidden]
  WeightMatrix kv_a_proj_with_mqa;    // [kv_lora_rank + qk_rope_head_dim, hidden]
  std::vector<float> kv_a_layernorm;  // [kv_lora_rank]
  WeightMatrix kv_b_proj;             // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  WeightMatrix o_proj;                // [hidden, heads * v_head_dim]
};

struct MlpWeights {
  WeightMatrix gate_proj;  // [width, hidden]
  WeightMatrix up_proj;    // [width, hidden]
  WeightMatrix down_proj;  // [hidden, width]
};

struct MoeWeights {
  WeightMatrix gate;                           // [n_routed_experts, hidden]
  std::vector<float> e_score_correction_bias;  // [n_routed_experts], empty when absent
  std::vector<MlpWeights> experts;             // n_routed_experts
  std::optional<MlpWeights> shared_experts;    // width n_shared_experts * moe_intermediate_size
};

struct DecoderLayerWeights {
  std::vector<float> input_layernorm;           // [hidden]
  std::vector<float> post_attention_layernorm;  // [hidden]
  MlaWeights attn;
  std::optional<MlpWeights> mlp;  // dense layers
  std::optional<MoeWeights> moe;  // MoE layers
};

// Multi-Token Prediction layer (checkpoint layer index num_hidden_layers + i).
struct MtpLayerWeights {
  std::vector<float> enorm;  // [hidden]
  std::vector<float> hnorm;  // [hidden]
  WeightMatrix eh_proj;      // [hidden, 2 * hidden]; input concat(enorm(embed), hnorm(h))
  DecoderLayerWeights block;
  std::vector<float> shared_head_norm;  // [hidden]
  // In V3 checkpoints these two are byte-identical copies of lm_head and the main embedding;
  // load_weights then points them at the main tensors (same data), otherwise at their own.
  WeightMatrix shared_head_head;        // [vocab, hidden]
  WeightMatrix embed_tokens;            // [vocab, hidden]
};

struct DeepseekV3Weights {
  WeightMatrix embed_tokens;  // [vocab, hidden]
  std::vector<DecoderLayerWeights> layers;
  std::vector<float> norm;  // [hidden]
  WeightMatrix lm_head;     // [vocab, hidden]; the embedding when tie_word_embeddings
  std::vector<MtpLayerWeights> mtp;  // num_nextn_predict_layers (may be absent: then empty)
  // Aligned copies of tensors whose bytes in the file are not aligned to their element size
  // (legal in safetensors, rare in practice); matrices above may point into these.
  std::vector<std::shared_ptr<const float[]>> owned_copies;
};

// Checks every tensor the config needs (names, dtypes, shapes, FP8 block scales) and fills the
// struct. Errors name the tensor, its shard file and what was wrong. `checkpoint` must outlive
// the result: matrices point into its mapped files.
Result<DeepseekV3Weights> load_weights(const Checkpoint& checkpoint, const ModelConfig& config);

}  // namespace latentserve::models::deepseek_v3
