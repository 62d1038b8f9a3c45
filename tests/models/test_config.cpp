// config.json parsing: the fixture's config, Hugging Face defaults, and every rejection rule.
#include <cmath>

#include "tests/models/test_checkpoint_util.h"

namespace latentserve::models::test {
namespace {

using nlohmann::json;

json fixture_config() {
  return json::parse(read_bytes(shared_fixture("tiny-dsv3/config.json")));
}

// Parses `config` and expects an error whose message contains every one of `needles`.
void expect_rejected(const json& config, std::initializer_list<std::string> needles) {
  auto parsed = parse_model_config(config.dump(), "config.json");
  INFO(config.dump());
  REQUIRE_FALSE(parsed.ok());
  INFO(parsed.error().message);
  for (const std::string& needle : needles) CHECK(parsed.error().message.find(needle) != std::string::npos);
}

TEST_CASE("config: the tiny-dsv3 fixture parses to its documented values") {
  auto c = load_model_config(shared_fixture("tiny-dsv3"));
  REQUIRE(c.ok());
  CHECK(c->model_type == "deepseek_v3");
  CHECK(c->hidden_size == 256);
  CHECK(c->num_hidden_layers == 3);
  CHECK(c->num_attention_heads == 4);
  CHECK(c->vocab_size == 1024);
  CHECK(c->intermediate_size == 512);
  CHECK(c->moe_intermediate_size == 64);
  CHECK(c->n_routed_experts == 16);
  CHECK(c->n_shared_experts == 1);
  CHECK(c->num_experts_per_tok == 4);
  CHECK(c->n_group == 4);
  CHECK(c->topk_group == 2);
  CHECK(c->routed_scaling_factor == 1.5);
  CHECK(c->norm_topk_prob);
  CHECK(c->scoring_func == "sigmoid");
  CHECK(c->topk_method == "noaux_tc");
  CHECK(c->first_k_dense_replace == 1);
  CHECK(c->moe_layer_freq == 1);
  REQUIRE(c->q_lora_rank.has_value());
  CHECK(*c->q_lora_rank == 96);
  CHECK(c->kv_lora_rank == 64);
  CHECK(c->qk_nope_head_dim == 32);
  CHECK(c->qk_rope_head_dim == 16);
  CHECK(c->v_head_dim == 32);
  CHECK(c->qk_head_dim() == 48);
  CHECK(c->rms_norm_eps == 1e-6);
  CHECK(c->rope_theta == 10000.0);
  CHECK_FALSE(c->rope_scaling.has_value());
  CHECK(c->max_position_embeddings == 4096);
  CHECK(c->num_nextn_predict_layers == 1);
  CHECK_FALSE(c->tie_word_embeddings);
  CHECK(c->bos_token_id == std::optional<int64_t>(0));
  CHECK(c->eos_token_ids == std::vector<int64_t>{1});
  CHECK_FALSE(c->quantization.has_value());

  CHECK_FALSE(c->is_moe_layer(0));
  CHECK(c->is_moe_layer(1));
  CHECK(c->is_moe_layer(2));
  CHECK(c->is_moe_layer(3));  // the MTP layer

  json golden = json::parse(read_bytes(shared_fixture("tiny-dsv3/golden.json")));
  const double want = golden["derived"]["softmax_scale"].get<double>();
  CHECK(std::fabs(c->softmax_scale() - want) < 1e-8);
}

TEST_CASE("config: YaRN scaling, eos lists, quantization and rope_type spelling") {
  json j = fixture_config();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096},
                       {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 0.707},
                       {"mscale_all_dim", 0.707}};
  j["eos_token_id"] = {1, 7};
  j["bos_token_id"] = nullptr;
  j["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"},
                              {"activation_scheme", "dynamic"}, {"weight_block_size", {128, 64}}};
  j["some_future_key"] = {{"anything", 1}};
  auto c = parse_model_config(j.dump(), "config.json");
  REQUIRE(c.ok());
  REQUIRE(c->rope_scaling.has_value());
  CHECK(c->rope_scaling->type == "yarn");
  CHECK(c->rope_scaling->factor == 40.0);
  CHECK(c->rope_scaling->original_max_position_embeddings == 4096);
  CHECK(c->rope_scaling->mscale_all_dim == 0.707);
  const double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  CHECK(std::fabs(c->softmax_scale() - m * m / std::sqrt(48.0)) < 1e-12);
  CHECK(c->eos_token_ids == std::vector<int64_t>{1, 7});
  CHECK_FALSE(c->bos_token_id.has_value());
  REQUIRE(c->quantization.has_value());
  CHECK(c->quantization->weight_block_rows == 128);
  CHECK(c->quantization->weight_block_cols == 64);

  // Without mscale_all_dim the scale stays qk_head_dim^-0.5 (HF only applies it when set).
  j["rope_scaling"].erase("mscale_all_dim");
  auto plain = parse_model_config(j.dump(), "config.json");
  REQUIRE(plain.ok());
  CHECK(std::fabs(plain->softmax_scale() - 1.0 / std::sqrt(48.0)) < 1e-12);
}

