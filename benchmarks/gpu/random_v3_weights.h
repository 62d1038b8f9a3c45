// DeepSeek-V3-shaped weights made directly in GPU memory for the model step benchmark: every layer
// MoE (256 experts of width 2048, one shared), FP8 E4M3 matrices with 128×128 block scales where the
// FP8 checkpoint has them, BF16 embedding, kv_b_proj, router and lm_head. Values come from a few
// random patterns uploaded once and copied device-to-device, so 45 GB take well under a second.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/quantize.h"
#include "models/config.h"
#include "models/cuda/device_weights.h"

namespace latentserve::bench {

// DeepSeek-V3's published config.json with `layers` layers, all MoE, no MTP layer.
inline Result<models::ModelConfig> v3_config(int layers) {
  const std::string json = R"({
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "attention_bias": false,
    "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 0, "hidden_act": "silu",
    "hidden_size": 7168, "intermediate_size": 18432, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "moe_intermediate_size": 2048, "moe_layer_freq": 1,
    "n_group": 8, "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": true,
    "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": )" +
                           std::to_string(layers) + R"(,
    "num_key_value_heads": 128, "num_nextn_predict_layers": 0, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_group": 4,
    "topk_method": "noaux_tc", "tie_word_embeddings": false, "torch_dtype": "bfloat16", "v_head_dim": 128,
    "vocab_size": 129280,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]}})";
  return models::parse_model_config(json, "decode_step_bench V3 config");
}

// Places and fills tensors in one device arena. A first pass (fill = false) only measures.
class RandomArena {
 public:
  static constexpr size_t kPattern = size_t(64) << 20;  // bytes per random pattern

  // Uploads the patterns: FP8 bytes (|x| <= 0.94, never NaN), BF16 uniform in ±1 and in ±0.02.
  Status upload_patterns(uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> fp8(kPattern);
    for (uint8_t& b : fp8) b = uint8_t(rng()) & 0xB7;  // exponent <= 6: finite, no NaN encoding
    std::vector<uint16_t> bf16(kPattern / 2), small(kPattern / 2);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (uint16_t& v : bf16) v = float_to_bf16(unit(rng));
    for (uint16_t& v : small) v = float_to_bf16(0.02f * unit(rng));
    LS_RETURN_IF_ERROR(put(fp8_, fp8.data(), kPattern));
    LS_RETURN_IF_ERROR(put(bf16_small_, small.data(), kPattern));
    return put(bf16_, bf16.data(), kPattern);
  }

  explicit RandomArena(char* base) : base_(base) {}
  size_t used() const { return used_; }

