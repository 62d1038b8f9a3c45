#include "models/config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "models/json_util.h"

namespace latentserve::models {
namespace {

using nlohmann::json;

// Larger than any real dimension, small enough that products of two never overflow int64.
constexpr int64_t kMaxSize = int64_t(1) << 26;

// Reads typed keys of one JSON object; every error names the source file and the key path.
class KeyReader {
 public:
  KeyReader(const json& object, std::string source, std::string prefix = "")
      : object_(object), source_(std::move(source)), prefix_(std::move(prefix)) {}

  // A reader for a nested object, whose keys are reported as "outer.key".
  KeyReader nested(const json& object, const std::string& key) const {
    return KeyReader(object, source_, prefix_ + key + ".");
  }

  Error error(const std::string& key, const std::string& what) const {
    return make_error(source_ + ": key '" + prefix_ + key + "': " + what);
  }
  const json* find(const std::string& key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  bool is_null_or_absent(const std::string& key) const {
    const json* v = find(key);
    return v == nullptr || v->is_null();
  }

  // A missing key takes `fallback`; without a fallback the key is required.
  Status integer(const std::string& key, int64_t& out, std::optional<int64_t> fallback) const {
    const json* v = find(key);
    if (v == nullptr) {
      if (!fallback) return error(key, "required but missing");
      out = *fallback;
      return ok_status();
    }
    return to_integer(key, *v, out);
  }
  // null (or a missing key whose fallback is nullopt) means "none".
  Status nullable_integer(const std::string& key, std::optional<int64_t>& out,
                          std::optional<int64_t> fallback) const {
    const json* v = find(key);
    if (v == nullptr) {
      out = fallback;
      return ok_status();
    }
    if (v->is_null()) {
      out.reset();
      return ok_status();
    }
    int64_t value = 0;
    LS_RETURN_IF_ERROR(to_integer(key, *v, value));
    out = value;
    return ok_status();
  }
  Status number(const std::string& key, double& out, std::optional<double> fallback) const {
    const json* v = find(key);
    if (v == nullptr) {
      if (!fallback) return error(key, "required but missing");
      out = *fallback;
      return ok_status();
    }
    if (!v->is_number()) return error(key, "expected a number, got " + json_type_name(*v));
    out = v->get<double>();
    if (!std::isfinite(out)) return error(key, "not a finite number");
    return ok_status();
  }
  Status boolean(const std::string& key, bool& out, bool fallback) const {
    const json* v = find(key);
    if (v == nullptr) {
      out = fallback;
      return ok_status();
    }
    if (!v->is_boolean()) return error(key, "expected true or false, got " + json_type_name(*v));
    out = v->get<bool>();
    return ok_status();
  }
  Status string(const std::string& key, std::string& out,
                std::optional<std::string> fallback) const {
    const json* v = find(key);
    if (v == nullptr) {
      if (!fallback) return error(key, "required but missing");
      out = *fallback;
      return ok_status();
    }
    if (!v->is_string()) return error(key, "expected a string, got " + json_type_name(*v));
    out = v->get<std::string>();
    return ok_status();
  }

  Status to_integer(const std::string& key, const json& v, int64_t& out) const {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())) {
        return error(key, "integer out of range");
      }
      out = int64_t(v.get<uint64_t>());
      return ok_status();
    }
    if (!v.is_number_integer()) return error(key, "expected an integer, got " + json_type_name(v));
    out = v.get<int64_t>();
    return ok_status();
  }

 private:
  const json& object_;
  std::string source_;
  std::string prefix_;
};

// Hugging Face's DeepseekV2Config / DeepseekV3Config defaults for keys a config may leave out.
struct Defaults {
  int64_t moe_intermediate_size, num_nextn_predict_layers, n_shared_experts, n_routed_experts;
  double routed_scaling_factor;
  const char* topk_method;
  int64_t n_group, topk_group, num_experts_per_tok, first_k_dense_replace;
  bool norm_topk_prob;
  const char* scoring_func;
  int64_t max_position_embeddings, bos_token_id, eos_token_id;
};
constexpr Defaults kV3Defaults{2048, 1, 1, 256, 2.5, "noaux_tc", 8, 4, 8, 3, true, "sigmoid",
                               4096, 0, 1};
// DeepSeek-V2 leaves the MoE keys None (a dense model) unless the config sets them.
constexpr Defaults kV2Defaults{1407, 0, 0, 0, 1.0, "greedy", 1, 1, 0, 0, false, "softmax",
                               2048, 100000, 100001};

