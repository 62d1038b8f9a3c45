#include "models/make_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/config.h"
#include "models/deepseek_v3/weight_table.h"
#include "models/fp8_quantize.h"
#include "models/safetensors_writer.h"

namespace latentserve::models {
namespace {

namespace fs = std::filesystem;

// splitmix64: tiny, fast and the same everywhere (std::normal_distribution is not).
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 0x100000001b3ull;
  return h;
}

// Fills out[0..n) with mean + stddev * N(0, 1) (Box-Muller in float, one 64-bit draw per pair,
// tails cut near 5.8 sigma), from a stream keyed by (seed, tensor, row) so rows can be
// generated in any order and in parallel.
void normal_row(uint64_t tensor_seed, int64_t row, float mean, float stddev, float* out,
                int64_t n) {
  uint64_t state = tensor_seed ^ (uint64_t(row) * 0xd1b54a32d192ed03ull);
  splitmix64(state);
  constexpr float kTwoPi = 6.28318530717958647692f;
  for (int64_t i = 0; i < n; i += 2) {
    const uint64_t bits = splitmix64(state);
    const float u1 = float((bits >> 40) + 1) * 0x1.0p-24f;  // (0, 1]
    const float u2 = float(bits & 0xffffffu) * 0x1.0p-24f;  // [0, 1)
    const float r = stddev * std::sqrt(-2.0f * std::log(u1));
    out[i] = mean + r * std::cos(kTwoPi * u2);
    if (i + 1 < n) out[i + 1] = mean + r * std::sin(kTwoPi * u2);
  }
}

// One tensor to generate (plus its block scales when quantized), and where it goes.
struct Unit {
  TensorSpec weight;
  bool quantized = false;
  TensorSpec scale;         // when quantized
  std::string rng_key;      // copies (the MTP embedding and head) share their source's key
  float mean = 0.0f;
  float stddev = 1.0f;
  uint64_t nbytes() const { return weight.nbytes() + (quantized ? scale.nbytes() : 0); }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Unit plan_unit(const deepseek_v3::WeightBinding& b, bool fp8) {
  Unit u;
  u.weight.name = b.name;
  u.weight.shape = b.shape;
  u.weight.dtype = DType::BF16;
  u.rng_key = b.name;
  if (b.vector != nullptr) {
    if (ends_with(b.name, "e_score_correction_bias")) {
      u.weight.dtype = DType::F32;
      u.stddev = 0.08f;
    } else {
      u.mean = 1.0f;
      u.stddev = 0.1f;
    }
    return u;
  }
  const double in = double(b.shape[1]);
  if (ends_with(b.name, "embed_tokens.weight")) {
    u.rng_key = "model.embed_tokens.weight";
  } else if (b.name == "lm_head.weight" || ends_with(b.name, "shared_head.head.weight")) {
    u.rng_key = "lm_head.weight";
    u.stddev = float(2.0 / std::sqrt(in));
  } else if (ends_with(b.name, "mlp.gate.weight")) {
    u.stddev = float(2.0 / std::sqrt(in));
  } else {
    u.stddev = float(1.0 / std::sqrt(in));
    // As in DeepSeek-V3's FP8 release: attention and MLP/expert matrices are quantized; the
    // embedding, heads, router and eh_proj stay BF16.
    const bool linear = b.name.find(".self_attn.") != std::string::npos ||
                        b.name.find(".mlp.") != std::string::npos;
    if (fp8 && linear) {
      u.quantized = true;
      u.weight.dtype = DType::F8_E4M3;
      u.scale.name = b.name + "_scale_inv";
      u.scale.dtype = DType::F32;
      u.scale.shape = {(b.shape[0] + 127) / 128, (b.shape[1] + 127) / 128};
    }
  }
  return u;
}

Status write_unit(SafetensorsWriter& writer, const Unit& u, uint64_t seed) {
  const uint64_t tensor_seed = seed ^ hash_name(u.rng_key);
  const int64_t rows = u.weight.shape.size() == 2 ? u.weight.shape[0] : 1;
  const int64_t cols = u.weight.shape.back();
  // Chunks of whole 128-row blocks, about 16M values each, keep memory flat for big tensors.
  int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 24) / cols);
  if (u.quantized) chunk = std::max<int64_t>(128, chunk / 128 * 128);
  std::vector<float> values;
  std::vector<uint16_t> half;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    values.resize(size_t(n * cols));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      normal_row(tensor_seed, r0 + r, u.mean, u.stddev, values.data() + r * cols, cols);
    }
    const uint64_t elem_offset = uint64_t(r0 * cols);
    if (u.weight.dtype == DType::F32) {
      LS_RETURN_IF_ERROR(writer.write(u.weight.name, elem_offset * 4, values.data(),
                                      values.size() * 4));
    } else if (u.weight.dtype == DType::BF16) {
      half.resize(values.size());
      for (size_t i = 0; i < values.size(); ++i) half[i] = float_to_bf16(values[i]);
      LS_RETURN_IF_ERROR(writer.write(u.weight.name, elem_offset * 2, half.data(),
                                      half.size() * 2));
    } else {
      Fp8BlockMatrix q = quantize_fp8_blocks(values.data(), n, cols);
      LS_RETURN_IF_ERROR(writer.write(u.weight.name, elem_offset, q.data.data(), q.data.size()));
      const uint64_t scale_offset = uint64_t(r0 / 128) * uint64_t(u.scale.shape[1]) * 4;
      LS_RETURN_IF_ERROR(writer.write(u.scale.name, scale_offset, q.scale_inv.data(),
                                      q.scale_inv.size() * 4));
    }
  }
  return ok_status();
}