TEST_CASE("config: missing optional keys take Hugging Face's DeepSeek-V3 and V2 defaults") {
  json j = fixture_config();
  for (const char* key : {"n_routed_experts", "n_shared_experts", "num_experts_per_tok", "n_group",
                          "topk_group", "routed_scaling_factor", "norm_topk_prob", "scoring_func",
                          "topk_method", "first_k_dense_replace", "moe_layer_freq", "q_lora_rank",
                          "rms_norm_eps", "rope_theta", "rope_scaling", "max_position_embeddings",
                          "num_nextn_predict_layers", "tie_word_embeddings", "bos_token_id",
                          "eos_token_id", "moe_intermediate_size"}) {
    j.erase(key);
  }
  auto v3 = parse_model_config(j.dump(), "config.json");
  REQUIRE(v3.ok());
  CHECK(v3->n_routed_experts == 256);
  CHECK(v3->num_experts_per_tok == 8);
  CHECK(v3->n_group == 8);
  CHECK(v3->topk_group == 4);
  CHECK(v3->routed_scaling_factor == 2.5);
  CHECK(v3->topk_method == "noaux_tc");
  CHECK(v3->scoring_func == "sigmoid");
  CHECK(v3->norm_topk_prob);
  CHECK(v3->first_k_dense_replace == 3);
  CHECK(v3->q_lora_rank == std::optional<int64_t>(1536));
  CHECK(v3->moe_intermediate_size == 2048);
  CHECK(v3->num_nextn_predict_layers == 1);
  CHECK(v3->eos_token_ids == std::vector<int64_t>{1});

  // DeepSeek-V2-Lite's own config.json (trimmed to the keys we read).
  json v2lite = {{"model_type", "deepseek_v2"}, {"vocab_size", 102400}, {"hidden_size", 2048},
                 {"intermediate_size", 10944}, {"moe_intermediate_size", 1408},
                 {"num_hidden_layers", 27}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
                 {"n_shared_experts", 2}, {"n_routed_experts", 64}, {"num_experts_per_tok", 6},
                 {"routed_scaling_factor", 1.0}, {"kv_lora_rank", 512}, {"q_lora_rank", nullptr},
                 {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"qk_nope_head_dim", 128},
                 {"topk_method", "greedy"}, {"n_group", 1}, {"topk_group", 1},
                 {"first_k_dense_replace", 1}, {"norm_topk_prob", false}, {"scoring_func", "softmax"},
                 {"max_position_embeddings", 163840}, {"bos_token_id", 100000},
                 {"eos_token_id", 100001}, {"rope_theta", 10000},
                 {"rope_scaling", {{"beta_fast", 32}, {"beta_slow", 1}, {"factor", 40},
                                   {"mscale", 0.707}, {"mscale_all_dim", 0.707},
                                   {"original_max_position_embeddings", 4096}, {"type", "yarn"}}}};
  auto v2 = parse_model_config(v2lite.dump(), "config.json");
  REQUIRE(v2.ok());
  CHECK_FALSE(v2->q_lora_rank.has_value());
  CHECK(v2->topk_method == "greedy");
  CHECK(v2->num_nextn_predict_layers == 0);
  CHECK(v2->is_moe_layer(1));
  CHECK_FALSE(v2->is_moe_layer(0));

  // V2 without MoE keys is a dense model.
  for (const char* key : {"n_routed_experts", "n_shared_experts", "num_experts_per_tok"}) v2lite.erase(key);
  auto dense = parse_model_config(v2lite.dump(), "config.json");
  REQUIRE(dense.ok());
  CHECK(dense->n_routed_experts == 0);
  CHECK_FALSE(dense->is_moe_layer(5));
}

