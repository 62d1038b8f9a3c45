// The per-head matrices of MLA's absorbed form, taken from kv_b_proj: W_UK transposed (queries
// into latent space) and W_UV (latent attention output back to value heads).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace latentserve::models::deepseek_v3 {

// kv_b_proj's rows per head are [k_nope (nope rows) | v (v rows)], each over the latent (lora
// columns). W_UV is a row range of it and is read in place; W_UK needs a transposed copy, kept in
// kv_b_proj's dtype so it is exact and no larger than the original. FP8 stays FP8 when every
// head's ranges start on a scale-block boundary (their blocks then transpose whole); otherwise
// both are dequantized to F32 once.
class AbsorbedWeights {
 public:
  AbsorbedWeights(const kernels::cpu::WeightMatrix& kv_b_proj, int64_t heads, int64_t nope, int64_t v);

  kernels::cpu::WeightMatrix uk_t(int64_t head) const;  // [lora, nope]
  kernels::cpu::WeightMatrix uv(int64_t head) const;    // [v, lora]
  kernels::cpu::WeightMatrix kv_b() const;              // all heads, for the naive form

 private:
  // Views are built on each call from these (never stored), so copies and moves stay valid.
  kernels::cpu::WeightMatrix source_;  // kv_b_proj as loaded
  std::vector<float> kv_b_f32_;        // its F32 copy, when FP8 could not stay FP8
  std::vector<uint8_t> uk_t_bytes_;    // heads × [lora, nope] in the dtype of kv_b()
  std::vector<float> uk_t_scales_;     // FP8: per head, [lora blocks, nope blocks]
  int64_t nope_, v_;
};

}  // namespace latentserve::models::deepseek_v3
