#include "models/deepseek_v3/weight_table.h"

namespace latentserve::models::deepseek_v3 {
namespace {

enum Split { kReplicated = -1, kRows = 0, kCols = 1 };

// Appends bindings; `mtp_layer` and `expert` tag what is added while they are set.
struct Table {
  std::vector<WeightBinding>& out;
  int64_t mtp_layer = -1;
  int64_t expert = -1;

  void matrix(std::string name, WeightMatrix& w, int64_t rows, int64_t cols, int split) {
    WeightBinding b;
    b.name = std::move(name);
    b.shape = {rows, cols};
    b.matrix = &w;
    b.mtp_layer = mtp_layer;
    b.shard_dim = split;
    b.expert = expert;
    out.push_back(std::move(b));
  }
  void vector(std::string name, std::vector<float>& v, int64_t n, bool required = true) {
    WeightBinding b;
    b.name = std::move(name);
    b.shape = {n};
    b.vector = &v;
    b.required = required;
    b.mtp_layer = mtp_layer;
    out.push_back(std::move(b));
  }
};

void bind_attention(Table& t, const std::string& p, const ModelConfig& c, MlaWeights& w) {
  const int64_t hidden = c.hidden_size, heads = c.num_attention_heads;
  const std::string a = p + "self_attn.";
  if (c.q_lora_rank) {
    const int64_t rank = *c.q_lora_rank;
    t.matrix(a + "q_a_proj.weight", w.q_a_proj, rank, hidden, kReplicated);
    t.vector(a + "q_a_layernorm.weight", w.q_a_layernorm, rank);
    t.matrix(a + "q_b_proj.weight", w.q_b_proj, heads * c.qk_head_dim(), rank, kRows);
  } else {
    t.matrix(a + "q_proj.weight", w.q_proj, heads * c.qk_head_dim(), hidden, kRows);
  }
  t.matrix(a + "kv_a_proj_with_mqa.weight", w.kv_a_proj_with_mqa,
           c.kv_lora_rank + c.qk_rope_head_dim, hidden, kReplicated);
  t.vector(a + "kv_a_layernorm.weight", w.kv_a_layernorm, c.kv_lora_rank);
  t.matrix(a + "kv_b_proj.weight", w.kv_b_proj, heads * (c.qk_nope_head_dim + c.v_head_dim),
           c.kv_lora_rank, kRows);
  t.matrix(a + "o_proj.weight", w.o_proj, hidden, heads * c.v_head_dim, kCols);
}

void bind_mlp(Table& t, const std::string& p, MlpWeights& w, int64_t width, int64_t hidden) {
  t.matrix(p + "gate_proj.weight", w.gate_proj, width, hidden, kRows);
  t.matrix(p + "up_proj.weight", w.up_proj, width, hidden, kRows);
  t.matrix(p + "down_proj.weight", w.down_proj, hidden, width, kCols);
}

void bind_moe(Table& t, const std::string& p, const ModelConfig& c, MoeWeights& w) {
  t.matrix(p + "gate.weight", w.gate, c.n_routed_experts, c.hidden_size, kReplicated);
  // Only noaux_tc routing reads the correction bias; other checkpoints may still carry it.
  t.vector(p + "gate.e_score_correction_bias", w.e_score_correction_bias, c.n_routed_experts,
           /*required=*/c.topk_method == "noaux_tc");
  w.experts.resize(size_t(c.n_routed_experts));
  for (int64_t e = 0; e < c.n_routed_experts; ++e) {
    t.expert = e;
    bind_mlp(t, p + "experts." + std::to_string(e) + ".", w.experts[size_t(e)],
             c.moe_intermediate_size, c.hidden_size);
  }
  t.expert = -1;
  if (c.n_shared_experts > 0) {
    w.shared_experts.emplace();
    bind_mlp(t, p + "shared_experts.", *w.shared_experts,
             c.n_shared_experts * c.moe_intermediate_size, c.hidden_size);
  }
}

void bind_decoder_layer(Table& t, int64_t index, const ModelConfig& c, DecoderLayerWeights& w) {
  const std::string p = "model.layers." + std::to_string(index) + ".";
  t.vector(p + "input_layernorm.weight", w.input_layernorm, c.hidden_size);
  t.vector(p + "post_attention_layernorm.weight", w.post_attention_layernorm, c.hidden_size);
  bind_attention(t, p, c, w.attn);
  if (c.is_moe_layer(index)) {
    w.moe.emplace();
    bind_moe(t, p + "mlp.", c, *w.moe);
  } else {
    w.mlp.emplace();
    bind_mlp(t, p + "mlp.", *w.mlp, c.intermediate_size, c.hidden_size);
  }
}

// MTP layer i sits at checkpoint index num_hidden_layers + i.
void bind_mtp_layer(Table& t, int64_t i, const ModelConfig& c, MtpLayerWeights& w) {
  const int64_t index = c.num_hidden_layers + i;
  const std::string p = "model.layers." + std::to_string(index) + ".";
  t.mtp_layer = i;
  t.vector(p + "enorm.weight", w.enorm, c.hidden_size);
  t.vector(p + "hnorm.weight", w.hnorm, c.hidden_size);
  t.matrix(p + "eh_proj.weight", w.eh_proj, c.hidden_size, 2 * c.hidden_size, kReplicated);
  bind_decoder_layer(t, index, c, w.block);
  t.vector(p + "shared_head.norm.weight", w.shared_head_norm, c.hidden_size);
  t.matrix(p + "shared_head.head.weight", w.shared_head_head, c.vocab_size, c.hidden_size, kRows);
  t.matrix(p + "embed_tokens.weight", w.embed_tokens, c.vocab_size, c.hidden_size, kRows);
  t.mtp_layer = -1;
}

}  // namespace

std::vector<WeightBinding> build_weight_table(const ModelConfig& config,
                                              DeepseekV3Weights& weights) {
  std::vector<WeightBinding> out;
  Table t{out};
  weights.layers.assign(size_t(config.num_hidden_layers), DecoderLayerWeights{});
  weights.mtp.assign(size_t(config.num_nextn_predict_layers), MtpLayerWeights{});
  t.matrix("model.embed_tokens.weight", weights.embed_tokens, config.vocab_size,
           config.hidden_size, kRows);
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    bind_decoder_layer(t, l, config, weights.layers[size_t(l)]);
  }
  t.vector("model.norm.weight", weights.norm, config.hidden_size);
  if (!config.tie_word_embeddings) {
    t.matrix("lm_head.weight", weights.lm_head, config.vocab_size, config.hidden_size, kRows);
  }
  for (int64_t i = 0; i < config.num_nextn_predict_layers; ++i) {
    bind_mtp_layer(t, i, config, weights.mtp[size_t(i)]);
  }
  return out;
}

}  // namespace latentserve::models::deepseek_v3