  // FP8 [rows, cols] with cuBLASLt-packed block scales chosen so entries have RMS ~ 1/sqrt(cols).
  Result<models::cuda::DeviceMatrix> fp8(int64_t rows, int64_t cols) {
    namespace kc = kernels::cuda;
    models::cuda::DeviceMatrix m{DType::F8_E4M3, nullptr, nullptr, rows, cols};
    LS_ASSIGN_OR_RETURN(m.data, random_bytes(size_t(rows * cols), fp8_));
    const size_t n = size_t(kc::ceil_div(rows, kc::kFp8Group) * kc::weight_scale_ld(cols));
    LS_ASSIGN_OR_RETURN(m.scales, constant(n, float(1.0 / (0.35 * std::sqrt(double(cols))))));
    return m;
  }
  // BF16 [rows, cols] uniform in ±1, or in ±0.02 (small: the router, whose sigmoid scores must
  // not saturate, or every token would pick the experts the bias favours).
  Result<models::cuda::DeviceMatrix> bf16(int64_t rows, int64_t cols, bool small = false) {
    models::cuda::DeviceMatrix m{DType::BF16, nullptr, nullptr, rows, cols};
    LS_ASSIGN_OR_RETURN(m.data, random_bytes(size_t(rows * cols) * 2, small ? bf16_small_ : bf16_));
    return m;
  }
  Result<const float*> constant(size_t n, float value) {
    const size_t at = take(n * 4);
    if (base_ != nullptr) {
      std::vector<float> v(n, value);
      LS_RETURN_IF_ERROR(kernels::cuda::copy_to_device(base_ + at, v.data(), n * 4));
    }
    return reinterpret_cast<const float*>(base_ + at);
  }
  // Host bytes copied in as they are (the experts' pointer table the grouped MoE kernels read).
  Result<const void*> copy(const void* host, size_t bytes) {
    const size_t at = take(bytes);
    if (base_ != nullptr) LS_RETURN_IF_ERROR(kernels::cuda::copy_to_device(base_ + at, host, bytes));
    return static_cast<const void*>(base_ + at);
  }
  // F32 uniform in [lo, hi] (router bias): small, so filled from the host.
  Result<const float*> uniform(size_t n, float lo, float hi, uint32_t seed) {
    const size_t at = take(n * 4);
    if (base_ != nullptr) {
      std::mt19937 rng(seed);
      std::uniform_real_distribution<float> d(lo, hi);
      std::vector<float> v(n);
      for (float& f : v) f = d(rng);
      LS_RETURN_IF_ERROR(kernels::cuda::copy_to_device(base_ + at, v.data(), n * 4));
    }
    return reinterpret_cast<const float*>(base_ + at);
  }

 private:
  struct Pattern {
    void* ptr = nullptr;
  };
  static Status put(Pattern& p, const void* host, size_t bytes) {
    LS_CUDA_RETURN_IF_ERROR(cudaMalloc(&p.ptr, bytes));
    return kernels::cuda::copy_to_device(p.ptr, host, bytes);
  }

  size_t take(size_t bytes) {
    const size_t at = used_;
    used_ += (bytes + 255) / 256 * 256;
    return at;
  }

  // Copies of the pattern from a moving offset, so no two tensors hold the same bytes.
  Result<const void*> random_bytes(size_t bytes, const Pattern& p) {
    const size_t at = take(bytes);
    if (base_ == nullptr) return static_cast<const void*>(nullptr);
    size_t done = 0;
    while (done < bytes) {
      const size_t offset = (counter_++ * 7919 * 256) % (kPattern / 2);
      const size_t n = std::min(bytes - done, kPattern - offset);
      LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base_ + at + done, static_cast<const char*>(p.ptr) + offset, n,
                                              cudaMemcpyDeviceToDevice, nullptr));
      done += n;
    }
    return static_cast<const void*>(base_ + at);
  }

 public:
  ~RandomArena() {
    cudaFree(fp8_.ptr);
    cudaFree(bf16_.ptr);
    cudaFree(bf16_small_.ptr);
  }
  RandomArena(const RandomArena&) = delete;
  RandomArena& operator=(const RandomArena&) = delete;

 private:
  char* base_;
  size_t used_ = 0;
  size_t counter_ = 1;
  Pattern fp8_, bf16_, bf16_small_;
};