Status read_rope_scaling(const KeyReader& top, ModelConfig& c) {
  if (top.is_null_or_absent("rope_scaling")) return ok_status();
  const json& value = *top.find("rope_scaling");
  if (!value.is_object()) {
    return top.error("rope_scaling", "expected an object or null, got " + json_type_name(value));
  }
  KeyReader r = top.nested(value, "rope_scaling");
  RopeScalingConfig rs;
  const char* type_key = value.contains("type") ? "type" : "rope_type";
  LS_RETURN_IF_ERROR(r.string(type_key, rs.type, std::nullopt));
  if (rs.type != "yarn") {
    return r.error(type_key, "unsupported rope scaling '" + rs.type + "' (only \"yarn\")");
  }
  LS_RETURN_IF_ERROR(r.number("factor", rs.factor, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("original_max_position_embeddings",
                               rs.original_max_position_embeddings, std::nullopt));
  LS_RETURN_IF_ERROR(r.number("beta_fast", rs.beta_fast, 32.0));
  LS_RETURN_IF_ERROR(r.number("beta_slow", rs.beta_slow, 1.0));
  LS_RETURN_IF_ERROR(r.number("mscale", rs.mscale, 1.0));
  LS_RETURN_IF_ERROR(r.number("mscale_all_dim", rs.mscale_all_dim, 0.0));
  if (!(rs.factor >= 1.0)) return r.error("factor", "must be at least 1");
  if (rs.original_max_position_embeddings <= 0 ||
      rs.original_max_position_embeddings > kMaxSize) {
    return r.error("original_max_position_embeddings", "must be a positive size");
  }
  if (!(rs.beta_fast > 0)) return r.error("beta_fast", "must be positive");
  if (!(rs.beta_slow > 0)) return r.error("beta_slow", "must be positive");
  if (rs.mscale < 0) return r.error("mscale", "must not be negative");
  if (rs.mscale_all_dim < 0) return r.error("mscale_all_dim", "must not be negative");
  c.rope_scaling = rs;
  return ok_status();
}

Status read_quantization(const KeyReader& top, ModelConfig& c) {
  if (top.is_null_or_absent("quantization_config")) return ok_status();
  const json& value = *top.find("quantization_config");
  if (!value.is_object()) {
    return top.error("quantization_config",
                     "expected an object or null, got " + json_type_name(value));
  }
  KeyReader r = top.nested(value, "quantization_config");
  QuantizationConfig q;
  LS_RETURN_IF_ERROR(r.string("quant_method", q.quant_method, std::nullopt));
  if (q.quant_method != "fp8") {
    return r.error("quant_method", "unsupported quantization '" + q.quant_method +
                                       "' (only \"fp8\" with 128x128 block scales)");
  }
  LS_RETURN_IF_ERROR(r.string("fmt", q.fmt, "e4m3"));
  if (q.fmt != "e4m3") return r.error("fmt", "unsupported FP8 format '" + q.fmt + "'");
  LS_RETURN_IF_ERROR(r.string("activation_scheme", q.activation_scheme, "dynamic"));
  if (q.activation_scheme != "dynamic") {
    return r.error("activation_scheme",
                   "unsupported activation scheme '" + q.activation_scheme + "'");
  }
  if (const json* block = r.find("weight_block_size")) {
    if (!block->is_array() || block->size() != 2) {
      return r.error("weight_block_size", "expected [rows, cols]");
    }
    LS_RETURN_IF_ERROR(r.to_integer("weight_block_size", (*block)[0], q.weight_block_rows));
    LS_RETURN_IF_ERROR(r.to_integer("weight_block_size", (*block)[1], q.weight_block_cols));
    if (q.weight_block_rows <= 0 || q.weight_block_cols <= 0 ||
        q.weight_block_rows > kMaxSize || q.weight_block_cols > kMaxSize) {
      return r.error("weight_block_size", "block sizes must be positive");
    }
  }
  c.quantization = q;
  return ok_status();
}

Status read_token_ids(const KeyReader& r, const Defaults& d, ModelConfig& c) {
  LS_RETURN_IF_ERROR(r.nullable_integer("bos_token_id", c.bos_token_id, d.bos_token_id));
  c.eos_token_ids.clear();
  const json* eos = r.find("eos_token_id");
  if (eos == nullptr) {
    c.eos_token_ids.push_back(d.eos_token_id);
  } else if (eos->is_array()) {
    for (const json& id : *eos) {
      int64_t v = 0;
      LS_RETURN_IF_ERROR(r.to_integer("eos_token_id", id, v));
      c.eos_token_ids.push_back(v);
    }
  } else if (!eos->is_null()) {
    int64_t v = 0;
    LS_RETURN_IF_ERROR(r.to_integer("eos_token_id", *eos, v));
    c.eos_token_ids.push_back(v);
  }
  return ok_status();
}

Status read_fields(const KeyReader& r, const Defaults& d, ModelConfig& c) {
  // The keys that fix the attention and embedding shapes are required: a silent full-size
  // default would only resurface later as a confusing shape mismatch.
  LS_RETURN_IF_ERROR(r.integer("vocab_size", c.vocab_size, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("hidden_size", c.hidden_size, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("intermediate_size", c.intermediate_size, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("num_hidden_layers", c.num_hidden_layers, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("num_attention_heads", c.num_attention_heads, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("kv_lora_rank", c.kv_lora_rank, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("qk_nope_head_dim", c.qk_nope_head_dim, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("qk_rope_head_dim", c.qk_rope_head_dim, std::nullopt));
  LS_RETURN_IF_ERROR(r.integer("v_head_dim", c.v_head_dim, std::nullopt));
  LS_RETURN_IF_ERROR(r.nullable_integer("q_lora_rank", c.q_lora_rank, 1536));

  std::optional<int64_t> opt;
  LS_RETURN_IF_ERROR(r.nullable_integer("n_routed_experts", opt, d.n_routed_experts));
  c.n_routed_experts = opt.value_or(0);
  LS_RETURN_IF_ERROR(r.nullable_integer("n_shared_experts", opt, d.n_shared_experts));
  c.n_shared_experts = opt.value_or(0);
  LS_RETURN_IF_ERROR(r.nullable_integer("num_experts_per_tok", opt, d.num_experts_per_tok));
  c.num_experts_per_tok = opt.value_or(0);
  LS_RETURN_IF_ERROR(r.nullable_integer("n_group", opt, d.n_group));
  c.n_group = opt.value_or(1);
  LS_RETURN_IF_ERROR(r.nullable_integer("topk_group", opt, d.topk_group));
  c.topk_group = opt.value_or(1);
  LS_RETURN_IF_ERROR(r.integer("moe_intermediate_size", c.moe_intermediate_size,
                               d.moe_intermediate_size));
  LS_RETURN_IF_ERROR(r.number("routed_scaling_factor", c.routed_scaling_factor,
                              d.routed_scaling_factor));
  LS_RETURN_IF_ERROR(r.boolean("norm_topk_prob", c.norm_topk_prob, d.norm_topk_prob));
  LS_RETURN_IF_ERROR(r.string("scoring_func", c.scoring_func, std::string(d.scoring_func)));
  LS_RETURN_IF_ERROR(r.string("topk_method", c.topk_method, std::string(d.topk_method)));
  LS_RETURN_IF_ERROR(r.integer("first_k_dense_replace", c.first_k_dense_replace,
                               d.first_k_dense_replace));
  LS_RETURN_IF_ERROR(r.integer("moe_layer_freq", c.moe_layer_freq, 1));
  LS_RETURN_IF_ERROR(r.number("rms_norm_eps", c.rms_norm_eps, 1e-6));
  LS_RETURN_IF_ERROR(r.number("rope_theta", c.rope_theta, 10000.0));
  LS_RETURN_IF_ERROR(r.integer("max_position_embeddings", c.max_position_embeddings,
                               d.max_position_embeddings));
  LS_RETURN_IF_ERROR(r.integer("num_nextn_predict_layers", c.num_nextn_predict_layers,
                               d.num_nextn_predict_layers));
  LS_RETURN_IF_ERROR(r.boolean("tie_word_embeddings", c.tie_word_embeddings, false));
  LS_RETURN_IF_ERROR(read_token_ids(r, d, c));
  LS_RETURN_IF_ERROR(read_rope_scaling(r, c));
  return read_quantization(r, c);
}

// Keys we do not store but whose values change the architecture.
Status check_architecture_keys(const KeyReader& r, const ModelConfig& c) {
  std::string act;
  LS_RETURN_IF_ERROR(r.string("hidden_act", act, "silu"));
  if (act != "silu") return r.error("hidden_act", "unsupported activation '" + act + "' (only silu)");
  bool attention_bias = false;
  LS_RETURN_IF_ERROR(r.boolean("attention_bias", attention_bias, false));
  if (attention_bias) return r.error("attention_bias", "attention biases are not supported");
  std::optional<int64_t> kv_heads;
  LS_RETURN_IF_ERROR(r.nullable_integer("num_key_value_heads", kv_heads, std::nullopt));
  if (kv_heads && *kv_heads != c.num_attention_heads) {
    return r.error("num_key_value_heads", "must equal num_attention_heads under MLA");
  }
  return ok_status();
}

Status check_sizes(const KeyReader& r, const ModelConfig& c) {
  auto positive = [&](const char* key, int64_t v) -> Status {
    if (v <= 0 || v > kMaxSize) {
      return r.error(key, "must be a positive size (at most " + std::to_string(kMaxSize) +
                              "), got " + std::to_string(v));
    }
    return ok_status();
  };
  auto non_negative = [&](const char* key, int64_t v) -> Status {
    if (v < 0 || v > kMaxSize) return r.error(key, "must be >= 0, got " + std::to_string(v));
    return ok_status();
  };
  LS_RETURN_IF_ERROR(positive("vocab_size", c.vocab_size));
  LS_RETURN_IF_ERROR(positive("hidden_size", c.hidden_size));
  LS_RETURN_IF_ERROR(positive("intermediate_size", c.intermediate_size));
  LS_RETURN_IF_ERROR(positive("num_hidden_layers", c.num_hidden_layers));
  LS_RETURN_IF_ERROR(positive("num_attention_heads", c.num_attention_heads));
  LS_RETURN_IF_ERROR(positive("kv_lora_rank", c.kv_lora_rank));
  LS_RETURN_IF_ERROR(positive("qk_nope_head_dim", c.qk_nope_head_dim));
  LS_RETURN_IF_ERROR(positive("qk_rope_head_dim", c.qk_rope_head_dim));
  LS_RETURN_IF_ERROR(positive("v_head_dim", c.v_head_dim));
  if (c.q_lora_rank) LS_RETURN_IF_ERROR(positive("q_lora_rank", *c.q_lora_rank));
  LS_RETURN_IF_ERROR(positive("max_position_embeddings", c.max_position_embeddings));
  LS_RETURN_IF_ERROR(positive("moe_layer_freq", c.moe_layer_freq));
  LS_RETURN_IF_ERROR(positive("n_group", c.n_group));
  LS_RETURN_IF_ERROR(positive("topk_group", c.topk_group));
  LS_RETURN_IF_ERROR(non_negative("n_routed_experts", c.n_routed_experts));
  LS_RETURN_IF_ERROR(non_negative("n_shared_experts", c.n_shared_experts));
  LS_RETURN_IF_ERROR(non_negative("num_experts_per_tok", c.num_experts_per_tok));
  LS_RETURN_IF_ERROR(non_negative("first_k_dense_replace", c.first_k_dense_replace));
  LS_RETURN_IF_ERROR(non_negative("num_nextn_predict_layers", c.num_nextn_predict_layers));
  if (c.qk_rope_head_dim % 2 != 0) {
    return r.error("qk_rope_head_dim", "must be even (RoPE rotates pairs), got " +
                                           std::to_string(c.qk_rope_head_dim));
  }
  if (c.first_k_dense_replace > c.num_hidden_layers) {
    return r.error("first_k_dense_replace", "exceeds num_hidden_layers (" +
                                                std::to_string(c.num_hidden_layers) + ")");
  }
  if (!(c.rms_norm_eps > 0)) return r.error("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) return r.error("rope_theta", "must be positive");
  return ok_status();
}

Status check_routing(const KeyReader& r, const ModelConfig& c) {
  if (c.scoring_func != "sigmoid" && c.scoring_func != "softmax") {
    return r.error("scoring_func", "unsupported '" + c.scoring_func + "' (sigmoid or softmax)");
  }
  const bool grouped = c.topk_method == "noaux_tc" || c.topk_method == "group_limited_greedy";
  if (!grouped && c.topk_method != "greedy") {
    return r.error("topk_method", "unsupported '" + c.topk_method +
                                      "' (noaux_tc, group_limited_greedy or greedy)");
  }
  if (!(c.routed_scaling_factor > 0)) return r.error("routed_scaling_factor", "must be positive");
  if (c.n_routed_experts == 0) return ok_status();
  if (c.moe_intermediate_size <= 0 || c.moe_intermediate_size > kMaxSize) {
    return r.error("moe_intermediate_size", "must be a positive size when experts exist");
  }
  if (c.num_experts_per_tok <= 0) {
    return r.error("num_experts_per_tok", "must be positive when experts exist");
  }
  if (c.num_experts_per_tok > c.n_routed_experts) {
    return r.error("num_experts_per_tok", "exceeds n_routed_experts (" +
                                              std::to_string(c.n_routed_experts) + ")");
  }
  if (c.topk_group > c.n_group) {
    return r.error("topk_group", "exceeds n_group (" + std::to_string(c.n_group) + ")");
  }
  if (c.n_routed_experts % c.n_group != 0) {
    return r.error("n_group", "n_routed_experts (" + std::to_string(c.n_routed_experts) +
                                  ") is not a multiple of n_group");
  }
  const int64_t per_group = c.n_routed_experts / c.n_group;
  if (grouped && c.num_experts_per_tok > c.topk_group * per_group) {
    return r.error("num_experts_per_tok",
                   "exceeds topk_group x experts per group (" +
                       std::to_string(c.topk_group * per_group) + ")");
  }
  if (c.topk_method == "noaux_tc" && per_group < 2) {
    return r.error("n_group", "noaux_tc scores each group by its top two experts, but groups "
                              "hold " + std::to_string(per_group));
  }
  return ok_status();
}

}  // namespace

bool ModelConfig::is_moe_layer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && moe_layer_freq > 0 &&
         layer % moe_layer_freq == 0;
}

double ModelConfig::softmax_scale() const {
  double scale = 1.0 / std::sqrt(double(qk_head_dim()));
  if (rope_scaling && rope_scaling->mscale_all_dim != 0.0 && rope_scaling->factor > 1.0) {
    double m = 0.1 * rope_scaling->mscale_all_dim * std::log(rope_scaling->factor) + 1.0;
    scale *= m * m;
  }
  return scale;
}

// Checkpoints that keep DeepSeek's architecture and tensor names under a model_type of their own,
// recognised by that name together with the architecture class their config.json declares.
struct ModelTypeAlias {
  const char* declared;
  const char* model_type;
  const char* architecture_class;
};
constexpr ModelTypeAlias kModelTypeAliases[] = {
    {"kimi_k2", "deepseek_v3", "DeepseekV3ForCausalLM"},  // Moonshot's Kimi-K2
};

// Sets c.model_type (the architecture) from config.json's model_type and, for an alias, checks
// that `architectures` names the class the alias stands for.
Status read_model_type(const KeyReader& r, const json& root, ModelConfig& c) {
  LS_RETURN_IF_ERROR(r.string("model_type", c.declared_model_type, std::nullopt));
  if (c.declared_model_type == "deepseek_v3" || c.declared_model_type == "deepseek_v2") {
    c.model_type = c.declared_model_type;
    return ok_status();
  }
  for (const ModelTypeAlias& alias : kModelTypeAliases) {
    if (c.declared_model_type != alias.declared) continue;
    const auto classes = root.find("architectures");
    const bool declared = classes != root.end() && classes->is_array() &&
                          std::find(classes->begin(), classes->end(), alias.architecture_class) != classes->end();
    if (!declared) {
      return r.error("model_type", std::string("'") + alias.declared + "' is served as " + alias.model_type +
                                       " only when architectures names " + alias.architecture_class);
    }
    c.model_type = alias.model_type;
    return ok_status();
  }
  return r.error("model_type", "unsupported model type '" + c.declared_model_type +
                                   "' (deepseek_v3, deepseek_v2 or kimi_k2; another checkpoint of DeepSeek-V3's "
                                   "architecture loads once its model_type is set to deepseek_v3)");
}

Result<ModelConfig> parse_model_config(const std::string& json_text, const std::string& source) {
  LS_ASSIGN_OR_RETURN(json root, parse_json(json_text, source));
  if (!root.is_object()) return make_error(source + ": expected a JSON object at the top level");
  KeyReader r(root, source);
  ModelConfig c;
  LS_RETURN_IF_ERROR(read_model_type(r, root, c));
  const Defaults* defaults = c.model_type == "deepseek_v3" ? &kV3Defaults : &kV2Defaults;
  LS_RETURN_IF_ERROR(read_fields(r, *defaults, c));
  LS_RETURN_IF_ERROR(check_architecture_keys(r, c));
  LS_RETURN_IF_ERROR(check_sizes(r, c));
  LS_RETURN_IF_ERROR(check_routing(r, c));
  return c;
}

Result<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  LS_ASSIGN_OR_RETURN(std::string text, read_text_file(path, 16u << 20));
  return parse_model_config(text, path);
}

}  // namespace latentserve::models
