#include "models/deepseek_v3/model.h"

#include <algorithm>
#include <string>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"
#include "models/deepseek_v3/ffn.h"

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

namespace {

RoutingRecord record_of(const Batch& batch, bool mtp) {
  RoutingRecord r;
  r.mtp = mtp;
  r.tokens = batch.num_tokens();
  r.logit_rows = int64_t(batch.logit_rows.size());
  for (const BatchSequence& s : batch.sequences) r.max_query_len = std::max<int64_t>(r.max_query_len, s.query_len);
  return r;
}

void count_experts(RoutingRecord& r, const std::vector<int32_t>& ids, int64_t num_experts) {
  std::vector<bool> touched(size_t(num_experts), false);
  for (int32_t e : ids) touched[size_t(e)] = true;
  r.moe_layers += 1;
  r.distinct_experts += int64_t(std::count(touched.begin(), touched.end(), true));
}

}  // namespace

Result<std::unique_ptr<Model>> Model::load(const std::string& model_dir,
                                           const ModelOptions& options) {
  std::unique_ptr<Model> m(new Model());
  LS_ASSIGN_OR_RETURN(m->config_, load_model_config(model_dir));
  LS_ASSIGN_OR_RETURN(m->checkpoint_, Checkpoint::open(model_dir, options.weight_load));
  LS_ASSIGN_OR_RETURN(m->weights_, load_weights(m->checkpoint_, m->config_));
  m->options_ = options;
  m->rope_inv_freq_ = cpu::rope_inv_freq(rope_params(m->config_));
  m->router_ = router_params(m->config_);
  m->attention_.reserve(m->weights_.layers.size());
  for (const DecoderLayerWeights& layer : m->weights_.layers) {
    m->attention_.emplace_back(m->config_, layer.attn);
  }
  m->mtp_attention_.reserve(m->weights_.mtp.size());
  for (const MtpLayerWeights& mtp : m->weights_.mtp) {
    m->mtp_attention_.emplace_back(m->config_, mtp.block.attn);
  }
  return m;
}

Result<ForwardOutput> Model::forward(const Batch& batch, const LatentCacheStorage& cache,
                                     ForwardTrace* trace) const {
  if (cache.num_layers() < num_cache_layers()) {
    return make_error("forward: the cache has " + std::to_string(cache.num_layers()) +
                      " layers, the model needs " + std::to_string(num_cache_layers()));
  }
  LS_RETURN_IF_ERROR(batch.validate(config_.vocab_size, cache.num_blocks(), cache.block_size()));

  const int64_t T = batch.num_tokens();
  const int64_t H = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  const AttentionPlan plan = plan_attention(batch);

  // x: [T, hidden], the residual stream.
  std::vector<float> x(size_t(T * H));
  cpu::embedding_lookup(weights_.embed_tokens, batch.token_ids.data(), T, x.data());
  trace_tensor(trace, "embed", x.data(), T, H, H);

  std::vector<float> normed(size_t(T * H));
  std::vector<float> branch(size_t(T * H));
  // Routing is read back through a trace of the MoE layers only when counting.
  ForwardTrace routing;
  ForwardTrace* moe_trace = trace ? trace : (routing_log_ ? &routing : nullptr);
  RoutingRecord record = record_of(batch, /*mtp=*/false);
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const DecoderLayerWeights& layer = weights_.layers[l];
    const std::string name = "layer." + std::to_string(l);

    cpu::rmsnorm(x.data(), H, T, H, layer.input_layernorm.data(), eps, normed.data(), H);
    attention_[l].forward(normed.data(), plan, cache.layer(int64_t(l)), rope_inv_freq_,
                          options_.mla_form, branch.data());
    trace_tensor(trace, name + ".attn_out", branch.data(), T, H, H);
    for (int64_t i = 0; i < T * H; ++i) x[size_t(i)] += branch[size_t(i)];

    cpu::rmsnorm(x.data(), H, T, H, layer.post_attention_layernorm.data(), eps, normed.data(), H);
    if (layer.moe) {
      moe_forward(*layer.moe, router_, normed.data(), T, branch.data(), moe_trace, name);
      if (routing_log_) count_experts(record, moe_trace->indices[name + ".expert_ids"], config_.n_routed_experts);
    } else {
      mlp_forward(*layer.mlp, normed.data(), T, branch.data());
    }
    trace_tensor(trace, name + ".ffn_out", branch.data(), T, H, H);
    for (int64_t i = 0; i < T * H; ++i) x[size_t(i)] += branch[size_t(i)];
    trace_tensor(trace, name + ".output", x.data(), T, H, H);
  }

  if (routing_log_) routing_log_->push_back(record);

  ForwardOutput out;
  out.hidden.resize(size_t(T * H));
  cpu::rmsnorm(x.data(), H, T, H, weights_.norm.data(), eps, out.hidden.data(), H);
  trace_tensor(trace, "norm", out.hidden.data(), T, H, H);

  // lm_head only over the rows that need logits (usually the last token of each sequence).
  const int64_t rows = int64_t(batch.logit_rows.size());
  std::vector<float> selected(size_t(rows * H));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = &out.hidden[size_t(int64_t(batch.logit_rows[size_t(r)]) * H)];
    std::copy(src, src + H, &selected[size_t(r * H)]);
  }
  out.logits.resize(size_t(rows * config_.vocab_size));
  cpu::matmul(selected.data(), rows, weights_.lm_head, out.logits.data());
  return out;
}

