// The one declarative table from Hugging Face checkpoint tensor names to DeepseekV3Weights fields,
// with each tensor's expected shape and how it splits under tensor or expert parallelism.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::models::deepseek_v3 {

struct WeightBinding {
  std::string name;            // checkpoint tensor name, e.g. "model.layers.3.mlp.gate.weight"
  std::vector<int64_t> shape;  // [rows, cols] for matrices, [n] for vectors
  WeightMatrix* matrix = nullptr;       // exactly one of matrix / vector is set
  std::vector<float>* vector = nullptr;
  bool required = true;   // false only for e_score_correction_bias outside noaux_tc routing
  int64_t mtp_layer = -1; // >= 0: part of MTP layer i (all of them present, or none)
  int shard_dim = -1;     // tensor parallelism: 0 split rows, 1 split columns, -1 replicated
  int64_t expert = -1;    // routed expert index (expert parallelism), -1 otherwise
};

// Sizes `weights` for `config` (layers, dense/MoE parts, experts, MTP layers) and returns one
// binding per tensor the config calls for. The bindings point into `weights`, which must not be
// resized while they are in use.
std::vector<WeightBinding> build_weight_table(const ModelConfig& config,
                                              DeepseekV3Weights& weights);

}  // namespace latentserve::models::deepseek_v3
