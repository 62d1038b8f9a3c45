// ModelConfig: the fields of a Hugging Face `config.json` that the DeepSeek-V3 family needs,
// parsed and checked for consistency; unknown or unsupported values are rejected naming the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace latentserve::models {

struct RopeScalingConfig {
  std::string type;  // "yarn" (the only scaling the family uses)
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct QuantizationConfig {
  std::string quant_method;  // "fp8"
  std::string fmt;           // "e4m3"
  std::string activation_scheme;  // "dynamic"
  int64_t weight_block_rows = 128;
  int64_t weight_block_cols = 128;
};

struct ModelConfig {
  std::string model_type;           // the architecture: "deepseek_v3" or "deepseek_v2"
  std::string declared_model_type;  // config.json's own value: model_type, or an alias ("kimi_k2")
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t vocab_size = 0;
  int64_t intermediate_size = 0;       // dense MLP width
  int64_t moe_intermediate_size = 0;   // routed/shared expert width
  int64_t n_routed_experts = 0;        // 0: no MoE layers at all
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = false;
  std::string scoring_func = "softmax";  // "sigmoid" | "softmax"
  std::string topk_method = "greedy";    // "noaux_tc" | "group_limited_greedy" | "greedy"
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  std::optional<int64_t> q_lora_rank;  // null: q_proj directly, no query compression
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScalingConfig> rope_scaling;
  int64_t max_position_embeddings = 0;
  int64_t num_nextn_predict_layers = 0;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // config.json may hold one id or a list
  std::optional<QuantizationConfig> quantization;

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  // Layer i uses MoE when i >= first_k_dense_replace and i % moe_layer_freq == 0 (and experts exist).
  bool is_moe_layer(int64_t layer) const;
  // softmax scale including the YaRN mscale² correction.
  double softmax_scale() const;
};

// Parses and validates config.json text; `source` names the file in error messages.
Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source);
// Reads DIR/config.json.
Result<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace latentserve::models
