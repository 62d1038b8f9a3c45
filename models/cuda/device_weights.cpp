// Weight upload in two passes over the same code: the first only measures (offsets of every tensor
// in one arena), the second converts each tensor on the host and copies it to its offset. One
// allocation keeps cudaMalloc calls (tens of thousands of experts in V3) out of loading.
#include "models/cuda/device_weights.h"

#include <cstring>
#include <map>
#include <string>
#include <utility>

#include "kernels/cpu/matmul.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/quantize.h"

namespace latentserve::models::cuda {

namespace {

namespace kc = kernels::cuda;
using deepseek_v3::WeightMatrix;

constexpr size_t kAlign = 256;

bool fp8_with_128_blocks(const WeightMatrix& w) {
  return w.dtype == DType::F8_E4M3 && w.scale_inv != nullptr && w.block_rows == kc::kFp8Group &&
         w.block_cols == kc::kFp8Group;
}

// The matrix as BF16 bits (exact for BF16, rounded to nearest even otherwise).
std::vector<uint16_t> to_bf16(const WeightMatrix& w) {
  const size_t n = size_t(w.rows * w.cols);
  std::vector<uint16_t> out(n);
  if (w.dtype == DType::BF16) {
    std::memcpy(out.data(), w.data, n * sizeof(uint16_t));
    return out;
  }
  std::vector<float> f(n);
  kernels::cpu::dequantize(w, f.data());
  for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16(f[i]);
  return out;
}

// Places tensors in the arena: with `base` null it only counts bytes; otherwise it copies too.
class Uploader {
 public:
  explicit Uploader(char* base) : base_(base) {}
  size_t used() const { return used_; }

  Result<const void*> bytes(const void* host, size_t n, const std::string& what) {
    const size_t at = used_;
    used_ += (n + kAlign - 1) / kAlign * kAlign;
    if (base_ == nullptr) return static_cast<const void*>(nullptr);
    if (n > 0) {
      Status st = kc::copy_to_device(base_ + at, host, n);
      if (!st.ok()) return st.error().with_context("uploading " + what);
    }
    return static_cast<const void*>(base_ + at);
  }

  Result<const float*> vector(const std::vector<float>& v, const std::string& what) {
    if (v.empty()) return static_cast<const float*>(nullptr);
    LS_ASSIGN_OR_RETURN(const void* p, bytes(v.data(), v.size() * sizeof(float), what));
    return static_cast<const float*>(p);
  }

  // One matrix; the same host tensor (MTP's copies of the embedding and head) is uploaded once.
  Result<DeviceMatrix> matrix(const WeightMatrix& w, bool allow_fp8, const std::string& what) {
    if (w.empty()) return DeviceMatrix{};
    const auto key = std::make_pair(w.data, allow_fp8);
    if (auto it = shared_.find(key); it != shared_.end()) return it->second;
    LS_ASSIGN_OR_RETURN(DeviceMatrix m, stacked({&w}, allow_fp8, what));
    shared_[key] = m;
    return m;
  }

  // Matrices with equal column counts stacked by rows. FP8 only when allowed, every part is FP8
  // with 128×128 blocks and every part but the last fills whole 128-row blocks.
  Result<DeviceMatrix> stacked(const std::vector<const WeightMatrix*>& parts, bool allow_fp8,
                               const std::string& what) {
    DeviceMatrix m;
    m.cols = parts.front()->cols;
    bool fp8 = allow_fp8;
    for (size_t i = 0; i < parts.size(); ++i) {
      const WeightMatrix& w = *parts[i];
      if (w.cols != m.cols) {
        return make_error(what + ": stacked parts have " + std::to_string(w.cols) + " and " +
                          std::to_string(m.cols) + " columns");
      }
      m.rows += w.rows;
      fp8 = fp8 && fp8_with_128_blocks(w) && (i + 1 == parts.size() || w.rows % kc::kFp8Group == 0);
    }
    m.dtype = fp8 ? DType::F8_E4M3 : DType::BF16;
    const size_t elem = fp8 ? 1 : 2;
    std::vector<uint8_t> data;
    std::vector<float> scales;
    if (base_ != nullptr) {
      for (const WeightMatrix* w : parts) {
        if (fp8) {
          const auto* p = static_cast<const uint8_t*>(w->data);
          data.insert(data.end(), p, p + w->rows * w->cols);
          const std::vector<float> s = kc::pack_weight_scales(w->scale_inv, w->rows, w->cols);
          scales.insert(scales.end(), s.begin(), s.end());
        } else {
          const std::vector<uint16_t> b = to_bf16(*w);
          const auto* p = reinterpret_cast<const uint8_t*>(b.data());
          data.insert(data.end(), p, p + b.size() * 2);
        }
      }
    }
    LS_ASSIGN_OR_RETURN(m.data, bytes(data.data(), size_t(m.rows * m.cols) * elem, what));
    if (fp8) {
      const size_t n = size_t(kc::ceil_div(m.rows, kc::kFp8Group) * kc::weight_scale_ld(m.cols));
      LS_ASSIGN_OR_RETURN(const void* s, bytes(scales.data(), n * sizeof(float), what + " scales"));
      m.scales = static_cast<const float*>(s);
    }
    return m;
  }

