// Writes a random-weight DeepSeek-V3 checkpoint in the real Hugging Face layout (config.json,
// sharded safetensors with an index, an MTP layer; BF16 or FP8 with 128x128 block scales), for
// tests and benchmarks that need a model of a given shape. Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace latentserve::models {

struct MakeModelOptions {
  std::string preset = "tiny";  // see make_model_presets()
  std::string out_dir;          // created if missing; files we write are overwritten
  uint64_t seed = 0;
  bool fp8 = false;  // attention, dense MLP and expert matrices as F8_E4M3 + weight_scale_inv
  std::string tokenizer_dir;  // copy tokenizer.json and tokenizer_config.json from here; "" skips
  // num_hidden_layers (dense ones included); 0 keeps the preset's. The MTP layer is extra. More
  // layers give a benchmark the real model's proportion of MTP module to main model.
  int64_t num_layers = 0;
};

// "tiny": 129,280-token vocabulary (the real tokenizer's), hidden 128, 3 layers, 16 experts.
// "lite": DeepSeek-V2-Lite's layer sizes in the V3 architecture, 4 layers (see num_layers), for benchmarks.
std::vector<std::string> make_model_presets();

// The config.json text a preset writes, with num_hidden_layers = num_layers when num_layers > 0.
Result<std::string> make_model_config_json(const std::string& preset, bool fp8,
                                           int64_t num_layers = 0);

// Weights: linear N(0, 1/in) (router and lm_head twice that deviation), norms 1 + N(0, 0.1^2),
// embeddings N(0, 1), router bias N(0, 0.08^2) in F32; the MTP layer's embed_tokens and
// shared_head.head are exact copies of the main embedding and lm_head, as in DeepSeek-V3.
Status make_model(const MakeModelOptions& options);

}  // namespace latentserve::models
