// The CUDA ModelExecutor's internals, shared by its files: the device, the uploaded weights, the
// latent cache, the per-step inputs and the activation buffers, and the layer functions.
//
// CUDA graphs: plain decode steps (one token per sequence) of up to the largest bucket sequences
// run padded to a bucket (decode_graph.h) and are replayed from a graph captured per bucket. Their
// layer work waits on nothing: the MoE takes the grouped path (no host read of the row counts)
// and the fast MLA kernel a fixed-shape plan written on the device. They use their own
// StepResources, grown once by an uncaptured run of the largest bucket before any capture, so no
// buffer a graph reads is ever freed; each bucket also runs once uncaptured before its capture
// (warming MatmulContext's plan cache). Other steps run eagerly on the eager resources.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernels/cpu/moe_router.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/mla_plan.h"
#include "kernels/cuda/moe_layer.h"
#include "models/cuda/decode_graph.h"
#include "models/cuda/device_weights.h"
#include "models/cuda/head_gemm.h"
#include "models/cuda/step_inputs.h"
#include "models/deepseek_v3/executor.h"

namespace latentserve::models::cuda {

namespace kc = kernels::cuda;

// Activation buffers for up to `tokens` rows; grown at the start of a step, never inside it.
struct Activations {
  int64_t tokens = 0;
  kc::DeviceBuffer x;         // [T, hidden] F32 residual stream
  kc::DeviceBuffer normed;    // [T, hidden] BF16 sublayer input
  kc::DeviceBuffer branch;    // [T, hidden] F32 sublayer output
  kc::DeviceBuffer hidden;    // [T, hidden] F32 final-norm output (returned)
  kc::DeviceBuffer qa;        // [T, q_lora_rank] BF16
  kc::DeviceBuffer q;         // [T, heads, nope + rope] BF16
  kc::DeviceBuffer kv;        // [T, kv_lora_rank + rope] F32
  kc::DeviceBuffer q_latent;  // [T, heads, kv_lora_rank] BF16
  kc::DeviceBuffer q_rope;    // [T, heads, rope] BF16
  kc::DeviceBuffer o_latent;  // [T, heads, kv_lora_rank] BF16
  kc::DeviceBuffer o;         // [T, heads, v] BF16
  kc::DeviceBuffer gate_up;   // [T, 2 * widest dense MLP] BF16
  kc::DeviceBuffer act;       // [T, widest dense MLP] BF16
  kc::DeviceBuffer selected;  // [T, hidden] BF16 rows that need logits
  kc::DeviceBuffer logits;    // [T, vocab] F32
  kc::DeviceBuffer mtp_in;    // [T, hidden] F32: the hidden rows given to mtp_forward, then the embedding
  kc::DeviceBuffer mtp_cat;   // [T, 2 * hidden] BF16
};

// What a step's layer work writes besides the cache and the step inputs, with the cuBLAS contexts
// whose workspaces it uses. Eager steps and graph replays own one each, so an eager step that
// grows its buffers never frees memory a captured graph reads.
struct StepResources {
  Activations act;
  std::unique_ptr<kc::MatmulContext> matmul;
  std::unique_ptr<kc::MoeLayerRunner> moe;
  std::unique_ptr<PerHeadGemm> head_gemm;
};

// Where a layer's attention writes this step's latents and where it reads the context from (the
// same cache for main layers; a gathered scratch copy for the shifted MTP layout).
struct AttentionTarget {
  void* cache = nullptr;  // [num_blocks, block_size, latent + rope] BF16, written at step.slots
  void* read_cache = nullptr;  // where the attention reads the context (may equal cache)
  int64_t read_blocks = 0;
  const int32_t* read_tables = nullptr;
  int64_t read_stride = 0;
};

class CudaExecutor final : public deepseek_v3::ModelExecutor {
 public:
  static Result<std::unique_ptr<deepseek_v3::ModelExecutor>> create(
      const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config,
      const DecodeGraphOptions& graphs);
  // Benchmarks: see make_cuda_executor_on_device_weights (device_weights_executor.cpp).
  static Result<std::unique_ptr<deepseek_v3::ModelExecutor>> create(
      const ModelConfig& model_config, DeviceWeights weights, const deepseek_v3::ExecutorConfig& config,
      const DecodeGraphOptions& graphs);
  ~CudaExecutor() override;

