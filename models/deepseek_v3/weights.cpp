#include "models/deepseek_v3/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "models/deepseek_v3/weight_table.h"

namespace latentserve::models::deepseek_v3 {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  TensorInfo t;
  t.shape = shape;
  return t.shape_string();
}

std::string located(const TensorInfo& t) {
  return "tensor '" + t.name + "' in shard '" + t.file + "'";
}

std::string scale_name(const std::string& weight_name) { return weight_name + "_scale_inv"; }

bool is_float_matrix_dtype(DType d) {
  return d == DType::F32 || d == DType::BF16 || d == DType::F16 || d == DType::F8_E4M3;
}

// Returns t's bytes, copied into `owned` when the file leaves them misaligned for their type.
const void* aligned_data(const TensorInfo& t, DeepseekV3Weights& owner) {
  if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0) return t.data;
  std::shared_ptr<float[]> copy(new float[(t.nbytes + 3) / 4]);
  std::memcpy(copy.get(), t.data, t.nbytes);
  owner.owned_copies.push_back(copy);
  return copy.get();
}

Status load_matrix(const Checkpoint& ckpt, const WeightBinding& b, const TensorInfo& t,
                   const ModelConfig& config, DeepseekV3Weights& owner) {
  if (!is_float_matrix_dtype(t.dtype)) {
    return make_error(located(t) + ": expected BF16, F16, F32 or F8_E4M3, found " +
                      std::string(dtype_name(t.dtype)));
  }
  WeightMatrix w;
  w.dtype = t.dtype;
  w.rows = b.shape[0];
  w.cols = b.shape[1];
  w.data = aligned_data(t, owner);
  if (t.dtype == DType::F8_E4M3) {
    if (!config.quantization) {
      return make_error(located(t) + ": F8_E4M3 weight but config.json has no "
                                     "quantization_config");
    }
    w.block_rows = config.quantization->weight_block_rows;
    w.block_cols = config.quantization->weight_block_cols;
    const std::vector<int64_t> scale_shape = {w.scale_rows(), w.scale_cols()};
    const TensorInfo* s = ckpt.find(scale_name(b.name));
    if (s == nullptr) {
      return make_error(located(t) + ": F8_E4M3 weight without its block scales '" +
                        scale_name(b.name) + "' (expected F32 " + shape_string(scale_shape) + ")");
    }
    if (s->dtype != DType::F32) {
      return make_error(located(*s) + ": expected dtype F32, found " +
                        std::string(dtype_name(s->dtype)));
    }
    if (s->shape != scale_shape) {
      return make_error(located(*s) + ": expected shape " + shape_string(scale_shape) +
                        " (blocks of " + std::to_string(w.block_rows) + "x" +
                        std::to_string(w.block_cols) + "), found " + s->shape_string());
    }
    w.scale_inv = static_cast<const float*>(aligned_data(*s, owner));
  }
  *b.matrix = w;
  return ok_status();
}

Status load_vector(const WeightBinding& b, const TensorInfo& t) {
  std::vector<float>& out = *b.vector;
  out.resize(size_t(b.shape[0]));
  const auto* bytes = static_cast<const uint8_t*>(t.data);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::F32) {
      std::memcpy(&out[i], bytes + 4 * i, 4);
    } else {
      uint16_t v;
      std::memcpy(&v, bytes + 2 * i, 2);
      out[i] = t.dtype == DType::BF16 ? bf16_to_float(v) : f16_to_float(v);
    }
  }
  return ok_status();
}

Status load_binding(const Checkpoint& ckpt, const WeightBinding& b, const ModelConfig& config,
                    DeepseekV3Weights& owner) {
  const TensorInfo* t = ckpt.find(b.name);
  if (t == nullptr) {
    return make_error("tensor '" + b.name + "' is missing from the checkpoint (expected shape " +
                      shape_string(b.shape) + ")");
  }
  if (t->shape != b.shape) {
    return make_error(located(*t) + ": expected shape " + shape_string(b.shape) + ", found " +
                      t->shape_string());
  }
  if (b.matrix != nullptr) return load_matrix(ckpt, b, *t, config, owner);
  if (t->dtype != DType::F32 && t->dtype != DType::BF16 && t->dtype != DType::F16) {
    return make_error(located(*t) + ": expected F32, BF16 or F16, found " +
                      std::string(dtype_name(t->dtype)));
  }
  return load_vector(b, *t);
}