TEST_CASE("config: Kimi-K2's config.json is read as DeepSeek-V3's architecture") {
  // The values of Moonshot's Kimi-K2-Instruct config.json for the keys this parser reads: its own
  // model_type, DeepSeek-V3's architecture class, no MTP layer, one expert group, FP8 blocks.
  const json kimi = {
      {"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "kimi_k2"},
      {"vocab_size", 163840}, {"hidden_size", 7168}, {"intermediate_size", 18432},
      {"moe_intermediate_size", 2048}, {"num_hidden_layers", 61}, {"num_attention_heads", 64},
      {"num_key_value_heads", 64}, {"n_shared_experts", 1}, {"n_routed_experts", 384},
      {"num_experts_per_tok", 8}, {"routed_scaling_factor", 2.827}, {"kv_lora_rank", 512},
      {"q_lora_rank", 1536}, {"qk_rope_head_dim", 64}, {"qk_nope_head_dim", 128}, {"v_head_dim", 128},
      {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"n_group", 1}, {"topk_group", 1},
      {"topk_method", "noaux_tc"}, {"scoring_func", "sigmoid"}, {"norm_topk_prob", true},
      {"rms_norm_eps", 1e-6}, {"rope_theta", 50000.0}, {"max_position_embeddings", 131072},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 32.0}, {"original_max_position_embeddings", 4096},
                        {"beta_fast", 1.0}, {"beta_slow", 1.0}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
      {"num_nextn_predict_layers", 0}, {"tie_word_embeddings", false}, {"bos_token_id", 163584},
      {"eos_token_id", 163585}, {"hidden_act", "silu"}, {"attention_bias", false},
      {"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"activation_scheme", "dynamic"},
                               {"weight_block_size", {128, 128}}}}};
  auto c = parse_model_config(kimi.dump(), "config.json");
  REQUIRE(c.ok());
  CHECK(c->model_type == "deepseek_v3");
  CHECK(c->declared_model_type == "kimi_k2");
  CHECK(c->n_routed_experts == 384);
  CHECK(c->n_group == 1);
  CHECK(c->num_nextn_predict_layers == 0);
  REQUIRE(c->rope_scaling.has_value());
  CHECK(c->rope_scaling->factor == 32.0);
  REQUIRE(c->quantization.has_value());
  CHECK(c->quantization->weight_block_cols == 128);

  // The alias stands for DeepSeek-V3's class only: without it, or under another class, rejected.
  json no_class = kimi;
  no_class.erase("architectures");
  expect_rejected(no_class, {"model_type", "DeepseekV3ForCausalLM"});
  json other_class = kimi;
  other_class["architectures"] = {"KimiK25ForConditionalGeneration"};
  expect_rejected(other_class, {"model_type", "DeepseekV3ForCausalLM"});
  // Unknown model types say how a renamed DeepSeek-V3 checkpoint can still load.
  json v32 = kimi;
  v32["model_type"] = "deepseek_v32";
  expect_rejected(v32, {"model_type", "deepseek_v32", "set to deepseek_v3"});
}

TEST_CASE("config: malformed documents are rejected") {
  CHECK_FALSE(parse_model_config("{\"model_type\": ", "config.json").ok());
  CHECK_FALSE(parse_model_config("[1, 2]", "config.json").ok());
  CHECK_FALSE(parse_model_config(std::string(10000, '[') , "config.json").ok());
  json j = fixture_config();
  std::string twice = j.dump();
  twice.insert(1, "\"hidden_size\": 512, ");
  expect_rejected(json::object(), {"model_type"});
  auto dup = parse_model_config(twice, "config.json");
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().message.find("hidden_size") != std::string::npos);
  CHECK_FALSE(load_model_config("/nonexistent/dir").ok());
}

