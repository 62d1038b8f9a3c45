// The per-layer work of the CUDA executor, all enqueued on one stream with no allocation and no
// host wait (except on MoeLayerRunner's per-expert path, see executor_state.h): linear layers, MLA in the
// absorbed form, the dense MLP or MoE, the fused residual add + RMSNorm, and the output head.
#include <string>

#include "kernels/cuda/add_rmsnorm.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gather_rows.h"
#include "kernels/cuda/mla_attention_generic.h"
#include "kernels/cuda/mla_decode.h"
#include "kernels/cuda/moe_combine.h"
#include "kernels/cuda/rmsnorm.h"
#include "kernels/cuda/rope_cache.h"
#include "models/cuda/executor_state.h"

namespace latentserve::models::cuda {

namespace {

const void* bf16_at(const void* base, int64_t elements) {
  return static_cast<const char*>(base) + elements * 2;
}
void* bf16_at(void* base, int64_t elements) { return static_cast<char*>(base) + elements * 2; }

// y[t, h] (n values) = x[t, h] (the first k of each head's x_head_stride values) · W[h], W[h]
// being head h's block of kv_b_proj (heads (nope + v)·lora elements apart, rows of lora).
PerHeadGemmParams kv_b_head_gemm(const ModelConfig& c, int64_t tokens, const void* x, int64_t x_head_stride,
                                 const void* w, bool transpose_w, void* y, int64_t k, int64_t n) {
  const int64_t heads = c.num_attention_heads, lora = c.kv_lora_rank;
  PerHeadGemmParams p;
  p.x = x;
  p.ldx = heads * x_head_stride;
  p.x_head_stride = x_head_stride;
  p.w = w;
  p.ldw = lora;
  p.w_head_stride = (c.qk_nope_head_dim + c.v_head_dim) * lora;
  p.transpose_w = transpose_w;
  p.y = y;
  p.ldy = heads * n;
  p.y_head_stride = n;
  p.tokens = tokens;
  p.heads = heads;
  p.k = k;
  p.n = n;
  return p;
}

// The inputs and output both MLA kernels (tensor-core and generic) take alike.
template <class P>
void set_mla_io(P& a, const Activations& act, const AttentionTarget& target, int64_t block_size,
                int64_t heads, float softmax_scale) {
  a.q_latent = act.q_latent.data();
  a.q_rope = act.q_rope.data();
  a.cache = target.read_cache;
  a.block_tables = target.read_tables;
  a.out = act.o_latent.data();
  a.out_dtype = DType::BF16;
  a.num_blocks = target.read_blocks;
  a.block_size = block_size;
  a.block_table_stride = target.read_stride;
  a.heads = heads;
  a.softmax_scale = softmax_scale;
}

}  // namespace

Status CudaExecutor::linear(const DeviceMatrix& w, const void* x, int64_t ldx, int64_t m, void* y,
                            DType y_dtype, int64_t ldy) {
  if (m == 0) return ok_status();
  if (w.data == nullptr) return make_error("linear: missing weight");
  if (w.dtype == DType::BF16) {
    kc::MatmulBf16Params p;
    p.x = x;
    p.w = w.data;
    p.y = y;
    p.y_dtype = y_dtype;
    p.m = m;
    p.n = w.rows;
    p.k = w.cols;
    p.ldx = ldx;
    p.ldy = ldy;
    return res_->matmul->bf16(p, stream_.get());
  }
  kc::MatmulFp8Params p;
  p.x = x;
  p.x_dtype = DType::BF16;
  p.w = kc::Fp8BlockWeight{static_cast<const uint8_t*>(w.data), w.scales, w.rows, w.cols};
  p.y = y;
  p.y_dtype = y_dtype;
  p.m = m;
  p.ldx = ldx;
  p.ldy = ldy;
  return res_->matmul->fp8(p, stream_.get());
}

Status CudaExecutor::attention(const DeviceMla& w, const AttentionTarget& target, bool gather_mtp_context) {
  LS_RETURN_IF_ERROR(project_queries(w));
  LS_RETURN_IF_ERROR(write_latents(w, target, gather_mtp_context));
  return attend(w, target);
}

Status CudaExecutor::project_queries(const DeviceMla& w) {
  const ModelConfig& c = *config_;
  cudaStream_t s = stream_.get();
  const int64_t T = step_.tokens, H = c.hidden_size, heads = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, qk = nope + rope;
  const float eps = float(c.rms_norm_eps);

  // q: [T, heads, nope + rope] BF16.
  if (w.q_a_proj.data != nullptr) {
    const int64_t rank = w.q_a_proj.rows;
    LS_RETURN_IF_ERROR(linear(w.q_a_proj, res_->act.normed.data(), H, T, res_->act.qa.data(), DType::BF16, rank));
    kc::RmsNormParams n;
    n.x = res_->act.qa.data();
    n.weight = w.q_a_layernorm;
    n.y = res_->act.qa.data();
    n.x_dtype = n.y_dtype = DType::BF16;
    n.weight_dtype = DType::F32;
    n.rows = T;
    n.dim = n.ldx = n.ldy = rank;
    n.eps = eps;
    LS_RETURN_IF_ERROR(kc::rmsnorm(n, s));
    LS_RETURN_IF_ERROR(linear(w.q_b_proj, res_->act.qa.data(), rank, T, res_->act.q.data(), DType::BF16, heads * qk));
  } else {
    LS_RETURN_IF_ERROR(linear(w.q_proj, res_->act.normed.data(), H, T, res_->act.q.data(), DType::BF16, heads * qk));
  }
  kc::RopeInterleavedParams r;
  r.x = bf16_at(res_->act.q.data(), nope);
  r.dtype = DType::BF16;
  r.positions = step_.positions;
  r.inv_freq = inv_freq_.as<float>();
  r.rows = T;
  r.ld = heads * qk;
  r.heads = heads;
  r.head_stride = qk;
  r.rotary_dim = rope;
  r.cos_sin_factor = cos_sin_factor_;
  return kc::rope_interleaved(r, s);
}

Status CudaExecutor::write_latents(const DeviceMla& w, const AttentionTarget& target, bool gather_mtp_context) {
  const ModelConfig& c = *config_;
  cudaStream_t s = stream_.get();
  const int64_t T = step_.tokens, H = c.hidden_size;
  const int64_t rope = c.qk_rope_head_dim, lora = c.kv_lora_rank, dim = lora + rope;
  const float eps = float(c.rms_norm_eps);

  // kv: [T, latent | k_pe] F32; the latent normalized in place, then the cache write rotates k_pe.
  LS_RETURN_IF_ERROR(linear(w.kv_a_proj_with_mqa, res_->act.normed.data(), H, T, res_->act.kv.data(), DType::F32, dim));
  kc::RmsNormParams n;
  n.x = res_->act.kv.data();
  n.weight = w.kv_a_layernorm;
  n.y = res_->act.kv.data();
  n.rows = T;
  n.dim = lora;
  n.ldx = n.ldy = dim;
  n.eps = eps;
  LS_RETURN_IF_ERROR(kc::rmsnorm(n, s));
  kc::MlaCacheWriteParams cw;
  cw.kv = res_->act.kv.data();
  cw.kv_dtype = DType::F32;
  cw.positions = step_.positions;
  cw.slot_mapping = step_.slots;
  cw.inv_freq = inv_freq_.as<float>();
  cw.cache = target.cache;
  cw.num_tokens = T;
  cw.ld_kv = dim;
  cw.kv_lora_rank = lora;
  cw.rope_dim = rope;
  cw.cos_sin_factor = cos_sin_factor_;
  LS_RETURN_IF_ERROR(kc::mla_write_latent_cache(cw, s));
  if (gather_mtp_context) {
    kc::GatherRowsParams g;
    g.src = target.cache;
    g.src_dtype = g.dst_dtype = DType::BF16;
    g.ld_src = g.ld_dst = dim;
    g.num_src_rows = num_blocks_ * block_size_;
    g.index64 = step_.gather_slots;
    g.dst = target.read_cache;
    g.rows = step_.local_blocks * block_size_;
    g.cols = dim;
    LS_RETURN_IF_ERROR(kc::gather_rows(g, s));
  }
  return ok_status();
}

Status CudaExecutor::attend(const DeviceMla& w, const AttentionTarget& target) {
  const ModelConfig& c = *config_;
  cudaStream_t s = stream_.get();
  const int64_t T = step_.tokens, H = c.hidden_size, heads = c.num_attention_heads;
  const int64_t nope = c.qk_nope_head_dim, rope = c.qk_rope_head_dim, qk = nope + rope;
  const int64_t lora = c.kv_lora_rank, v = c.v_head_dim;

  // Absorbed queries: q_latent[t, h] = q_nope[t, h] · W_UK[h], q_rope copied out contiguous.
  if (rope > 0) {
    LS_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(res_->act.q_rope.data(), size_t(rope) * 2, bf16_at(res_->act.q.data(), nope),
                                              size_t(qk) * 2, size_t(rope) * 2, size_t(T * heads),
                                              cudaMemcpyDeviceToDevice, s));
  }
  const PerHeadGemmParams uk =
      kv_b_head_gemm(c, T, res_->act.q.data(), qk, w.kv_b_proj.data, false, res_->act.q_latent.data(), nope, lora);
  LS_RETURN_IF_ERROR(res_->head_gemm->run(uk, s));