  std::string description() const override { return description_; }
  int64_t num_blocks() const override { return num_blocks_; }
  int64_t block_size() const override { return block_size_; }
  int64_t num_cache_layers() const override { return num_cache_layers_; }
  int64_t cache_bytes() const override { return cache_bytes_; }
  Result<deepseek_v3::ForwardOutput> forward(const Batch& batch) override;
  Result<deepseek_v3::MtpForwardOutput> mtp_forward(const Batch& batch,
                                                    const std::vector<float>& hidden,
                                                    int64_t mtp_layer) override;
  size_t weight_bytes() const { return weights_.bytes; }
  // Decode steps served by replaying a captured graph so far (all buckets).
  int64_t graph_replays() const;

 private:
  CudaExecutor() = default;
  // Uploads host_weights, or (null) keeps the weights_ the caller already placed on the device.
  Status init(const ModelConfig& model_config, const deepseek_v3::DeepseekV3Weights* host_weights,
              const deepseek_v3::ExecutorConfig& config, const DecodeGraphOptions& graphs);
  Status allocate_cache(const deepseek_v3::ExecutorConfig& config);
  Result<StepResources> make_resources(int moe_lanes);
  Status reserve(Activations& act, int64_t tokens);
  Status prepare_step(const Batch& batch, bool mtp_shift);
  // Embedding, every layer and the head for step_ (and plan_), enqueued on the stream. In a graph
  // step it first enqueues the fixed MLA plan of graph_step_.
  Status enqueue_forward();

  // Graph-replayed decode (decode_graph.cpp has the host side): the batch padded to `bucket`.
  Result<deepseek_v3::ForwardOutput> forward_graph(const Batch& batch, int64_t bucket);
  // Enqueues one padded step of g's bucket: uncaptured the first time, then captured and replayed.
  Status graph_step(DecodeGraph& g, const Batch& padded);

  // y[m, rows(w)] = x[m, cols(w)] · wᵀ; x BF16.
  Status linear(const DeviceMatrix& w, const void* x, int64_t ldx, int64_t m, void* y, DType y_dtype,
                int64_t ldy);
  // normed → branch. Writes the step's latents to target.cache first.
  Status attention(const DeviceMla& w, const AttentionTarget& target, bool gather_mtp_context);
  Status project_queries(const DeviceMla& w);  // normed → q (rotated)
  // normed → latents written to target.cache (and the MTP context gathered when asked).
  Status write_latents(const DeviceMla& w, const AttentionTarget& target, bool gather_mtp_context);
  Status attend(const DeviceMla& w, const AttentionTarget& target);  // q → branch
  // normed → branch.
  Status ffn(const DeviceLayer& layer);
  // branch added into x, then RMSNorm with `weight` into y (BF16 normed, or F32 hidden).
  Status add_norm(const float* weight, bool add, void* y, DType y_dtype);
  // The rows of `hidden` that need logits through `head`, into logits.
  Status head(const DeviceMatrix& head);
  Result<deepseek_v3::ForwardOutput> finish(int64_t tokens, int64_t rows);

  const ModelConfig* config_ = nullptr;
  int device_ = 0;
  std::string description_;
  kc::DeviceStream stream_;
  DeviceWeights weights_;
  kernels::cpu::RouterParams router_;
  kc::DeviceBuffer inv_freq_;  // [rope / 2] F32
  float cos_sin_factor_ = 1.0f;
  float softmax_scale_ = 1.0f;
  bool fast_mla_ = false;  // latent 512 + rope 64: the tensor-core kernel; else the generic one

  int64_t num_cache_layers_ = 0, num_blocks_ = 0, block_size_ = 0, cache_bytes_ = 0;
  // Block num_blocks_ of every layer is the padding rows' scratch block, never given out.
  int32_t scratch_block_ = 0;
  std::vector<kc::DeviceBuffer> cache_;  // one [num_blocks + 1, block_size, latent + rope] per layer
  kc::DeviceBuffer mtp_scratch_;         // the gathered MTP context

  StepResources eager_, graph_;
  StepResources* res_ = &eager_;  // what the layer functions use: graph_ during graph steps
  kc::MoeExpertPath moe_path_ = kc::MoeExpertPath::kAuto;
  DecodeGraphOptions graph_options_;
  std::vector<std::unique_ptr<DecodeGraph>> graphs_;  // one per bucket; empty when graphs are off
  bool graphs_sized_ = false;  // the largest bucket has run: graph_'s buffers are at full size
  DecodeGraph* graph_step_ = nullptr;  // the bucket being enqueued, during a graph step
  std::string capture_error_;          // why a capture failed (graphs are then off)
  StepInputs inputs_;
  StepView step_;
  kc::DeviceBuffer plan_workspace_;
  kc::MlaDevicePlan plan_;
  int64_t widest_mlp_ = 0;
};

}  // namespace latentserve::models::cuda
