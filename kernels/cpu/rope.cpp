// RoPE frequencies (plain and YaRN) computed with the float32 operations, in the order, that
// Hugging Face's DeepseekV3YarnRotaryEmbedding uses, and the interleaved-pair rotation.
#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace latentserve::kernels::cpu {

namespace {

// yarn_get_mscale(scale, mscale)
double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// yarn_find_correction_dim: the dimension index whose wavelength fits num_rotations times
// into the original context.
double yarn_correction_dim(double num_rotations, double dim, double base, double max_pos) {
  return (dim * std::log(max_pos / (num_rotations * 2.0 * std::numbers::pi))) / (2.0 * std::log(base));
}

// base ** (arange(0, dim, 2, float32) / dim), every step rounded to float32 like torch.
float theta_power(double theta, int64_t i, int64_t dim) {
  const float exponent = float(2 * i) / float(dim);
  return std::pow(float(theta), exponent);
}

}  // namespace

std::vector<float> rope_inv_freq(const RopeParams& p) {
  const int64_t d = p.rotary_dim;
  const int64_t half = d / 2;
  std::vector<float> inv(size_t(std::max<int64_t>(half, 0)));
  if (!p.yarn) {
    for (int64_t i = 0; i < half; ++i) inv[size_t(i)] = 1.0f / theta_power(p.theta, i, d);
    return inv;
  }
  const YarnScaling& s = p.scaling;
  const double orig = s.original_max_position_embeddings;
  double low = std::floor(yarn_correction_dim(s.beta_fast, double(d), p.theta, orig));
  double high = std::ceil(yarn_correction_dim(s.beta_slow, double(d), p.theta, orig));
  low = std::max(low, 0.0);
  high = std::min(high, double(d - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  const float factor = float(s.factor);
  for (int64_t i = 0; i < half; ++i) {
    const float power = theta_power(p.theta, i, d);
    const float freq_extra = 1.0f / power;
    const float freq_inter = 1.0f / (factor * power);
    // torch: (arange(float32) - low) / (high - low) with python-float scalars, then clamp.
    const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
    const float mask = 1.0f - ramp;
    inv[size_t(i)] = freq_inter * (1.0f - mask) + freq_extra * mask;
  }
  return inv;
}

double rope_softmax_scale_factor(const RopeParams& p) {
  if (!p.yarn || p.scaling.mscale_all_dim == 0.0) return 1.0;
  const double m = yarn_mscale(p.scaling.factor, p.scaling.mscale_all_dim);
  return m * m;
}

double rope_cos_sin_factor(const RopeParams& p) {
  if (!p.yarn) return 1.0;
  return yarn_mscale(p.scaling.factor, p.scaling.mscale) /
         yarn_mscale(p.scaling.factor, p.scaling.mscale_all_dim);
}

void rope_interleaved(float* x, int64_t rows, int64_t ld, int64_t heads, int64_t head_stride,
                      int64_t rotary_dim, const int32_t* positions, const float* inv_freq,
                      float cos_sin_factor) {
  const int64_t half = rotary_dim / 2;
  // cos/sin depend only on the position: computed once per row, shared by all heads.
#pragma omp parallel if (rows * heads * half >= (1 << 14))
  {
    std::vector<float> cs(size_t(2 * half));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float pos = float(positions[r]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        cs[size_t(2 * i)] = std::cos(angle) * cos_sin_factor;
        cs[size_t(2 * i + 1)] = std::sin(angle) * cos_sin_factor;
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + r * ld + h * head_stride;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float c = cs[size_t(2 * i)], s = cs[size_t(2 * i + 1)];
          const float a = v[2 * i], b = v[2 * i + 1];
          v[2 * i] = a * c - b * s;
          v[2 * i + 1] = a * s + b * c;
        }
      }
    }
  }
}

void rope_interleaved_reference(float* x, int64_t rows, int64_t ld, int64_t heads,
                                int64_t head_stride, int64_t rotary_dim, const int32_t* positions,
                                const float* inv_freq, float cos_sin_factor) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + r * ld + h * head_stride;
      for (int64_t i = 0; i < rotary_dim / 2; ++i) {
        // The angle is rounded to float32 exactly as the reference's float32 outer product does;
        // the rotation itself is done in double as a complex multiply.
        const float angle = float(positions[r]) * inv_freq[i];
        const double c = std::cos(double(angle)) * double(cos_sin_factor);
        const double s = std::sin(double(angle)) * double(cos_sin_factor);
        const double a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = float(a * c - b * s);
        v[2 * i + 1] = float(a * s + b * c);
      }
    }
  }
}

}  // namespace latentserve::kernels::cpu