  if (fast_mla_) {
    kc::MlaAttentionParams a;
    set_mla_io(a, res_->act, target, block_size_, heads, softmax_scale_);
    LS_RETURN_IF_ERROR(kc::mla_attention(a, plan_, s));
  } else {
    kc::MlaGenericParams a;
    set_mla_io(a, res_->act, target, block_size_, heads, softmax_scale_);
    a.token_sequence = step_.token_sequence;
    a.positions = step_.positions;
    a.num_tokens = T;
    a.kv_lora_rank = lora;
    a.rope_dim = rope;
    LS_RETURN_IF_ERROR(kc::mla_attention_generic(a, s));
  }

  // o[t, h] = W_UV[h] · o_latent[t, h]: back from latent space to the value head, then o_proj.
  const PerHeadGemmParams uv = kv_b_head_gemm(c, T, res_->act.o_latent.data(), lora,
                                              bf16_at(w.kv_b_proj.data, nope * lora), true, res_->act.o.data(), lora, v);
  LS_RETURN_IF_ERROR(res_->head_gemm->run(uv, s));
  return linear(w.o_proj, res_->act.o.data(), heads * v, T, res_->act.branch.data(), DType::F32, H);
}

Status CudaExecutor::ffn(const DeviceLayer& layer) {
  const int64_t T = step_.tokens, H = config_->hidden_size;
  if (layer.moe) {
    kc::MoeLayerParams p;
    p.x = res_->act.normed.data();
    p.ldx = H;
    p.out = res_->act.branch.data();
    p.out_dtype = DType::F32;
    p.ld_out = H;
    p.tokens = T;
    p.path = moe_path_;
    return res_->moe->forward(*layer.moe, router_, p, stream_.get());
  }
  if (!layer.mlp) return make_error("a decoder layer has neither an MLP nor a MoE");
  const DeviceMlp& m = *layer.mlp;
  LS_RETURN_IF_ERROR(linear(m.gate_up, res_->act.normed.data(), H, T, res_->act.gate_up.data(), DType::BF16, 2 * m.width));
  kc::MoeSiluMulParams sm;
  sm.gate_up = res_->act.gate_up.data();
  sm.in_dtype = DType::BF16;
  sm.ld_in = 2 * m.width;
  sm.out = res_->act.act.data();
  sm.out_dtype = DType::BF16;
  sm.ld_out = m.width;
  sm.rows = T;
  sm.width = m.width;
  LS_RETURN_IF_ERROR(kc::moe_silu_mul(sm, stream_.get()));
  return linear(m.down, res_->act.act.data(), m.width, T, res_->act.branch.data(), DType::F32, H);
}

