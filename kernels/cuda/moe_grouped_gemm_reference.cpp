// The plain CPU twin of moe_grouped_gemm (host code only): every product widened to float and
// summed in double, one expert row at a time.
#include <cmath>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/moe_grouped_gemm.h"
#include "kernels/cuda/moe_layer.h"
#include "kernels/cuda/quantize.h"

namespace latentserve::kernels::cuda {
namespace {

// Row `row` of expert matrix w ([n, k]) as floats, FP8 values times their block scale.
void weight_row(DType dtype, const void* w, const float* scales, int64_t k, int64_t row,
                std::vector<float>& out) {
  out.resize(size_t(k));
  if (dtype == DType::BF16) {
    const uint16_t* r = static_cast<const uint16_t*>(w) + row * k;
    for (int64_t c = 0; c < k; ++c) out[size_t(c)] = bf16_to_float(r[c]);
    return;
  }
  const uint8_t* r = static_cast<const uint8_t*>(w) + row * k;
  const float* s = scales + (row / kFp8Group) * weight_scale_ld(k);
  for (int64_t c = 0; c < k; ++c) out[size_t(c)] = fp8_e4m3_to_float(r[c]) * s[c / kFp8Group];
}

double dot(const std::vector<float>& w, const uint16_t* x) {
  double sum = 0.0;
  for (size_t c = 0; c < w.size(); ++c) sum += double(w[c]) * double(bf16_to_float(x[c]));
  return sum;
}

}  // namespace

void moe_grouped_gemm_reference(const MoeGroupedGemmParams& p, const MoeExpertWeights* experts,
                                const int32_t* offsets, const uint16_t* a, const int32_t* a_rows,
                                float* y) {
  const bool down = p.weight == MoeGemmWeight::kDown;
  const bool silu = p.epilogue == MoeGemmEpilogue::kSiluMul;
  const int64_t out_cols = silu ? p.n / 2 : p.n;
  std::vector<float> w, u;
  for (int64_t e = 0; e < p.num_experts; ++e) {
    const MoeExpertWeights& ew = experts[e];
    const void* m = down ? ew.down : ew.gate_up;
    const float* scales = down ? ew.down_scales : ew.gate_up_scales;
    for (int64_t j = 0; j < out_cols; ++j) {
      weight_row(p.w_dtype, m, scales, p.k, j, w);
      if (silu) weight_row(p.w_dtype, m, scales, p.k, out_cols + j, u);
      for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
        const uint16_t* x = a + int64_t(a_rows ? a_rows[r] : r) * p.lda;
        double v = dot(w, x);
        if (silu) {
          const double g = v;
          v = g / (1.0 + std::exp(-g)) * dot(u, x);
        }
        y[r * p.ldy + j] = float(v);
      }
    }
  }
}

}  // namespace latentserve::kernels::cuda
