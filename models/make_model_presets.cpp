// The model shapes make_model can write, as the config.json a real checkpoint would carry.
#include <nlohmann/json.hpp>

#include "models/make_model.h"

namespace latentserve::models {
namespace {

using nlohmann::json;

// Every key of DeepSeek-V3's published config.json, at the real model's values; presets
// override the sizes.
json deepseek_v3_base() {
  return json{
      {"architectures", {"DeepseekV3ForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"auto_map",
       {{"AutoConfig", "configuration_deepseek.DeepseekV3Config"},
        {"AutoModel", "modeling_deepseek.DeepseekV3Model"},
        {"AutoModelForCausalLM", "modeling_deepseek.DeepseekV3ForCausalLM"}}},
      {"aux_loss_alpha", 0.001},
      {"bos_token_id", 0},
      {"eos_token_id", 1},
      {"ep_size", 1},
      {"first_k_dense_replace", 3},
      {"hidden_act", "silu"},
      {"hidden_size", 7168},
      {"initializer_range", 0.02},
      {"intermediate_size", 18432},
      {"kv_lora_rank", 512},
      {"max_position_embeddings", 163840},
      {"model_type", "deepseek_v3"},
      {"moe_intermediate_size", 2048},
      {"moe_layer_freq", 1},
      {"n_group", 8},
      {"n_routed_experts", 256},
      {"n_shared_experts", 1},
      {"norm_topk_prob", true},
      {"num_attention_heads", 128},
      {"num_experts_per_tok", 8},
      {"num_hidden_layers", 61},
      {"num_key_value_heads", 128},
      {"num_nextn_predict_layers", 1},
      {"pretraining_tp", 1},
      {"q_lora_rank", 1536},
      {"qk_nope_head_dim", 128},
      {"qk_rope_head_dim", 64},
      {"rms_norm_eps", 1e-06},
      {"rope_scaling",
       {{"beta_fast", 32},
        {"beta_slow", 1},
        {"factor", 40},
        {"mscale", 1.0},
        {"mscale_all_dim", 1.0},
        {"original_max_position_embeddings", 4096},
        {"type", "yarn"}}},
      {"rope_theta", 10000},
      {"routed_scaling_factor", 2.5},
      {"scoring_func", "sigmoid"},
      {"seq_aux", true},
      {"tie_word_embeddings", false},
      {"topk_group", 4},
      {"topk_method", "noaux_tc"},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.46.3"},
      {"use_cache", true},
      {"v_head_dim", 128},
      {"vocab_size", 129280},
  };
}

json tiny_preset() {
  json c = deepseek_v3_base();
  c.update(json{{"vocab_size", 129280}, {"hidden_size", 128}, {"num_hidden_layers", 3},
                {"first_k_dense_replace", 1}, {"num_attention_heads", 4},
                {"num_key_value_heads", 4}, {"q_lora_rank", 64}, {"kv_lora_rank", 64},
                {"qk_nope_head_dim", 32}, {"qk_rope_head_dim", 16}, {"v_head_dim", 32},
                {"n_routed_experts", 16}, {"num_experts_per_tok", 4}, {"n_group", 4},
                {"topk_group", 2}, {"n_shared_experts", 1}, {"moe_intermediate_size", 64},
                {"intermediate_size", 256}, {"max_position_embeddings", 4096},
                {"rope_theta", 10000}, {"routed_scaling_factor", 2.5}, {"bos_token_id", 0},
                {"eos_token_id", 1}, {"num_nextn_predict_layers", 1}, {"rope_scaling", nullptr}});
  return c;
}

// DeepSeek-V2-Lite's per-layer sizes (and its YaRN settings) in the V3 architecture: sigmoid,
// bias-corrected, group-limited routing over 8 groups.
json lite_preset() {
  json c = deepseek_v3_base();
  c.update(json{{"vocab_size", 129280}, {"hidden_size", 2048}, {"num_hidden_layers", 4},
                {"first_k_dense_replace", 1}, {"num_attention_heads", 16},
                {"num_key_value_heads", 16}, {"q_lora_rank", nullptr}, {"kv_lora_rank", 512},
                {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128},
                {"n_routed_experts", 64}, {"num_experts_per_tok", 6}, {"n_group", 8},
                {"topk_group", 4}, {"n_shared_experts", 2}, {"moe_intermediate_size", 1408},
                {"intermediate_size", 10944}, {"max_position_embeddings", 163840},
                {"num_nextn_predict_layers", 1},
                {"rope_scaling",
                 {{"beta_fast", 32},
                  {"beta_slow", 1},
                  {"factor", 40},
                  {"mscale", 0.707},
                  {"mscale_all_dim", 0.707},
                  {"original_max_position_embeddings", 4096},
                  {"type", "yarn"}}}});
  return c;
}

}  // namespace

std::vector<std::string> make_model_presets() { return {"tiny", "lite"}; }

Result<std::string> make_model_config_json(const std::string& preset, bool fp8,
                                           int64_t num_layers) {
  if (num_layers < 0) {
    return make_error("make_model: num_layers must be positive (0 keeps the preset's), got " +
                      std::to_string(num_layers));
  }
  json c;
  if (preset == "tiny") {
    c = tiny_preset();
  } else if (preset == "lite") {
    c = lite_preset();
  } else {
    return make_error("unknown model preset '" + preset + "' (tiny or lite)");
  }
  if (num_layers > 0) c["num_hidden_layers"] = num_layers;
  if (fp8) {
    c["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {128, 128}}};
  }
  return c.dump(2) + "\n";
}

}  // namespace latentserve::models
