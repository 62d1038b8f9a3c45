// SiLU-gated product and row (log-)softmax. Large single rows (decode, sampling over the whole
// vocabulary) are split across threads inside the row; many rows are split by row.
#include "kernels/cpu/activation.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace latentserve::kernels::cpu {

namespace {

constexpr int64_t kParallelMinElements = 1 << 15;

inline float silu(float g) { return g / (1.0f + std::exp(-g)); }

// Max, then Σ exp(x - max), over one row; both reductions go parallel when asked.
struct RowStats {
  float max;
  float sum;
};

RowStats row_stats(const float* x, int64_t cols, bool parallel) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp parallel for simd reduction(max : m) if (parallel)
  for (int64_t j = 0; j < cols; ++j) m = std::max(m, x[j]);
  // A float sum over a 129k-entry vocabulary row drifts by ~1e-5; a double one does not.
  double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (parallel)
  for (int64_t j = 0; j < cols; ++j) s += double(std::exp(x[j] - m));
  return {m, float(s)};
}

void softmax_row(float* x, int64_t cols, bool parallel) {
  const RowStats st = row_stats(x, cols, parallel);
  const float inv = 1.0f / st.sum;
#pragma omp parallel for if (parallel)
  for (int64_t j = 0; j < cols; ++j) x[j] = std::exp(x[j] - st.max) * inv;
}

void log_softmax_row(float* x, int64_t cols, bool parallel) {
  const RowStats st = row_stats(x, cols, parallel);
  const float log_sum = std::log(st.sum);
#pragma omp parallel for simd if (parallel)
  for (int64_t j = 0; j < cols; ++j) x[j] = (x[j] - st.max) - log_sum;
}

template <class RowFn>
void for_each_row(float* x, int64_t rows, int64_t cols, int64_t ld, RowFn fn) {
  const bool big = rows * cols >= kParallelMinElements;
  if (big && rows < omp_get_max_threads()) {
    for (int64_t r = 0; r < rows; ++r) fn(x + r * ld, cols, true);
    return;
  }
#pragma omp parallel for schedule(static) if (big)
  for (int64_t r = 0; r < rows; ++r) fn(x + r * ld, cols, false);
}

}  // namespace

void silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows,
              int64_t width, float* out, int64_t ldo) {
  // Chunks of columns so that a single decode row still spreads over the threads.
  constexpr int64_t kChunk = 1024;
  const int64_t chunks = (width + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static) if (rows * width >= kParallelMinElements)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < chunks; ++c) {
      const float* g = gate + r * ldg;
      const float* u = up + r * ldu;
      float* o = out + r * ldo;
      const int64_t end = std::min(width, (c + 1) * kChunk);
      for (int64_t j = c * kChunk; j < end; ++j) o[j] = silu(g[j]) * u[j];
    }
  }
}

void silu_mul_reference(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t rows,
                        int64_t width, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < width; ++j) {
      const double g = gate[r * ldg + j];
      out[r * ldo + j] = float(g / (1.0 + std::exp(-g)) * double(up[r * ldu + j]));
    }
  }
}

void softmax_rows(float* x, int64_t rows, int64_t cols, int64_t ld) {
  for_each_row(x, rows, cols, ld, softmax_row);
}

void log_softmax_rows(float* x, int64_t rows, int64_t cols, int64_t ld) {
  for_each_row(x, rows, cols, ld, log_softmax_row);
}

void softmax_rows_reference(float* x, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * ld;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < cols; ++j) m = std::max(m, double(xr[j]));
    double s = 0.0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(double(xr[j]) - m);
    for (int64_t j = 0; j < cols; ++j) xr[j] = float(std::exp(double(xr[j]) - m) / s);
  }
}

}  // namespace latentserve::kernels::cpu
