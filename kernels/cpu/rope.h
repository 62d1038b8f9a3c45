// Rotary position embedding as DeepSeek-V3 applies it: interleaved pairs (x[2i], x[2i+1]),
// with plain or YaRN-scaled frequencies computed exactly as the reference / Hugging Face do.
#pragma once

#include <cstdint>
#include <vector>

namespace latentserve::kernels::cpu {

struct YarnScaling {
  double factor = 1.0;
  double original_max_position_embeddings = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;
  double mscale_all_dim = 0.0;
};

struct RopeParams {
  int64_t rotary_dim = 0;  // qk_rope_head_dim (even)
  double theta = 10000.0;
  bool yarn = false;  // YaRN on (Hugging Face reading: always on when rope_scaling.type is yarn)
  YarnScaling scaling;
};

// inv_freq[i], i < rotary_dim / 2, in float32 as the reference computes them.
std::vector<float> rope_inv_freq(const RopeParams& p);

// Multiplier applied to the attention softmax scale: mscale² with mscale = 0.1·mscale_all_dim·ln(factor)+1
// under YaRN (when mscale_all_dim is set), else 1.
double rope_softmax_scale_factor(const RopeParams& p);

// Multiplier applied to cos and sin (Hugging Face's yarn `_mscale`:
// get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)); 1 without YaRN.
double rope_cos_sin_factor(const RopeParams& p);

// Rotates in place, for each row r and head h, the pairs of
//   x[r*ld + h*head_stride + 2i], x[r*ld + h*head_stride + 2i + 1],  i < rotary_dim/2
// by angle float(positions[r]) * inv_freq[i] (angle computed in float32), scaled by cos_sin_factor.
void rope_interleaved(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t head_stride,
                      int64_t rotary_dim, const int32_t* positions, const float* inv_freq,
                      float cos_sin_factor);
void rope_interleaved_reference(float* x, int64_t rows, int64_t ld, int64_t heads,
                                int64_t head_stride, int64_t rotary_dim, const int32_t* positions,
                                const float* inv_freq, float cos_sin_factor);

}  // namespace latentserve::kernels::cpu
