#include "models/deepseek_v3/mla.h"

#include <cstring>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/rope.h"

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

AttentionPlan plan_attention(const Batch& batch) {
  AttentionPlan plan;
  plan.batch = &batch;
  plan.sequences.reserve(batch.sequences.size());
  for (const BatchSequence& s : batch.sequences) {
    cpu::AttentionSequence a;
    a.query_start = s.query_start;
    a.query_len = s.query_len;
    a.context_len = s.context_len;
    a.block_table = s.block_table.data();
    plan.sequences.push_back(a);
  }
  return plan;
}

cpu::RopeParams rope_params(const ModelConfig& config) {
  cpu::RopeParams p;
  p.rotary_dim = config.qk_rope_head_dim;
  p.theta = config.rope_theta;
  if (config.rope_scaling) {
    p.yarn = true;
    p.scaling.factor = config.rope_scaling->factor;
    p.scaling.original_max_position_embeddings =
        double(config.rope_scaling->original_max_position_embeddings);
    p.scaling.beta_fast = config.rope_scaling->beta_fast;
    p.scaling.beta_slow = config.rope_scaling->beta_slow;
    p.scaling.mscale = config.rope_scaling->mscale;
    p.scaling.mscale_all_dim = config.rope_scaling->mscale_all_dim;
  }
  return p;
}

MlaLayer::MlaLayer(const ModelConfig& config, const MlaWeights& weights)
    : config_(&config),
      w_(&weights),
      heads_(config.num_attention_heads),
      nope_(config.qk_nope_head_dim),
      rope_(config.qk_rope_head_dim),
      v_(config.v_head_dim),
      lora_(config.kv_lora_rank),
      softmax_scale_(float(config.softmax_scale())),
      cos_sin_factor_(float(cpu::rope_cos_sin_factor(rope_params(config)))),
      absorbed_(weights.kv_b_proj, heads_, nope_, v_) {}

void MlaLayer::project_queries(const float* x, int64_t tokens, float* q) const {
  if (config_->q_lora_rank) {
    const int64_t rank = *config_->q_lora_rank;
    std::vector<float> qa(size_t(tokens * rank));
    cpu::matmul(x, tokens, w_->q_a_proj, qa.data());  // [T, q_lora_rank]
    cpu::rmsnorm(qa.data(), rank, tokens, rank, w_->q_a_layernorm.data(),
                 float(config_->rms_norm_eps), qa.data(), rank);
    cpu::matmul(qa.data(), tokens, w_->q_b_proj, q);  // [T, heads * (nope + rope)]
  } else {
    cpu::matmul(x, tokens, w_->q_proj, q);
  }
}

void MlaLayer::forward(const float* x, const AttentionPlan& plan, const cpu::LatentCache& cache,
                       const std::vector<float>& rope_inv_freq, MlaForm form, float* out) const {
  const Batch& batch = *plan.batch;
  const int64_t T = batch.num_tokens();
  const int64_t qk = nope_ + rope_;
  const int64_t latent_dim = lora_ + rope_;

  std::vector<float> q(size_t(T * heads_ * qk));  // [T, heads, nope + rope]
  project_queries(x, T, q.data());
  cpu::rope_interleaved(q.data() + nope_, T, heads_ * qk, heads_, qk, rope_,
                        batch.positions.data(), rope_inv_freq.data(), cos_sin_factor_);

  // latent: [T, kv_lora_rank + rope] = [norm(c) | rope(k_pe)], exactly what the cache stores.
  std::vector<float> latent(size_t(T * latent_dim));
  cpu::matmul(x, T, w_->kv_a_proj_with_mqa, latent.data());
  cpu::rmsnorm(latent.data(), latent_dim, T, lora_, w_->kv_a_layernorm.data(),
               float(config_->rms_norm_eps), latent.data(), latent_dim);
  cpu::rope_interleaved(latent.data() + lora_, T, latent_dim, 1, rope_, rope_,
                        batch.positions.data(), rope_inv_freq.data(), cos_sin_factor_);
  cpu::write_latent_cache(latent.data(), batch.slot_mapping.data(), T, cache);

  std::vector<float> o(size_t(T * heads_ * v_));  // [T, heads, v]
  if (form == MlaForm::kAbsorbed) {
    attend_absorbed(q.data(), plan, cache, o.data());
  } else {
    attend_naive(q.data(), plan, cache, o.data());
  }
  cpu::matmul(o.data(), T, w_->o_proj, out);  // [T, hidden]
}