 private:
  char* base_;
  size_t used_ = 0;
  std::map<std::pair<const void*, bool>, DeviceMatrix> shared_;
};

Result<DeviceMla> upload_mla(Uploader& up, const deepseek_v3::MlaWeights& w, const std::string& at) {
  DeviceMla d;
  LS_ASSIGN_OR_RETURN(d.q_a_proj, up.matrix(w.q_a_proj, true, at + "q_a_proj"));
  LS_ASSIGN_OR_RETURN(d.q_b_proj, up.matrix(w.q_b_proj, true, at + "q_b_proj"));
  LS_ASSIGN_OR_RETURN(d.q_a_layernorm, up.vector(w.q_a_layernorm, at + "q_a_layernorm"));
  LS_ASSIGN_OR_RETURN(d.q_proj, up.matrix(w.q_proj, true, at + "q_proj"));
  LS_ASSIGN_OR_RETURN(d.kv_a_proj_with_mqa, up.matrix(w.kv_a_proj_with_mqa, true, at + "kv_a_proj_with_mqa"));
  LS_ASSIGN_OR_RETURN(d.kv_a_layernorm, up.vector(w.kv_a_layernorm, at + "kv_a_layernorm"));
  LS_ASSIGN_OR_RETURN(d.kv_b_proj, up.matrix(w.kv_b_proj, false, at + "kv_b_proj"));
  LS_ASSIGN_OR_RETURN(d.o_proj, up.matrix(w.o_proj, true, at + "o_proj"));
  return d;
}

Result<DeviceMlp> upload_mlp(Uploader& up, const deepseek_v3::MlpWeights& w, bool allow_fp8,
                             const std::string& at) {
  DeviceMlp d;
  d.width = w.gate_proj.rows;
  LS_ASSIGN_OR_RETURN(d.gate_up, up.stacked({&w.gate_proj, &w.up_proj}, allow_fp8, at + "gate_up"));
  LS_ASSIGN_OR_RETURN(d.down, up.matrix(w.down_proj, allow_fp8, at + "down_proj"));
  return d;
}

// FP8 for a MoE layer only when every expert matrix (shared ones included) can stay FP8.
bool moe_can_stay_fp8(const deepseek_v3::MoeWeights& w) {
  auto mlp_ok = [](const deepseek_v3::MlpWeights& m) {
    return fp8_with_128_blocks(m.gate_proj) && fp8_with_128_blocks(m.up_proj) &&
           fp8_with_128_blocks(m.down_proj) && m.gate_proj.rows % kc::kFp8Group == 0;
  };
  for (const auto& e : w.experts) {
    if (!mlp_ok(e)) return false;
  }
  return !w.shared_experts || mlp_ok(*w.shared_experts);
}

Result<kc::MoeLayerWeights> upload_moe(Uploader& up, const deepseek_v3::MoeWeights& w,
                                       const std::string& at) {
  kc::MoeLayerWeights d;
  const bool fp8 = moe_can_stay_fp8(w);
  d.dtype = fp8 ? DType::F8_E4M3 : DType::BF16;
  d.hidden = w.gate.cols;
  d.width = w.experts.empty() ? 0 : w.experts.front().gate_proj.rows;
  LS_ASSIGN_OR_RETURN(DeviceMatrix router, up.matrix(w.gate, false, at + "gate"));
  d.router = router.data;
  LS_ASSIGN_OR_RETURN(d.bias, up.vector(w.e_score_correction_bias, at + "e_score_correction_bias"));
  auto expert = [&](const deepseek_v3::MlpWeights& m, const std::string& name) -> Result<kc::MoeExpertWeights> {
    LS_ASSIGN_OR_RETURN(DeviceMlp mlp, upload_mlp(up, m, fp8, name));
    if (mlp.gate_up.dtype != d.dtype || mlp.down.dtype != d.dtype) {
      return make_error(name + ": expert matrices of one layer ended in different dtypes");
    }
    return kc::MoeExpertWeights{mlp.gate_up.data, mlp.gate_up.scales, mlp.down.data, mlp.down.scales};
  };
  for (size_t e = 0; e < w.experts.size(); ++e) {
    LS_ASSIGN_OR_RETURN(kc::MoeExpertWeights ew, expert(w.experts[e], at + "experts." + std::to_string(e) + "."));
    d.experts.push_back(ew);
  }
  if (w.shared_experts) {
    LS_ASSIGN_OR_RETURN(kc::MoeExpertWeights sw, expert(*w.shared_experts, at + "shared_experts."));
    d.shared = sw;
    d.shared_width = w.shared_experts->gate_proj.rows;
  }
  // The expert table itself, for the grouped kernels that pick experts on the device.
  LS_ASSIGN_OR_RETURN(const void* table, up.bytes(d.experts.data(), d.experts.size() * sizeof(kc::MoeExpertWeights),
                                                  at + "experts table"));
  d.device_experts = static_cast<const kc::MoeExpertWeights*>(table);
  return d;
}

Result<DeviceLayer> upload_layer(Uploader& up, const deepseek_v3::DecoderLayerWeights& w,
                                 const std::string& at) {
  DeviceLayer d;
  LS_ASSIGN_OR_RETURN(d.input_layernorm, up.vector(w.input_layernorm, at + "input_layernorm"));
  LS_ASSIGN_OR_RETURN(d.post_attention_layernorm,
                      up.vector(w.post_attention_layernorm, at + "post_attention_layernorm"));
  LS_ASSIGN_OR_RETURN(d.attn, upload_mla(up, w.attn, at + "self_attn."));
  if (w.mlp) {
    LS_ASSIGN_OR_RETURN(DeviceMlp mlp, upload_mlp(up, *w.mlp, true, at + "mlp."));
    d.mlp = mlp;
  }
  if (w.moe) {
    LS_ASSIGN_OR_RETURN(kc::MoeLayerWeights moe, upload_moe(up, *w.moe, at + "mlp."));
    d.moe = std::move(moe);
  }
  return d;
}

Result<DeviceWeights> upload_all(Uploader& up, const deepseek_v3::DeepseekV3Weights& w,
                                 const ModelConfig& config) {
  DeviceWeights d;
  LS_ASSIGN_OR_RETURN(d.embed_tokens, up.matrix(w.embed_tokens, false, "model.embed_tokens"));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    LS_ASSIGN_OR_RETURN(DeviceLayer layer, upload_layer(up, w.layers[l], "model.layers." + std::to_string(l) + "."));
    d.layers.push_back(std::move(layer));
  }
  LS_ASSIGN_OR_RETURN(d.norm, up.vector(w.norm, "model.norm"));
  LS_ASSIGN_OR_RETURN(d.lm_head, up.matrix(w.lm_head, true, "lm_head"));
  for (size_t k = 0; k < w.mtp.size(); ++k) {
    const deepseek_v3::MtpLayerWeights& m = w.mtp[k];
    const std::string at = "model.layers." + std::to_string(config.num_hidden_layers + int64_t(k)) + ".";
    DeviceMtp t;
    LS_ASSIGN_OR_RETURN(t.enorm, up.vector(m.enorm, at + "enorm"));
    LS_ASSIGN_OR_RETURN(t.hnorm, up.vector(m.hnorm, at + "hnorm"));
    LS_ASSIGN_OR_RETURN(t.eh_proj, up.matrix(m.eh_proj, true, at + "eh_proj"));
    LS_ASSIGN_OR_RETURN(t.block, upload_layer(up, m.block, at));
    LS_ASSIGN_OR_RETURN(t.shared_head_norm, up.vector(m.shared_head_norm, at + "shared_head.norm"));
    LS_ASSIGN_OR_RETURN(t.shared_head_head, up.matrix(m.shared_head_head, true, at + "shared_head.head"));
    LS_ASSIGN_OR_RETURN(t.embed_tokens, up.matrix(m.embed_tokens, false, at + "embed_tokens"));
    d.mtp.push_back(std::move(t));
  }
  return d;
}

}  // namespace

Result<DeviceWeights> upload_weights(const deepseek_v3::DeepseekV3Weights& weights,
                                     const ModelConfig& config) {
  Uploader measure(nullptr);
  LS_RETURN_IF_ERROR(upload_all(measure, weights, config));
  const size_t total = measure.used();
  auto memory = kc::DeviceBuffer::allocate(total, "model weights");
  if (!memory.ok()) {
    return memory.error().with_context("uploading " + std::to_string(total >> 20) +
                                       " MiB of weights");
  }
  Uploader copy(static_cast<char*>(memory->data()));
  LS_ASSIGN_OR_RETURN(DeviceWeights d, upload_all(copy, weights, config));
  d.memory = std::move(*memory);
  d.bytes = total;
  return d;
}

}  // namespace latentserve::models::cuda
