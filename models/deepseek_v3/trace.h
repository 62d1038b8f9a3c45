// ForwardTrace: named intermediate values of one forward pass ("layer.1.ffn_out", ...), recorded
// only when a caller asks, so a layer's values can be dumped and diffed against a reference.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace latentserve::models::deepseek_v3 {

struct TracedTensor {
  std::vector<float> values;  // [rows, cols]
  int64_t rows = 0;
  int64_t cols = 0;
};

struct ForwardTrace {
  std::map<std::string, TracedTensor> tensors;
  std::map<std::string, std::vector<int32_t>> indices;  // e.g. "layer.1.expert_ids" [tokens, top_k]

  void record(const std::string& name, const float* data, int64_t rows, int64_t cols, int64_t ld);
};

// Records only when `trace` is non-null; keeps model code free of if-statements.
inline void trace_tensor(ForwardTrace* trace, const std::string& name, const float* data,
                         int64_t rows, int64_t cols, int64_t ld) {
  if (trace) trace->record(name, data, rows, cols, ld);
}

}  // namespace latentserve::models::deepseek_v3