void MlaLayer::attend_absorbed(const float* q, const AttentionPlan& plan,
                               const cpu::LatentCache& cache, float* o) const {
  const int64_t T = plan.batch->num_tokens();
  const int64_t qk = nope_ + rope_;
  // q_latent[t, h] = q_nope[t, h] · W_UK[h]: the query moved into latent space.
  // One product per head, shared out across threads as a list (a parallel region per head cost
  // more than the head's arithmetic at decode sizes).
  std::vector<float> q_latent(size_t(T * heads_ * lora_));
  std::vector<float> q_rope(size_t(T * heads_ * rope_));
  std::vector<cpu::MatmulTask> per_head(static_cast<size_t>(heads_));
  for (int64_t h = 0; h < heads_; ++h) {
    per_head[size_t(h)] = {q + h * qk, heads_ * qk, T, absorbed_.uk_t(h), q_latent.data() + h * lora_, heads_ * lora_};
  }
  cpu::matmul_each(per_head.data(), heads_);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < heads_; ++h) {
      std::memcpy(&q_rope[size_t((t * heads_ + h) * rope_)], q + (t * heads_ + h) * qk + nope_,
                  size_t(rope_) * sizeof(float));
    }
  }
  std::vector<float> o_latent(size_t(T * heads_ * lora_));  // [T, heads, lora]
  cpu::MlaAbsorbedParams p;
  p.q_latent = q_latent.data();
  p.q_rope = q_rope.data();
  p.cache = cache;
  p.sequences = plan.sequences.data();
  p.num_sequences = int32_t(plan.sequences.size());
  p.heads = heads_;
  p.softmax_scale = softmax_scale_;
  p.out_latent = o_latent.data();
  cpu::mla_attention_absorbed(p);
  // o[t, h] = W_UV[h] · o_latent[t, h]: back from latent space to the value head.
  for (int64_t h = 0; h < heads_; ++h) {
    per_head[size_t(h)] = {o_latent.data() + h * lora_, heads_ * lora_, T, absorbed_.uv(h), o + h * v_, heads_ * v_};
  }
  cpu::matmul_each(per_head.data(), heads_);
}

void MlaLayer::attend_naive(const float* q, const AttentionPlan& plan,
                            const cpu::LatentCache& cache, float* o) const {
  const int64_t qk = nope_ + rope_;
  const int64_t latent_dim = lora_ + rope_;
  // Gather each sequence's whole context (cached prefix + this step) from the cache.
  std::vector<cpu::VarlenSequence> seqs;
  int64_t total_kv = 0;
  for (const cpu::AttentionSequence& s : plan.sequences) {
    seqs.push_back({s.query_start, s.query_len, int32_t(total_kv), s.context_len});
    total_kv += s.context_len;
  }
  std::vector<float> ctx(size_t(total_kv * latent_dim));
  for (size_t i = 0; i < plan.sequences.size(); ++i) {
    const cpu::AttentionSequence& s = plan.sequences[i];
    for (int64_t pos = 0; pos < s.context_len; ++pos) {
      const int64_t slot = int64_t(s.block_table[pos / cache.block_size]) * cache.block_size +
                           pos % cache.block_size;
      std::memcpy(&ctx[size_t((seqs[i].kv_start + pos) * latent_dim)], cache.slot(slot),
                  size_t(latent_dim) * sizeof(float));
    }
  }
  // kv[t] = kv_b_proj(c_t): per head [k_nope | v].
  std::vector<float> kv(size_t(total_kv * heads_ * (nope_ + v_)));
  cpu::matmul(ctx.data(), latent_dim, total_kv, absorbed_.kv_b(), kv.data(), heads_ * (nope_ + v_));
  std::vector<float> k(size_t(total_kv * heads_ * qk));
  std::vector<float> v(size_t(total_kv * heads_ * v_));
  for (int64_t t = 0; t < total_kv; ++t) {
    for (int64_t h = 0; h < heads_; ++h) {
      const float* src = &kv[size_t((t * heads_ + h) * (nope_ + v_))];
      float* kd = &k[size_t((t * heads_ + h) * qk)];
      std::memcpy(kd, src, size_t(nope_) * sizeof(float));
      std::memcpy(kd + nope_, &ctx[size_t(t * latent_dim + lora_)], size_t(rope_) * sizeof(float));
      std::memcpy(&v[size_t((t * heads_ + h) * v_)], src + nope_, size_t(v_) * sizeof(float));
    }
  }
  cpu::AttentionParams p;
  p.q = q;
  p.k = k.data();
  p.v = v.data();
  p.sequences = seqs.data();
  p.num_sequences = int32_t(seqs.size());
  p.heads = heads_;
  p.head_dim_qk = qk;
  p.head_dim_v = v_;
  p.softmax_scale = softmax_scale_;
  p.out = o;
  cpu::attention_varlen(p);
}

}  // namespace latentserve::models::deepseek_v3
