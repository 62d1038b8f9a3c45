// Helpers for the loader tests: scratch folders, hand-made (possibly broken) safetensors files,
// and a complete synthetic checkpoint for any small config, built from the weight table.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "models/config.h"
#include "models/deepseek_v3/weight_table.h"
#include "models/fp8_quantize.h"
#include "models/safetensors_writer.h"

namespace latentserve::models::test {

using kernels::cpu::WeightMatrix;

inline std::string shared_fixture(const std::string& rel) {
  return std::string(LATENTSERVE_SHARED_FIXTURES) + "/" + rel;
}

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "latentserve-test-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(out.good());
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  REQUIRE(in.good());
  std::string bytes(size_t(in.tellg()), '\0');
  in.seekg(0);
  in.read(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(in.good());
  return bytes;
}

inline std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(v >> (8 * i)));
  return s;
}

// A safetensors file with the given header text and `data_bytes` bytes of data.
inline void write_raw_safetensors(const std::string& path, const std::string& header,
                                  size_t data_bytes) {
  std::string data(data_bytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 131 + 7);
  write_bytes(path, le64(header.size()) + header + data);
}

inline std::mt19937_64 fresh_rng() {
  const uint64_t seed = std::random_device{}();
  UNSCOPED_INFO("random seed " << seed);
  return std::mt19937_64(seed);
}

// BF16 bytes of n values drawn from N(mean, stddev^2).
inline std::vector<uint8_t> random_bf16(std::mt19937_64& rng, int64_t n, float mean = 0.0f,
                                        float stddev = 0.1f) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<uint8_t> out(size_t(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t v = float_to_bf16(dist(rng));
    out[size_t(2 * i)] = uint8_t(v);
    out[size_t(2 * i + 1)] = uint8_t(v >> 8);
  }
  return out;
}

// A small DeepSeek-V3 config (the fixture's routing, much smaller sizes) as JSON.
inline nlohmann::json small_config_json() {
  return nlohmann::json{
      {"model_type", "deepseek_v3"}, {"vocab_size", 40}, {"hidden_size", 32},
      {"intermediate_size", 48}, {"moe_intermediate_size", 16}, {"num_hidden_layers", 2},
      {"num_attention_heads", 2}, {"q_lora_rank", 24}, {"kv_lora_rank", 16},
      {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}, {"v_head_dim", 8},
      {"n_routed_experts", 4}, {"n_shared_experts", 1}, {"num_experts_per_tok", 2},
      {"n_group", 2}, {"topk_group", 1}, {"first_k_dense_replace", 1},
      {"num_nextn_predict_layers", 1}, {"rope_scaling", nullptr},
      {"quantization_config",
       {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {16, 16}}}}};
}

inline ModelConfig small_config() {
  auto c = parse_model_config(small_config_json().dump(), "small config");
  REQUIRE(c.ok());
  return *c;
}

// Every tensor the config calls for, BF16 random (F32 router bias); with `fp8` the attention
// matrices are F8_E4M3 with block scales per the config's quantization_config.
inline std::vector<TensorBytes> synthetic_tensors(const ModelConfig& config, bool fp8,
                                                  std::mt19937_64& rng) {
  deepseek_v3::DeepseekV3Weights layout;
  std::vector<TensorBytes> out;
  for (const auto& b : deepseek_v3::build_weight_table(config, layout)) {
    int64_t n = 1;
    for (int64_t d : b.shape) n *= d;
    TensorBytes t;
    t.spec = {b.name, DType::BF16, b.shape};
    if (b.name.find("e_score_correction_bias") != std::string::npos) {
      t.spec.dtype = DType::F32;
      std::normal_distribution<float> dist(0.0f, 0.08f);
      t.bytes.resize(size_t(n) * 4);
      for (int64_t i = 0; i < n; ++i) {
        float v = dist(rng);
        std::memcpy(t.bytes.data() + 4 * i, &v, 4);
      }
    } else if (fp8 && b.matrix != nullptr && b.name.find("self_attn") != std::string::npos) {
      std::vector<uint8_t> bf = random_bf16(rng, n);
      auto q = quantize_fp8_blocks(DType::BF16, bf.data(), b.shape[0], b.shape[1],
                                   config.quantization->weight_block_rows,
                                   config.quantization->weight_block_cols);
      REQUIRE(q.ok());
      t.spec.dtype = DType::F8_E4M3;
      t.bytes = q->data;
      TensorBytes s;
      s.spec = {b.name + "_scale_inv", DType::F32,
                {(b.shape[0] + q->block_rows - 1) / q->block_rows,
                 (b.shape[1] + q->block_cols - 1) / q->block_cols}};
      s.bytes.resize(q->scale_inv.size() * 4);
      std::memcpy(s.bytes.data(), q->scale_inv.data(), s.bytes.size());
      out.push_back(std::move(t));
      out.push_back(std::move(s));
      continue;
    } else {
      t.bytes = random_bf16(rng, n, b.vector != nullptr ? 1.0f : 0.0f);
    }
    out.push_back(std::move(t));
  }
  return out;
}

inline std::vector<TensorBytes>::iterator find_tensor(std::vector<TensorBytes>& tensors,
                                                      const std::string& name) {
  auto it = std::find_if(tensors.begin(), tensors.end(),
                         [&](const TensorBytes& t) { return t.spec.name == name; });
  REQUIRE(it != tensors.end());
  return it;
}

// Element (r, c) of a BF16/F16/F32 tensor's bytes as float.
inline float element_at(DType dtype, const void* data, int64_t index) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (dtype == DType::F32) {
    float f;
    std::memcpy(&f, p + 4 * index, 4);
    return f;
  }
  uint16_t v;
  std::memcpy(&v, p + 2 * index, 2);
  return dtype == DType::BF16 ? bf16_to_float(v) : f16_to_float(v);
}

}  // namespace latentserve::models::test