TEST_CASE("config: each rejection rule names its key") {
  struct Case {
    const char* key;
    json value;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"model_type", "llama", "model_type"},
      {"hidden_size", "256", "hidden_size"},
      {"hidden_size", 256.5, "hidden_size"},
      {"hidden_size", 0, "hidden_size"},
      {"num_hidden_layers", -1, "num_hidden_layers"},
      {"vocab_size", nullptr, "vocab_size"},
      {"num_attention_heads", 0, "num_attention_heads"},
      {"kv_lora_rank", 0, "kv_lora_rank"},
      {"q_lora_rank", 0, "q_lora_rank"},
      {"q_lora_rank", "96", "q_lora_rank"},
      {"v_head_dim", -32, "v_head_dim"},
      {"intermediate_size", 0, "intermediate_size"},
      {"moe_intermediate_size", 0, "moe_intermediate_size"},
      {"max_position_embeddings", 0, "max_position_embeddings"},
      {"qk_rope_head_dim", 15, "qk_rope_head_dim"},
      {"topk_group", 5, "topk_group"},
      {"n_group", 3, "n_group"},
      {"num_experts_per_tok", 17, "num_experts_per_tok"},
      {"num_experts_per_tok", 9, "num_experts_per_tok"},  // > topk_group(2) * 4 per group
      {"num_experts_per_tok", 0, "num_experts_per_tok"},
      {"n_routed_experts", -16, "n_routed_experts"},
      {"scoring_func", "relu", "scoring_func"},
      {"topk_method", "random", "topk_method"},
      {"hidden_act", "gelu", "hidden_act"},
      {"attention_bias", true, "attention_bias"},
      {"num_key_value_heads", 1, "num_key_value_heads"},
      {"first_k_dense_replace", 4, "first_k_dense_replace"},
      {"moe_layer_freq", 0, "moe_layer_freq"},
      {"norm_topk_prob", 1, "norm_topk_prob"},
      {"tie_word_embeddings", "false", "tie_word_embeddings"},
      {"rms_norm_eps", 0, "rms_norm_eps"},
      {"rope_theta", -1, "rope_theta"},
      {"routed_scaling_factor", 0, "routed_scaling_factor"},
      {"routed_scaling_factor", "2.5", "routed_scaling_factor"},
      {"eos_token_id", "1", "eos_token_id"},
      {"eos_token_id", {1, "2"}, "eos_token_id"},
      {"bos_token_id", 0.5, "bos_token_id"},
      {"num_nextn_predict_layers", -1, "num_nextn_predict_layers"},
      {"rope_scaling", "yarn", "rope_scaling"},
      {"rope_scaling", {{"type", "linear"}, {"factor", 2}}, "rope_scaling.type"},
      {"rope_scaling", {{"type", "yarn"}, {"original_max_position_embeddings", 4096}},
       "rope_scaling.factor"},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 40}}, "original_max_position_embeddings"},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 0.5}, {"original_max_position_embeddings", 4096}},
       "rope_scaling.factor"},
      {"rope_scaling", {{"factor", 40}, {"original_max_position_embeddings", 4096}}, "rope_type"},
      {"rope_scaling",
       {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"beta_fast", "x"}},
       "rope_scaling.beta_fast"},
      {"quantization_config", {{"quant_method", "awq"}}, "quantization_config.quant_method"},
      {"quantization_config", {{"fmt", "e4m3"}}, "quantization_config.quant_method"},
      {"quantization_config", {{"quant_method", "fp8"}, {"fmt", "e5m2"}}, "quantization_config.fmt"},
      {"quantization_config", {{"quant_method", "fp8"}, {"activation_scheme", "static"}},
       "activation_scheme"},
      {"quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {128}}},
       "weight_block_size"},
      {"quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {128, 0}}},
       "weight_block_size"},
      {"quantization_config", 8, "quantization_config"},
  };
  for (const Case& c : cases) {
    json j = fixture_config();
    j[c.key] = c.value;
    expect_rejected(j, {c.needle, "config.json"});
  }
  {
    json j = fixture_config();  // one expert per group: noaux_tc scores groups by their top two
    j["n_group"] = 16;
    j["topk_group"] = 16;
    expect_rejected(j, {"n_group", "top two"});
  }
  for (const char* required : {"model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                               "num_attention_heads", "kv_lora_rank", "qk_nope_head_dim",
                               "qk_rope_head_dim", "v_head_dim", "intermediate_size"}) {
    json j = fixture_config();
    j.erase(required);
    expect_rejected(j, {required, "missing"});
  }
}

}  // namespace
}  // namespace latentserve::models::test
