// The CUDA ModelExecutor: construction (device, weights, latent cache), the step recipe of
// forward() and mtp_forward(), and getting the outputs back to the host. The per-layer work is in
// cuda_layers.cpp.
#include <algorithm>
#include <string>

#include "kernels/cpu/rope.h"
#include "kernels/cuda/add_rmsnorm.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gather_rows.h"
#include "kernels/cuda/mla_attention_generic.h"
#include "kernels/cuda/mla_config.h"
#include "kernels/cuda/mla_fixed_plan.h"
#include "kernels/cuda/rmsnorm.h"
#include "models/cuda/cuda_executor.h"
#include "models/cuda/executor_state.h"
#include "models/deepseek_v3/ffn.h"
#include "models/deepseek_v3/mla.h"

namespace latentserve::models::cuda {

namespace dsv3 = deepseek_v3;

namespace {

constexpr int64_t kInitialTokens = 256;        // activations reserved before sizing the cache
constexpr size_t kWorkspaceMargin = size_t(1) << 30;  // left free for scratch that grows later
constexpr double kDefaultCacheShare = 0.9;     // of the free memory after weights and margin

}  // namespace

CudaExecutor::~CudaExecutor() {
  // Work may still be queued after an error; let it finish before the buffers go.
  if (stream_.get() != nullptr) cudaStreamSynchronize(stream_.get());
}

Result<std::unique_ptr<dsv3::ModelExecutor>> CudaExecutor::create(const dsv3::Model& model,
                                                                  const dsv3::ExecutorConfig& config,
                                                                  const DecodeGraphOptions& graphs) {
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  Status st = e->init(model.config(), &model.weights(), config, graphs);
  if (!st.ok()) return st.error().with_context("CUDA executor");
  return std::unique_ptr<dsv3::ModelExecutor>(std::move(e));
}

Result<StepResources> CudaExecutor::make_resources(int moe_lanes) {
  StepResources r;
  LS_ASSIGN_OR_RETURN(r.matmul, kc::MatmulContext::create());
  LS_ASSIGN_OR_RETURN(r.moe, kc::MoeLayerRunner::create(moe_lanes));
  LS_ASSIGN_OR_RETURN(r.head_gemm, PerHeadGemm::create());
  return r;
}

Status CudaExecutor::init(const ModelConfig& model_config, const dsv3::DeepseekV3Weights* host_weights,
                          const dsv3::ExecutorConfig& config, const DecodeGraphOptions& graphs) {
  config_ = &model_config;
  const ModelConfig& c = *config_;
  const int count = kc::device_count();
  if (count == 0) return make_error("no CUDA GPU is present");
  if (config.cuda_device < 0 || config.cuda_device >= count) {
    return make_error("CUDA device " + std::to_string(config.cuda_device) + " requested, " +
                      std::to_string(count) + " present");
  }
  device_ = config.cuda_device;
  LS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  LS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
  description_ = "cuda:" + std::to_string(device_) + " (" + prop.name + ")";

  LS_ASSIGN_OR_RETURN(stream_, kc::DeviceStream::create());
  LS_ASSIGN_OR_RETURN(eager_, make_resources(4));
  if (host_weights != nullptr) {
    LS_ASSIGN_OR_RETURN(weights_, upload_weights(*host_weights, c));
  }
  description_ += ", " + std::to_string(weights_.bytes >> 20) + " MiB of weights";

  router_ = dsv3::router_params(c);
  const kernels::cpu::RopeParams rope = dsv3::rope_params(c);
  const std::vector<float> inv_freq = kernels::cpu::rope_inv_freq(rope);
  LS_ASSIGN_OR_RETURN(inv_freq_, kc::DeviceBuffer::allocate(inv_freq.size() * sizeof(float), "RoPE frequencies"));
  LS_RETURN_IF_ERROR(kc::copy_to_device(inv_freq_.data(), inv_freq.data(), inv_freq.size() * sizeof(float)));
  cos_sin_factor_ = float(kernels::cpu::rope_cos_sin_factor(rope));
  softmax_scale_ = float(c.softmax_scale());

  fast_mla_ = c.kv_lora_rank == kc::mla::kLatentDim && c.qk_rope_head_dim == kc::mla::kRopeDim;
  if (!fast_mla_ && (c.kv_lora_rank > kc::kMlaGenericMaxLatent || c.qk_rope_head_dim > kc::kMlaGenericMaxRope)) {
    return make_error("kv_lora_rank " + std::to_string(c.kv_lora_rank) + " / qk_rope_head_dim " +
                      std::to_string(c.qk_rope_head_dim) + ": no CUDA attention kernel for these widths");
  }
  for (const DeviceLayer& l : weights_.layers) {
    if (l.mlp) widest_mlp_ = std::max(widest_mlp_, l.mlp->width);
  }
  for (const DeviceMtp& m : weights_.mtp) {
    if (m.block.mlp) widest_mlp_ = std::max(widest_mlp_, m.block.mlp->width);
  }
  LS_RETURN_IF_ERROR(reserve(eager_.act, kInitialTokens));
  LS_RETURN_IF_ERROR(check_decode_graph_options(graphs));
  graph_options_ = graphs;
  if (graphs.enabled && !graphs.buckets.empty()) {
    // Graph steps use only the shared experts' lane and the grouped kernels: one expert lane.
    LS_ASSIGN_OR_RETURN(graph_, make_resources(1));
    LS_RETURN_IF_ERROR(reserve(graph_.act, graphs.buckets.back()));
    for (int64_t b : graphs.buckets) {
      graphs_.push_back(std::make_unique<DecodeGraph>());
      graphs_.back()->bucket = b;
      if (fast_mla_) {
        LS_ASSIGN_OR_RETURN(graphs_.back()->mla_splits,
                            kc::mla_fixed_plan_splits(int32_t(b), c.num_attention_heads));
      }
    }
    description_ += ", CUDA graphs for decode batches up to " + std::to_string(graphs.buckets.back());
  } else {
    description_ += ", CUDA graphs off";
  }
  return allocate_cache(config);
}

Status CudaExecutor::allocate_cache(const dsv3::ExecutorConfig& config) {
  const ModelConfig& c = *config_;
  if (config.block_size <= 0) return make_error("block_size " + std::to_string(config.block_size) + " must be positive");
  block_size_ = config.block_size;
  num_cache_layers_ = config.num_cache_layers > 0 ? config.num_cache_layers : config_->num_hidden_layers;
  if (num_cache_layers_ < config_->num_hidden_layers) {
    return make_error("num_cache_layers " + std::to_string(num_cache_layers_) + " is below the model's " +
                      std::to_string(config_->num_hidden_layers) + " layers");
  }
  const int64_t block_bytes = block_size_ * (c.kv_lora_rank + c.qk_rope_head_dim) * 2;
  const int64_t all_layers = block_bytes * num_cache_layers_;
  if (config.num_blocks) {
    num_blocks_ = *config.num_blocks;
  } else if (config.cache_memory) {
    num_blocks_ = *config.cache_memory / all_layers;
  } else {
    size_t free_bytes = 0, total_bytes = 0;
    LS_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double budget = free_bytes > kWorkspaceMargin ? double(free_bytes - kWorkspaceMargin) * kDefaultCacheShare : 0.0;
    num_blocks_ = int64_t(budget / double(all_layers));
  }
  if (num_blocks_ <= 0) {
    return make_error("the latent cache would hold no block (" + std::to_string(all_layers) +
                      " bytes per block over " + std::to_string(num_cache_layers_) + " layers)");
  }
  if (num_blocks_ >= INT32_MAX) return make_error("the latent cache would hold 2^31 blocks or more");
  cache_bytes_ = num_blocks_ * all_layers;
  scratch_block_ = int32_t(num_blocks_);
  cache_.clear();
  for (int64_t l = 0; l < num_cache_layers_; ++l) {
    const std::string what = "latent cache (layer " + std::to_string(l) + ")";
    // One block more than the pool: the scratch block padded decode rows write to.
    auto buf = kc::DeviceBuffer::allocate(size_t((num_blocks_ + 1) * block_bytes), what.c_str());
    if (!buf.ok()) {
      return buf.error().with_context("allocating " + std::to_string(num_blocks_) + " blocks (" +
                                      std::to_string(cache_bytes_ >> 20) + " MiB) of latent cache");
    }
    // Zeroed: attention never weighs unwritten slots, but 0 · NaN would still poison a sum.
    LS_CUDA_RETURN_IF_ERROR(cudaMemset(buf->data(), 0, buf->size()));
    cache_.push_back(std::move(*buf));
  }
  // The uploads and memsets above ran on the legacy default stream, which stream_ (non-blocking)
  // is not ordered after: a step must not start before they are done.
  return LS_CUDA_CHECK(cudaDeviceSynchronize());
}

Status CudaExecutor::reserve(Activations& act, int64_t tokens) {
  if (tokens <= act.tokens) return ok_status();
  const ModelConfig& c = *config_;
  const size_t T = size_t((tokens + 63) / 64 * 64);
  const size_t H = size_t(c.hidden_size), heads = size_t(c.num_attention_heads);
  const size_t lora = size_t(c.kv_lora_rank), rope = size_t(c.qk_rope_head_dim);
  const size_t qk = size_t(c.qk_nope_head_dim) + rope, v = size_t(c.v_head_dim);
  const size_t qlora = size_t(c.q_lora_rank.value_or(0)), width = size_t(widest_mlp_);
  struct Want { kc::DeviceBuffer* buf; size_t bytes; const char* what; };
  Activations& a = act;
  const Want wants[] = {
      {&a.x, T * H * 4, "residual stream"},       {&a.normed, T * H * 2, "normed activations"},
      {&a.branch, T * H * 4, "sublayer output"},  {&a.hidden, T * H * 4, "final hidden"},
      {&a.qa, T * qlora * 2, "q_a activations"},  {&a.q, T * heads * qk * 2, "queries"},
      {&a.kv, T * (lora + rope) * 4, "latents"},  {&a.q_latent, T * heads * lora * 2, "latent queries"},
      {&a.q_rope, T * heads * rope * 2, "rope queries"}, {&a.o_latent, T * heads * lora * 2, "latent attention output"},
      {&a.o, T * heads * v * 2, "attention output"}, {&a.gate_up, T * 2 * width * 2, "MLP gate/up"},
      {&a.act, T * width * 2, "MLP activations"}, {&a.selected, T * H * 2, "logit rows"},
      {&a.logits, T * size_t(c.vocab_size) * 4, "logits"}, {&a.mtp_in, T * H * 4, "MTP input"},
      {&a.mtp_cat, T * 2 * H * 2, "MTP concatenation"},
  };
  for (const Want& w : wants) {
    Status st = w.buf->reserve(std::max<size_t>(w.bytes, 256), w.what);
    if (!st.ok()) return st.error().with_context("activations for " + std::to_string(T) + " tokens");
  }
  a.tokens = int64_t(T);
  return ok_status();
}

Status CudaExecutor::prepare_step(const Batch& batch, bool mtp_shift) {
  LS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  // Logit rows may repeat a row, so they can outnumber the tokens: selected and logits hold both.
  LS_RETURN_IF_ERROR(reserve(eager_.act, std::max<int64_t>(batch.num_tokens(), int64_t(batch.logit_rows.size()))));
  LS_ASSIGN_OR_RETURN(step_, inputs_.upload(batch, block_size_, mtp_shift, stream_.get()));
  if (!fast_mla_) return ok_status();
  std::vector<kc::MlaSequence> seqs;
  for (const BatchSequence& s : batch.sequences) seqs.push_back({s.query_start, s.query_len, s.context_len});
  LS_ASSIGN_OR_RETURN(kc::MlaPlan plan, kc::mla_plan(seqs.data(), int32_t(seqs.size()),
                                                     config_->num_attention_heads, kc::MlaPlanOptions{}));
  LS_RETURN_IF_ERROR(plan_workspace_.reserve(std::max<size_t>(plan.workspace_bytes(), 256), "MLA plan workspace"));
  LS_ASSIGN_OR_RETURN(plan_, kc::mla_plan_upload(plan, plan_workspace_.data(), plan_workspace_.size(), stream_.get()));
  return ok_status();
}

Result<dsv3::ForwardOutput> CudaExecutor::finish(int64_t tokens, int64_t rows) {
  dsv3::ForwardOutput out;
  out.hidden.resize(size_t(tokens * config_->hidden_size));
  out.logits.resize(size_t(rows * config_->vocab_size));
  cudaStream_t s = stream_.get();
  LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out.hidden.data(), res_->act.hidden.data(), out.hidden.size() * 4,
                                          cudaMemcpyDeviceToHost, s));
  LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out.logits.data(), res_->act.logits.data(), out.logits.size() * 4,
                                          cudaMemcpyDeviceToHost, s));
  LS_RETURN_IF_ERROR(stream_.synchronize());
  return out;
}

