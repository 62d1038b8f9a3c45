// The MTP layer on the GPU (models/deepseek_v3/mtp.h): concat(enorm(embed(t_{i+1})), hnorm(h_i))
// through eh_proj, one decoder block over the layer's shifted cache, shared_head norm and head.
// The shifted context is gathered into a scratch cache laid out plainly, so the attention kernels
// see ordinary positions 0..context_len-1; new latents are written to their shifted slots first.
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/gather_rows.h"
#include "kernels/cuda/rmsnorm.h"
#include "models/cuda/cuda_executor.h"
#include "models/cuda/executor_state.h"

namespace latentserve::models::cuda {

namespace dsv3 = deepseek_v3;

namespace {

// The checks of Model::mtp_forward beyond Batch::validate: the shifted layout needs each block
// table to cover position context_len.
Status check_mtp_tables(const Batch& batch, int64_t num_blocks, int64_t block_size) {
  for (size_t s = 0; s < batch.sequences.size(); ++s) {
    const BatchSequence& seq = batch.sequences[s];
    const int64_t need = seq.context_len / block_size + 1;
    if (int64_t(seq.block_table.size()) < need) {
      return make_error("mtp_forward: batch sequence " + std::to_string(s) + " has " +
                        std::to_string(seq.block_table.size()) + " blocks; the shifted MTP layout of " +
                        std::to_string(seq.context_len) + " positions needs " + std::to_string(need));
    }
    for (int64_t b = 0; b < need; ++b) {
      if (seq.block_table[size_t(b)] < 0 || seq.block_table[size_t(b)] >= num_blocks) {
        return make_error("mtp_forward: batch sequence " + std::to_string(s) + ": block id " +
                          std::to_string(seq.block_table[size_t(b)]) + " outside the cache");
      }
    }
  }
  return ok_status();
}

}  // namespace

Result<dsv3::MtpForwardOutput> CudaExecutor::mtp_forward(const Batch& batch, const std::vector<float>& hidden,
                                                         int64_t mtp_layer) {
  const ModelConfig& c = *config_;
  if (mtp_layer < 0 || mtp_layer >= int64_t(weights_.mtp.size())) {
    return make_error("mtp_forward: MTP layer " + std::to_string(mtp_layer) + " requested, the checkpoint has " +
                      std::to_string(weights_.mtp.size()));
  }
  const int64_t layer = c.num_hidden_layers + mtp_layer;
  if (num_cache_layers_ <= layer) {
    return make_error("mtp_forward: the cache has " + std::to_string(num_cache_layers_) + " layers, MTP layer " +
                      std::to_string(mtp_layer) + " needs cache layer " + std::to_string(layer));
  }
  LS_RETURN_IF_ERROR(batch.validate(c.vocab_size, num_blocks_, block_size_));
  const int64_t T = batch.num_tokens(), H = c.hidden_size;
  if (int64_t(hidden.size()) != T * H) {
    return make_error("mtp_forward: hidden has " + std::to_string(hidden.size()) + " values, expected " +
                      std::to_string(T) + " rows of " + std::to_string(H));
  }
  LS_RETURN_IF_ERROR(check_mtp_tables(batch, num_blocks_, block_size_));
  LS_RETURN_IF_ERROR(prepare_step(batch, /*mtp_shift=*/true));
  if (T == 0) {
    LS_ASSIGN_OR_RETURN(dsv3::ForwardOutput empty, finish(0, 0));
    return dsv3::MtpForwardOutput{std::move(empty.logits), std::move(empty.hidden)};
  }
  const int64_t dim = c.kv_lora_rank + c.qk_rope_head_dim;
  LS_RETURN_IF_ERROR(mtp_scratch_.reserve(size_t(std::max<int64_t>(step_.local_blocks, 1) * block_size_ * dim * 2),
                                          "MTP context scratch"));
  const DeviceMtp& w = weights_.mtp[size_t(mtp_layer)];
  cudaStream_t s = stream_.get();

  // cat: [T, 2H] BF16 = [enorm(embed(t_{i+1})) | hnorm(h_i)], the embedding half first.
  LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(res_->act.mtp_in.data(), hidden.data(), hidden.size() * sizeof(float),
                                          cudaMemcpyHostToDevice, s));
  kc::RmsNormParams n;
  n.x = res_->act.mtp_in.data();
  n.weight = w.hnorm;
  n.y = static_cast<char*>(res_->act.mtp_cat.data()) + H * 2;
  n.y_dtype = DType::BF16;
  n.rows = T;
  n.dim = n.ldx = H;
  n.ldy = 2 * H;
  n.eps = float(c.rms_norm_eps);
  LS_RETURN_IF_ERROR(kc::rmsnorm(n, s));
  kc::GatherRowsParams embed;
  embed.src = w.embed_tokens.data;
  embed.src_dtype = DType::BF16;
  embed.ld_src = H;
  embed.num_src_rows = w.embed_tokens.rows;
  embed.index32 = step_.token_ids;
  embed.dst = res_->act.mtp_in.data();  // the hidden rows are consumed above, in stream order
  embed.dst_dtype = DType::F32;
  embed.ld_dst = H;
  embed.rows = T;
  embed.cols = H;
  LS_RETURN_IF_ERROR(kc::gather_rows(embed, s));
  n.weight = w.enorm;
  n.y = res_->act.mtp_cat.data();
  LS_RETURN_IF_ERROR(kc::rmsnorm(n, s));
  // x: [T, H] the block's residual stream.
  LS_RETURN_IF_ERROR(linear(w.eh_proj, res_->act.mtp_cat.data(), 2 * H, T, res_->act.x.data(), DType::F32, H));

  const DeviceLayer& block = w.block;
  LS_RETURN_IF_ERROR(add_norm(block.input_layernorm, false, res_->act.normed.data(), DType::BF16));
  AttentionTarget target{cache_[size_t(layer)].data(), mtp_scratch_.data(), std::max<int64_t>(step_.local_blocks, 1),
                         step_.local_tables, step_.local_stride};
  Status st = attention(block.attn, target, /*gather_mtp_context=*/true);
  if (st.ok()) st = add_norm(block.post_attention_layernorm, true, res_->act.normed.data(), DType::BF16);
  if (st.ok()) st = ffn(block);
  if (st.ok()) st = add_norm(w.shared_head_norm, true, res_->act.hidden.data(), DType::F32);
  if (st.ok()) st = head(w.shared_head_head);
  if (!st.ok()) return st.error().with_context("MTP layer " + std::to_string(mtp_layer));
  LS_ASSIGN_OR_RETURN(dsv3::ForwardOutput out, finish(T, step_.logit_rows));
  return dsv3::MtpForwardOutput{std::move(out.logits), std::move(out.hidden)};
}

Result<std::unique_ptr<dsv3::ModelExecutor>> make_cuda_executor(const dsv3::Model& model,
                                                                const dsv3::ExecutorConfig& config) {
  return CudaExecutor::create(model, config, decode_graph_options_from_env());
}

Result<std::unique_ptr<dsv3::ModelExecutor>> make_cuda_executor(const dsv3::Model& model,
                                                                const dsv3::ExecutorConfig& config,
                                                                const DecodeGraphOptions& graphs) {
  return CudaExecutor::create(model, config, graphs);
}

}  // namespace latentserve::models::cuda