// Every tensor of `c` (all layers MoE) placed by `a`; with a measuring arena the pointers are null.
inline Result<models::cuda::DeviceWeights> place_v3_weights(RandomArena& a, const models::ModelConfig& c) {
  namespace kc = kernels::cuda;
  models::cuda::DeviceWeights d;
  const int64_t H = c.hidden_size, heads = c.num_attention_heads, lora = c.kv_lora_rank;
  const int64_t rope = c.qk_rope_head_dim, nope = c.qk_nope_head_dim, v = c.v_head_dim;
  const int64_t qlora = c.q_lora_rank.value_or(0), width = c.moe_intermediate_size;
  const float norm = 1.0f;
  LS_ASSIGN_OR_RETURN(d.embed_tokens, a.bf16(c.vocab_size, H));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    models::cuda::DeviceLayer layer;
    LS_ASSIGN_OR_RETURN(layer.input_layernorm, a.constant(size_t(H), norm));
    LS_ASSIGN_OR_RETURN(layer.post_attention_layernorm, a.constant(size_t(H), norm));
    models::cuda::DeviceMla& m = layer.attn;
    LS_ASSIGN_OR_RETURN(m.q_a_proj, a.fp8(qlora, H));
    LS_ASSIGN_OR_RETURN(m.q_a_layernorm, a.constant(size_t(qlora), norm));
    LS_ASSIGN_OR_RETURN(m.q_b_proj, a.fp8(heads * (nope + rope), qlora));
    LS_ASSIGN_OR_RETURN(m.kv_a_proj_with_mqa, a.fp8(lora + rope, H));
    LS_ASSIGN_OR_RETURN(m.kv_a_layernorm, a.constant(size_t(lora), norm));
    LS_ASSIGN_OR_RETURN(m.kv_b_proj, a.bf16(heads * (nope + v), lora));
    LS_ASSIGN_OR_RETURN(m.o_proj, a.fp8(H, heads * v));
    kc::MoeLayerWeights moe;
    moe.dtype = DType::F8_E4M3;
    moe.hidden = H;
    moe.width = width;
    LS_ASSIGN_OR_RETURN(models::cuda::DeviceMatrix router, a.bf16(c.n_routed_experts, H, /*small=*/true));
    moe.router = router.data;
    LS_ASSIGN_OR_RETURN(moe.bias, a.uniform(size_t(c.n_routed_experts), -0.05f, 0.05f, uint32_t(l + 1)));
    auto expert = [&](int64_t w) -> Result<kc::MoeExpertWeights> {
      LS_ASSIGN_OR_RETURN(models::cuda::DeviceMatrix gate_up, a.fp8(2 * w, H));
      LS_ASSIGN_OR_RETURN(models::cuda::DeviceMatrix down, a.fp8(H, w));
      return kc::MoeExpertWeights{gate_up.data, gate_up.scales, down.data, down.scales};
    };
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      LS_ASSIGN_OR_RETURN(kc::MoeExpertWeights ew, expert(width));
      moe.experts.push_back(ew);
    }
    // As upload_weights does: without the table the grouped path (kAuto's choice for decode, and
    // the only one a CUDA graph step takes) refuses the layer.
    LS_ASSIGN_OR_RETURN(const void* table,
                        a.copy(moe.experts.data(), moe.experts.size() * sizeof(kc::MoeExpertWeights)));
    moe.device_experts = static_cast<const kc::MoeExpertWeights*>(table);
    moe.shared_width = width * c.n_shared_experts;
    LS_ASSIGN_OR_RETURN(kc::MoeExpertWeights shared, expert(moe.shared_width));
    moe.shared = shared;
    layer.moe = std::move(moe);
    d.layers.push_back(std::move(layer));
  }
  LS_ASSIGN_OR_RETURN(d.norm, a.constant(size_t(H), norm));
  LS_ASSIGN_OR_RETURN(d.lm_head, a.bf16(c.vocab_size, H));
  return d;
}

// The arena measured, allocated and filled.
inline Result<models::cuda::DeviceWeights> random_v3_weights(const models::ModelConfig& c, uint32_t seed) {
  RandomArena measure(nullptr);
  LS_RETURN_IF_ERROR(place_v3_weights(measure, c));
  LS_ASSIGN_OR_RETURN(kernels::cuda::DeviceBuffer memory,
                      kernels::cuda::DeviceBuffer::allocate(measure.used(), "random V3 weights"));
  RandomArena fill(static_cast<char*>(memory.data()));
  LS_RETURN_IF_ERROR(fill.upload_patterns(seed));
  LS_ASSIGN_OR_RETURN(models::cuda::DeviceWeights d, place_v3_weights(fill, c));
  LS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize());
  d.memory = std::move(memory);
  d.bytes = measure.used();
  return d;
}

}  // namespace latentserve::bench