// Shards are cut by size at about half the total (at most 2 GiB), so there are always at
// least two and a layer can straddle a boundary, as in published checkpoints.
std::vector<std::vector<Unit>> assign_shards(std::vector<Unit> units) {
  uint64_t total = 0;
  for (const Unit& u : units) total += u.nbytes();
  const uint64_t target = std::min<uint64_t>((total + 1) / 2, uint64_t(2) << 30);
  std::vector<std::vector<Unit>> shards(1);
  uint64_t current = 0;
  for (Unit& u : units) {
    if (current > 0 && current + u.nbytes() > target) {
      shards.emplace_back();
      current = 0;
    }
    current += u.nbytes();
    shards.back().push_back(std::move(u));
  }
  return shards;
}

int alignment_rank(DType d) { return d == DType::F32 ? 0 : d == DType::BF16 ? 1 : 2; }

Status write_shard(const std::string& path, const std::vector<Unit>& units, uint64_t seed) {
  std::vector<TensorSpec> specs;
  for (const Unit& u : units) {
    specs.push_back(u.weight);
    if (u.quantized) specs.push_back(u.scale);
  }
  // Wider types first keeps every tensor aligned to its element size in the file.
  std::stable_sort(specs.begin(), specs.end(), [](const TensorSpec& a, const TensorSpec& b) {
    return alignment_rank(a.dtype) < alignment_rank(b.dtype);
  });
  LS_ASSIGN_OR_RETURN(SafetensorsWriter writer, SafetensorsWriter::create(path, specs));
  for (const Unit& u : units) LS_RETURN_IF_ERROR(write_unit(writer, u, seed));
  return writer.finish();
}

Status write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return make_error(path + ": write failed");
  return ok_status();
}

Status copy_tokenizer(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::error_code ec;
    fs::copy_file(fs::path(from) / name, fs::path(to) / name,
                  fs::copy_options::overwrite_existing, ec);
    if (ec) return make_error(from + "/" + name + ": cannot copy (" + ec.message() + ")");
  }
  return ok_status();
}

}  // namespace

Status make_model(const MakeModelOptions& options) {
  if (options.out_dir.empty()) return make_error("make_model: no output folder given");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    std::error_code exists_ec;
    if (!options.tokenizer_dir.empty() &&
        !fs::is_regular_file(fs::path(options.tokenizer_dir) / name, exists_ec)) {
      return make_error(options.tokenizer_dir + "/" + name + ": not found");
    }
  }
  LS_ASSIGN_OR_RETURN(std::string config_text,
                      make_model_config_json(options.preset, options.fp8, options.num_layers));
  LS_ASSIGN_OR_RETURN(ModelConfig config, parse_model_config(config_text, options.preset));
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) return make_error(options.out_dir + ": cannot create (" + ec.message() + ")");

  deepseek_v3::DeepseekV3Weights layout;
  std::vector<Unit> units;
  for (const auto& b : deepseek_v3::build_weight_table(config, layout)) {
    units.push_back(plan_unit(b, options.fp8));
  }
  const auto shards = assign_shards(std::move(units));
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    LS_RETURN_IF_ERROR(write_shard((fs::path(options.out_dir) / name).string(), shards[s],
                                   options.seed));
    for (const Unit& u : shards[s]) {
      weight_map[u.weight.name] = name;
      if (u.quantized) weight_map[u.scale.name] = name;
      total += u.nbytes();
    }
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  LS_RETURN_IF_ERROR(write_text((fs::path(options.out_dir) / "model.safetensors.index.json").string(),
                                index.dump(2) + "\n"));
  LS_RETURN_IF_ERROR(write_text((fs::path(options.out_dir) / "config.json").string(), config_text));
  if (!options.tokenizer_dir.empty()) {
    LS_RETURN_IF_ERROR(copy_tokenizer(options.tokenizer_dir, options.out_dir));
  }
  return ok_status();
}

}  // namespace latentserve::models