// Many published checkpoints drop the MTP layers; then the model loads without them. A partly
// present MTP layer is a broken checkpoint.
Status resolve_mtp(const Checkpoint& ckpt, std::vector<WeightBinding>& table,
                   DeepseekV3Weights& weights) {
  if (weights.mtp.empty()) return ok_status();
  const WeightBinding* first_present = nullptr;
  const WeightBinding* first_missing = nullptr;
  size_t missing = 0;
  for (const WeightBinding& b : table) {
    if (b.mtp_layer < 0) continue;
    const bool present = ckpt.find(b.name) != nullptr;
    if (present && first_present == nullptr) first_present = &b;
    if (!present && b.required) {
      ++missing;
      if (first_missing == nullptr) first_missing = &b;
    }
  }
  if (first_present == nullptr) {
    std::erase_if(table, [](const WeightBinding& b) { return b.mtp_layer >= 0; });
    weights.mtp.clear();
    return ok_status();
  }
  if (first_missing != nullptr) {
    return make_error("MTP layers are partly present: '" + first_present->name +
                      "' exists but '" + first_missing->name + "' (and " +
                      std::to_string(missing - 1) + " more) are missing");
  }
  return ok_status();
}

// Tensors the table does not know point to an architecture we would silently misread.
Status check_unknown(const Checkpoint& ckpt, const std::vector<WeightBinding>& table,
                     const ModelConfig& config) {
  std::set<std::string, std::less<>> known;
  for (const WeightBinding& b : table) {
    known.insert(b.name);
    const TensorInfo* t = ckpt.find(b.name);
    if (b.matrix != nullptr && t != nullptr && t->dtype == DType::F8_E4M3) {
      known.insert(scale_name(b.name));
    }
  }
  std::string unknown;
  int count = 0;
  for (const auto& [name, info] : ckpt.tensors()) {
    if (known.count(name)) continue;
    if (++count <= 5) {
      unknown += (count > 1 ? ", '" : "'") + name + "' (" + info.file + ")";
      if (name == "lm_head.weight" && config.tie_word_embeddings) {
        unknown += " although tie_word_embeddings is true";
      }
    }
  }
  if (count == 0) return ok_status();
  return make_error("checkpoint has " + std::to_string(count) +
                    " tensor(s) this DeepSeek-V3 configuration does not use: " + unknown +
                    (count > 5 ? ", ..." : ""));
}

uint64_t matrix_bytes(const WeightMatrix& w) {
  return uint64_t(w.rows) * uint64_t(w.cols) * dtype_size(w.dtype);
}

bool same_matrix(const WeightMatrix& a, const WeightMatrix& b) {
  if (a.dtype != b.dtype || a.rows != b.rows || a.cols != b.cols) return false;
  if (a.data == b.data) return true;
  if (std::memcmp(a.data, b.data, matrix_bytes(a)) != 0) return false;
  if (a.dtype != DType::F8_E4M3) return true;
  if (a.block_rows != b.block_rows || a.block_cols != b.block_cols) return false;
  const uint64_t scales = uint64_t(a.scale_rows() * a.scale_cols());
  return std::memcmp(a.scale_inv, b.scale_inv, scales * sizeof(float)) == 0;
}

// The comparison paged the copy in; give those pages back (the mapping is private and read-only,
// so they are only re-read from the file if something touches them again). Memory we own (an
// aligned copy) is left alone.
void release_mapped(const TensorInfo* t, const void* data) {
  if (t == nullptr || t->data != data) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + t->nbytes) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// DeepSeek-V3's releases store each MTP layer's embedding and shared_head.head as byte-for-byte
// copies of the main embedding and lm_head. Pointing at the main tensors then reads one copy
// instead of two (half the memory of those tensors). Copies that differ are kept.
void share_mtp_copies(const Checkpoint& ckpt, const ModelConfig& config,
                      DeepseekV3Weights& weights) {
  for (size_t i = 0; i < weights.mtp.size(); ++i) {
    MtpLayerWeights& m = weights.mtp[i];
    const std::string p = "model.layers." + std::to_string(config.num_hidden_layers + int64_t(i)) + ".";
    if (same_matrix(m.shared_head_head, weights.lm_head)) {
      release_mapped(ckpt.find(p + "shared_head.head.weight"), m.shared_head_head.data);
      m.shared_head_head = weights.lm_head;
    }
    if (same_matrix(m.embed_tokens, weights.embed_tokens)) {
      release_mapped(ckpt.find(p + "embed_tokens.weight"), m.embed_tokens.data);
      m.embed_tokens = weights.embed_tokens;
    }
  }
}

}  // namespace

Result<DeepseekV3Weights> load_weights(const Checkpoint& checkpoint, const ModelConfig& config) {
  DeepseekV3Weights weights;
  std::vector<WeightBinding> table = build_weight_table(config, weights);
  LS_RETURN_IF_ERROR(resolve_mtp(checkpoint, table, weights));
  LS_RETURN_IF_ERROR(check_unknown(checkpoint, table, config));
  for (const WeightBinding& b : table) {
    if (!b.required && checkpoint.find(b.name) == nullptr) continue;
    LS_RETURN_IF_ERROR(load_binding(checkpoint, b, config, weights));
  }
  if (config.tie_word_embeddings) weights.lm_head = weights.embed_tokens;
  share_mtp_copies(checkpoint, config, weights);
  return weights;
}

}  // namespace latentserve::models::deepseek_v3