Result<dsv3::ForwardOutput> CudaExecutor::forward(const Batch& batch) {
  const ModelConfig& c = *config_;
  LS_RETURN_IF_ERROR(batch.validate(c.vocab_size, num_blocks_, block_size_));
  if (!graphs_.empty() && is_plain_decode(batch)) {
    const int64_t bucket = decode_bucket(graph_options_.buckets, int64_t(batch.sequences.size()));
    if (bucket > 0) {
      auto out = forward_graph(batch, bucket);
      if (out.ok() || capture_error_.empty()) return out;
      graphs_.clear();
      description_ += " (CUDA graphs turned off: " + capture_error_ + ")";
    }
  }
  LS_RETURN_IF_ERROR(prepare_step(batch, /*mtp_shift=*/false));
  if (step_.tokens == 0) return finish(0, 0);
  LS_RETURN_IF_ERROR(enqueue_forward());
  return finish(step_.tokens, step_.logit_rows);
}

Status CudaExecutor::enqueue_forward() {
  const ModelConfig& c = *config_;
  const int64_t T = step_.tokens, H = c.hidden_size;
  if (graph_step_ != nullptr && fast_mla_) {
    kc::MlaFixedPlanShape shape;
    shape.num_sequences = int32_t(graph_step_->bucket);
    shape.heads = c.num_attention_heads;
    shape.splits = graph_step_->mla_splits;
    shape.max_context = int32_t(graph_step_->table_stride * block_size_);
    LS_ASSIGN_OR_RETURN(plan_, kc::mla_fixed_plan(shape, step_.positions, graph_step_->plan_workspace.data(),
                                                  graph_step_->plan_workspace.size(), stream_.get()));
  }

  // x: [T, hidden] = embed(token_ids), the residual stream.
  kc::GatherRowsParams embed;
  embed.src = weights_.embed_tokens.data;
  embed.src_dtype = DType::BF16;
  embed.ld_src = H;
  embed.num_src_rows = weights_.embed_tokens.rows;
  embed.index32 = step_.token_ids;
  embed.dst = res_->act.x.data();
  embed.dst_dtype = DType::F32;
  embed.ld_dst = H;
  embed.rows = T;
  embed.cols = H;
  LS_RETURN_IF_ERROR(kc::gather_rows(embed, stream_.get()));

  const size_t L = weights_.layers.size();
  if (L == 0) {
    LS_RETURN_IF_ERROR(add_norm(weights_.norm, false, res_->act.hidden.data(), DType::F32));
  } else {
    LS_RETURN_IF_ERROR(add_norm(weights_.layers[0].input_layernorm, false, res_->act.normed.data(), DType::BF16));
  }
  for (size_t l = 0; l < L; ++l) {
    const DeviceLayer& layer = weights_.layers[l];
    const std::string where = "layer " + std::to_string(l);
    // The attention may read the pool and the padding rows' scratch block.
    AttentionTarget target{cache_[l].data(), cache_[l].data(), num_blocks_ + 1, step_.block_tables,
                           step_.table_stride};
    Status st = attention(layer.attn, target, /*gather_mtp_context=*/false);
    if (st.ok()) st = add_norm(layer.post_attention_layernorm, true, res_->act.normed.data(), DType::BF16);
    if (st.ok()) st = ffn(layer);
    if (st.ok()) {
      const bool last = l + 1 == L;
      st = add_norm(last ? weights_.norm : weights_.layers[l + 1].input_layernorm, true,
                    last ? res_->act.hidden.data() : res_->act.normed.data(), last ? DType::F32 : DType::BF16);
    }
    if (!st.ok()) return st.error().with_context(where);
  }
  return head(weights_.lm_head);
}

}  // namespace latentserve::models::cuda