Status CudaExecutor::add_norm(const float* weight, bool add, void* y, DType y_dtype) {
  const int64_t H = config_->hidden_size;
  kc::AddRmsNormParams p;
  p.residual = res_->act.x.as<float>();
  p.ld_residual = H;
  p.delta = add ? res_->act.branch.data() : nullptr;
  p.delta_dtype = DType::F32;
  p.ld_delta = H;
  p.weight = weight;
  p.y = y;
  p.y_dtype = y_dtype;
  p.ld_y = H;
  p.rows = step_.tokens;
  p.dim = H;
  p.eps = float(config_->rms_norm_eps);
  return kc::add_rmsnorm(p, stream_.get());
}

Status CudaExecutor::head(const DeviceMatrix& head) {
  const int64_t H = config_->hidden_size, R = step_.logit_rows;
  if (R == 0) return ok_status();
  kc::GatherRowsParams g;
  g.src = res_->act.hidden.data();
  g.src_dtype = DType::F32;
  g.ld_src = H;
  g.num_src_rows = step_.tokens;
  g.index32 = step_.logit_index;
  g.dst = res_->act.selected.data();
  g.dst_dtype = DType::BF16;
  g.ld_dst = H;
  g.rows = R;
  g.cols = H;
  LS_RETURN_IF_ERROR(kc::gather_rows(g, stream_.get()));
  return linear(head, res_->act.selected.data(), H, R, res_->act.logits.data(), DType::F32, config_->vocab_size);
}

}  // namespace latentserve::models::cuda
