// The CUDA ModelExecutor's internals, shared by its files: the device, the uploaded weights, the
// latent cache, the per-step inputs and the activation buffers, and the layer functions.
//
// CUDA graphs: the per-layer work allocates nothing and never waits on the host except inside
// MoeLayerRunner::forward, which reads the per-expert row counts back on the host to launch one
// cuBLASLt GEMM per non-empty expert; that read is what blocks capturing a decode step today.
// Buffers grow only at the start of a step (Activations::reserve, StepInputs::upload, the MLA plan
// workspace), so a capture per batch-size bucket would first run the bucket once uncaptured
// (also warming MatmulContext's plan cache and FP8 scratch).
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
      const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config);
  ~CudaExecutor() override;

  std::string description() const override { return description_; }
  int64_t num_blocks() const override { return num_blocks_; }
  int64_t block_size() const override { return block_size_; }
  int64_t cache_bytes() const override { return cache_bytes_; }
  Result<deepseek_v3::ForwardOutput> forward(const Batch& batch) override;
  Result<deepseek_v3::MtpForwardOutput> mtp_forward(const Batch& batch,
                                                    const std::vector<float>& hidden,
                                                    int64_t mtp_layer) override;
  size_t weight_bytes() const { return weights_.bytes; }

 private:
  CudaExecutor() = default;
  Status init(const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config);
  Status allocate_cache(const deepseek_v3::ExecutorConfig& config);
  Status reserve(int64_t tokens);
  Status prepare_step(const Batch& batch, bool mtp_shift);

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

  const deepseek_v3::Model* model_ = nullptr;
  const ModelConfig* config_ = nullptr;
  int device_ = 0;
  std::string description_;
  kc::DeviceStream stream_;
  std::unique_ptr<kc::MatmulContext> matmul_;
  std::unique_ptr<kc::MoeLayerRunner> moe_;
  std::unique_ptr<PerHeadGemm> head_gemm_;
  DeviceWeights weights_;
  kernels::cpu::RouterParams router_;
  kc::DeviceBuffer inv_freq_;  // [rope / 2] F32
  float cos_sin_factor_ = 1.0f;
  float softmax_scale_ = 1.0f;
  bool fast_mla_ = false;  // latent 512 + rope 64: the tensor-core kernel; else the generic one

  int64_t num_cache_layers_ = 0, num_blocks_ = 0, block_size_ = 0, cache_bytes_ = 0;
  std::vector<kc::DeviceBuffer> cache_;  // one [num_blocks, block_size, latent + rope] per layer
  kc::DeviceBuffer mtp_scratch_;         // the gathered MTP context

  Activations act_;
  StepInputs inputs_;
  StepView step_;
  kc::DeviceBuffer plan_workspace_;
  kc::MlaDevicePlan plan_;
  int64_t widest_mlp_ = 0;
};

}  // namespace latentserve::models::cuda
