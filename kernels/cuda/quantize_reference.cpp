// Plain CPU versions of the FP8 quantization and scale layout helpers (host code only).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/quantize.h"

namespace latentserve::kernels::cuda {

void quantize_fp8_per_token_group_reference(const float* x, int64_t ldx, int64_t rows, int64_t cols,
                                            uint8_t* q, int64_t ldq, float* scales,
                                            int64_t scale_ld) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c0 = 0; c0 < cols; c0 += kFp8Group) {
      const int64_t c1 = std::min(cols, c0 + kFp8Group);
      float amax = 0.0f;
      for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[r * ldx + c]));
      const float s = amax > 0.0f ? amax / kFp8E4M3Max : 1.0f;
      for (int64_t c = c0; c < c1; ++c) q[r * ldq + c] = float_to_fp8_e4m3(x[r * ldx + c] / s);
      scales[(c0 / kFp8Group) * scale_ld + r] = s;
    }
  }
}

std::vector<float> pack_weight_scales(const float* scale_inv, int64_t rows, int64_t cols) {
  const int64_t block_rows = ceil_div(rows, kFp8Group), block_cols = ceil_div(cols, kFp8Group);
  const int64_t ld = weight_scale_ld(cols);
  std::vector<float> packed(size_t(block_rows * ld), 0.0f);
  for (int64_t i = 0; i < block_rows; ++i) {
    std::copy(scale_inv + i * block_cols, scale_inv + (i + 1) * block_cols,
              packed.begin() + i * ld);
  }
  return packed;
}

}  // namespace latentserve::kernels::cuda
