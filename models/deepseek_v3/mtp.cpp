#include "models/deepseek_v3/mtp.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "models/deepseek_v3/ffn.h"

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

namespace {

// Attention of the MTP block over its shifted cache. Each sequence's context is gathered into a
// contiguous scratch cache (so the attention kernels see plain positions 0..context_len-1), the
// layer runs there, and this step's new latents are scattered back to their shifted slots.
void shifted_attention(const MtpContext& ctx, const float* normed, const Batch& batch,
                       const cpu::LatentCache& cache, float* out) {
  const int64_t bs = cache.block_size;
  const int64_t dim = cache.token_dim();
  Batch local;
  local.token_ids = batch.token_ids;
  local.positions = batch.positions;
  local.slot_mapping.resize(batch.token_ids.size());
  int64_t next_block = 0;
  for (const BatchSequence& s : batch.sequences) {
    BatchSequence l = s;
    const int64_t blocks = (s.context_len + bs - 1) / bs;
    l.block_table.resize(size_t(blocks));
    for (int64_t b = 0; b < blocks; ++b) l.block_table[size_t(b)] = int32_t(next_block + b);
    for (int32_t i = 0; i < s.query_len; ++i) {
      const int64_t pos = s.context_len - s.query_len + i;
      local.slot_mapping[size_t(s.query_start + i)] = next_block * bs + pos;
    }
    next_block += blocks;
    local.sequences.push_back(std::move(l));
  }
  std::vector<float> scratch(size_t(std::max<int64_t>(next_block, 1) * bs * dim));
  cpu::LatentCache temp = cache;
  temp.data = scratch.data();
  temp.num_blocks = std::max<int64_t>(next_block, 1);

  for (size_t q = 0; q < batch.sequences.size(); ++q) {
    const BatchSequence& s = batch.sequences[q];
    const int64_t base = int64_t(local.sequences[q].block_table.empty() ? 0 : local.sequences[q].block_table[0]) * bs;
    for (int64_t pos = 0; pos < s.context_len - s.query_len; ++pos) {
      std::memcpy(temp.slot(base + pos), cache.slot(mtp_slot(s.block_table.data(), bs, pos)),
                  size_t(dim) * sizeof(float));
    }
  }
  ctx.attention->forward(normed, plan_attention(local), temp, *ctx.rope_inv_freq, ctx.form, out);
  for (size_t q = 0; q < batch.sequences.size(); ++q) {
    const BatchSequence& s = batch.sequences[q];
    const int64_t base = int64_t(local.sequences[q].block_table[0]) * bs;
    for (int64_t pos = s.context_len - s.query_len; pos < s.context_len; ++pos) {
      std::memcpy(cache.slot(mtp_slot(s.block_table.data(), bs, pos)), temp.slot(base + pos),
                  size_t(dim) * sizeof(float));
    }
  }
}

}  // namespace

MtpForwardOutput mtp_forward_layer(const MtpContext& ctx, const Batch& batch, const float* hidden,
                             const cpu::LatentCache& cache, ForwardTrace* trace) {
  const ModelConfig& c = *ctx.config;
  const MtpLayerWeights& w = *ctx.weights;
  const DecoderLayerWeights& block = w.block;
  const int64_t T = batch.num_tokens();
  const int64_t H = c.hidden_size;
  const float eps = float(c.rms_norm_eps);

  // cat: [T, 2H] = [enorm(embed(t_{i+1})) | hnorm(h_i)], the embedding half first.
  std::vector<float> cat(size_t(T * 2 * H));
  std::vector<float> embed(size_t(T * H));
  cpu::embedding_lookup(w.embed_tokens, batch.token_ids.data(), T, embed.data());
  cpu::rmsnorm(embed.data(), H, T, H, w.enorm.data(), eps, cat.data(), 2 * H);
  cpu::rmsnorm(hidden, H, T, H, w.hnorm.data(), eps, cat.data() + H, 2 * H);
  // x: [T, H], the MTP block's residual stream.
  std::vector<float> x(size_t(T * H));
  cpu::matmul(cat.data(), T, w.eh_proj, x.data());
  trace_tensor(trace, "mtp.eh_proj", x.data(), T, H, H);

  std::vector<float> normed(size_t(T * H));
  std::vector<float> branch(size_t(T * H));
  cpu::rmsnorm(x.data(), H, T, H, block.input_layernorm.data(), eps, normed.data(), H);
  shifted_attention(ctx, normed.data(), batch, cache, branch.data());
  trace_tensor(trace, "mtp.attn_out", branch.data(), T, H, H);
  for (int64_t i = 0; i < T * H; ++i) x[size_t(i)] += branch[size_t(i)];
  cpu::rmsnorm(x.data(), H, T, H, block.post_attention_layernorm.data(), eps, normed.data(), H);
  if (block.moe) {
    moe_forward(*block.moe, *ctx.router, normed.data(), T, branch.data(), trace, "mtp");
  } else {
    mlp_forward(*block.mlp, normed.data(), T, branch.data());
  }
  for (int64_t i = 0; i < T * H; ++i) x[size_t(i)] += branch[size_t(i)];

  MtpForwardOutput out;
  out.hidden.resize(size_t(T * H));
  cpu::rmsnorm(x.data(), H, T, H, w.shared_head_norm.data(), eps, out.hidden.data(), H);
  trace_tensor(trace, "mtp.norm", out.hidden.data(), T, H, H);
  const int64_t rows = int64_t(batch.logit_rows.size());
  std::vector<float> selected(size_t(rows * H));
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = &out.hidden[size_t(int64_t(batch.logit_rows[size_t(r)]) * H)];
    std::copy(src, src + H, &selected[size_t(r * H)]);
  }
  out.logits.resize(size_t(rows * c.vocab_size));
  cpu::matmul(selected.data(), rows, w.shared_head_head, out.logits.data());
  return out;
}

}  // namespace latentserve::models::deepseek_v3