Result<MtpForwardOutput> Model::mtp_forward(const Batch& batch, const std::vector<float>& hidden,
                                            const LatentCacheStorage& cache, int64_t mtp_layer,
                                            ForwardTrace* trace) const {
  if (mtp_layer < 0 || mtp_layer >= num_mtp_layers()) {
    return make_error("mtp_forward: MTP layer " + std::to_string(mtp_layer) +
                      " requested, the checkpoint has " + std::to_string(num_mtp_layers()));
  }
  const int64_t layer = num_cache_layers() + mtp_layer;
  if (cache.num_layers() <= layer) {
    return make_error("mtp_forward: the cache has " + std::to_string(cache.num_layers()) +
                      " layers, MTP layer " + std::to_string(mtp_layer) + " needs cache layer " +
                      std::to_string(layer));
  }
  LS_RETURN_IF_ERROR(batch.validate(config_.vocab_size, cache.num_blocks(), cache.block_size()));
  if (int64_t(hidden.size()) != batch.num_tokens() * config_.hidden_size) {
    return make_error("mtp_forward: hidden has " + std::to_string(hidden.size()) +
                      " values, expected " + std::to_string(batch.num_tokens()) + " rows of " +
                      std::to_string(config_.hidden_size));
  }
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const BatchSequence& seq = batch.sequences[s];
    const int64_t need = seq.context_len / cache.block_size() + 1;  // covers position context_len
    if (int64_t(seq.block_table.size()) < need) {
      return make_error("mtp_forward: batch sequence " + std::to_string(s) + " has " +
                        std::to_string(seq.block_table.size()) + " blocks; the shifted MTP layout of " +
                        std::to_string(seq.context_len) + " positions needs " + std::to_string(need));
    }
    for (int64_t b = 0; b < need; ++b) {
      if (seq.block_table[size_t(b)] < 0 || seq.block_table[size_t(b)] >= cache.num_blocks()) {
        return make_error("mtp_forward: batch sequence " + std::to_string(s) + ": block id " +
                          std::to_string(seq.block_table[size_t(b)]) + " outside the cache");
      }
    }
  }
  MtpContext ctx;
  ctx.config = &config_;
  ctx.weights = &weights_.mtp[size_t(mtp_layer)];
  ctx.attention = &mtp_attention_[size_t(mtp_layer)];
  ctx.rope_inv_freq = &rope_inv_freq_;
  ctx.router = &router_;
  ctx.form = options_.mla_form;
  if (!routing_log_) return mtp_forward_layer(ctx, batch, hidden.data(), cache.layer(layer), trace);
  ForwardTrace routing;
  ForwardTrace* t = trace ? trace : &routing;
  MtpForwardOutput out = mtp_forward_layer(ctx, batch, hidden.data(), cache.layer(layer), t);
  RoutingRecord record = record_of(batch, /*mtp=*/true);
  if (auto it = t->indices.find("mtp.expert_ids"); it != t->indices.end()) {
    count_experts(record, it->second, config_.n_routed_experts);
  }
  routing_log_->push_back(record);
  return out;
}

}  // namespace latentserve::models::deepseek_v3
