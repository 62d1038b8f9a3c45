#include "models/deepseek_v3/trace.h"

namespace latentserve::models::deepseek_v3 {

void ForwardTrace::record(const std::string& name, const float* data, int64_t rows, int64_t cols,
                          int64_t ld) {
  TracedTensor& t = tensors[name];
  t.rows = rows;
  t.cols = cols;
  t.values.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) t.values[size_t(r * cols + c)] = data[r * ld + c];
  }
}

}  // namespace latentserve::models::deepseek_v3
