// FP8 E4M3 quantization in DeepSeek-V3's scheme on the GPU: activations per token in 1×128 groups
// (scale = amax/448), weights in 128×128 blocks; plus the dequantization the non-FP8 fallback
// needs. Scales are stored in the layouts cuBLASLt's VEC128_32F / BLK128x128_32F modes read.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"

namespace latentserve::kernels::cuda {

inline constexpr int64_t kFp8Group = 128;     // activation group width and weight block edge
inline constexpr float kFp8E4M3Max = 448.0f;  // largest finite E4M3 value

constexpr int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
constexpr int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}

// Row stride (in floats) of activation scales for `rows` tokens: the token dimension is innermost
// and padded to a multiple of 4, as cuBLASLt's VEC128_32F mode expects.
constexpr int64_t activation_scale_ld(int64_t rows) {
  return round_up(rows, 4);
}

// Row stride (in floats) of weight block scales for `cols` input features: ceil(cols/128) blocks
// padded to a multiple of 4, as cuBLASLt's BLK128x128_32F mode expects.
constexpr int64_t weight_scale_ld(int64_t cols) {
  return round_up(ceil_div(cols, kFp8Group), 4);
}

struct QuantizeParams {
  const void* x = nullptr;  // [rows, cols], row stride ldx elements; x_dtype F32 or BF16
  DType x_dtype = DType::BF16;
  int64_t ldx = 0;
  uint8_t* q = nullptr;  // [rows, cols] E4M3, row stride ldq bytes
  int64_t ldq = 0;
  float* scales = nullptr;  // [ceil(cols/128), scale_ld]: scales[g * scale_ld + row]
  int64_t scale_ld = 0;     // ≥ rows; entries past `rows` are left untouched
  int64_t rows = 0;
  int64_t cols = 0;  // the last group may be narrower than 128
};

// q = round_to_e4m3(x / s) with s = amax(group)/448 (s = 1 for an all-zero group), saturating.
// Enqueues on `stream`; checks parameters and the launch, not completion.
Status quantize_fp8_per_token_group(const QuantizeParams& p, cudaStream_t stream);

// The plain CPU twin of quantize_fp8_per_token_group for F32 input (same IEEE operations, so the
// codes and scales agree bit for bit with the GPU's on F32 input and on BF16 input widened to F32).
void quantize_fp8_per_token_group_reference(const float* x, int64_t ldx, int64_t rows, int64_t cols,
                                            uint8_t* q, int64_t ldq, float* scales,
                                            int64_t scale_ld);

// An FP8 E4M3 weight in PyTorch Linear layout with DeepSeek's 128×128 block scales.
struct Fp8BlockWeight {
  const uint8_t* data = nullptr;  // [rows, cols] E4M3, row-major, contiguous
  const float* scales = nullptr;  // [ceil(rows/128), weight_scale_ld(cols)]; real = fp8 · scale
  int64_t rows = 0;               // output features (N)
  int64_t cols = 0;               // input features (K)
};

// DeepSeek's weight_scale_inv [ceil(rows/128), ceil(cols/128)] rewritten with the padded row
// stride of Fp8BlockWeight::scales (padding entries are 0 and never read as a scale).
std::vector<float> pack_weight_scales(const float* scale_inv, int64_t rows, int64_t cols);

// out[r, c] = bf16(fp8(w[r, c]) · scale(r/128, c/128)); out is [rows, cols] BF16, contiguous.
Status dequantize_fp8_weight(const Fp8BlockWeight& w, void* out, cudaStream_t stream);

// out[r, c] = bf16(x[r, c]) (round to nearest even); x [rows, cols] F32 with row stride ldx, out
// [rows, cols] BF16 with row stride ldo.
Status convert_f32_to_bf16(const float* x, int64_t ldx, int64_t rows, int64_t cols, void* out,
                           int64_t ldo, cudaStream_t stream);

}  // namespace latentserve::kernels::cuda
