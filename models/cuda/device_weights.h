// The DeepSeek-V3 weights in GPU memory, laid out as the CUDA forward pass reads them: one
// allocation holding every matrix (BF16, or FP8 E4M3 with cuBLASLt-packed 128×128 block scales),
// gate and up projections stacked into one matrix, norms and biases in F32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/moe_layer.h"
#include "models/config.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::models::cuda {

// A linear layer's weight [rows, cols] in PyTorch layout on the device.
struct DeviceMatrix {
  DType dtype = DType::BF16;      // BF16 or F8_E4M3
  const void* data = nullptr;     // [rows, cols]
  const float* scales = nullptr;  // F8_E4M3: [ceil(rows/128), weight_scale_ld(cols)]
  int64_t rows = 0;
  int64_t cols = 0;
};

struct DeviceMla {
  DeviceMatrix q_a_proj, q_b_proj;  // with q_lora_rank
  const float* q_a_layernorm = nullptr;
  DeviceMatrix q_proj;              // without q_lora_rank
  DeviceMatrix kv_a_proj_with_mqa;  // [kv_lora_rank + rope, hidden]
  const float* kv_a_layernorm = nullptr;
  // Always BF16 [heads * (nope + v), kv_lora_rank]: per head, its first nope rows are W_UK and
  // the next v rows W_UV, read in place by the per-head GEMMs of the absorbed form.
  DeviceMatrix kv_b_proj;
  DeviceMatrix o_proj;
};

// A dense SiLU-gated MLP: rows [0, width) of gate_up are gate_proj, [width, 2·width) up_proj.
struct DeviceMlp {
  DeviceMatrix gate_up;
  DeviceMatrix down;
  int64_t width = 0;
};

struct DeviceLayer {
  const float* input_layernorm = nullptr;
  const float* post_attention_layernorm = nullptr;
  DeviceMla attn;
  std::optional<DeviceMlp> mlp;
  std::optional<kernels::cuda::MoeLayerWeights> moe;
};

struct DeviceMtp {
  const float* enorm = nullptr;
  const float* hnorm = nullptr;
  DeviceMatrix eh_proj;  // [hidden, 2·hidden]
  DeviceLayer block;
  const float* shared_head_norm = nullptr;
  DeviceMatrix shared_head_head;  // the main lm_head's memory when the checkpoint's bytes are shared
  DeviceMatrix embed_tokens;      // BF16 [vocab, hidden]; likewise shared with the main embedding
};

struct DeviceWeights {
  DeviceMatrix embed_tokens;  // BF16 [vocab, hidden] (gathered, not multiplied: never FP8)
  std::vector<DeviceLayer> layers;
  const float* norm = nullptr;
  DeviceMatrix lm_head;
  std::vector<DeviceMtp> mtp;
  kernels::cuda::DeviceBuffer memory;  // everything above points into it
  size_t bytes = 0;                    // uploaded bytes (alignment padding included)
};

// Copies every tensor of `weights` to the current device. BF16 stays BF16; F32/F16 become BF16;
// FP8 with 128×128 blocks stays FP8 unless two matrices stacked together would share a scale
// block (width not a multiple of 128), and then, like FP8 with other block shapes, becomes BF16.
// A MoE layer keeps one dtype for all its experts. Errors: out of device memory (with the size).
Result<DeviceWeights> upload_weights(const deepseek_v3::DeepseekV3Weights& weights,
                                     const ModelConfig& config);

}  // namespace latentserve::models::cuda
