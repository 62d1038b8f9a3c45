#include "models/deepseek_v3/absorbed.h"

#include <cstring>

namespace latentserve::models::deepseek_v3 {

namespace cpu = kernels::cpu;

namespace {

// A view of rows [first, first + count) of w (for FP8, `first` is a multiple of block_rows).
cpu::WeightMatrix row_range(const cpu::WeightMatrix& w, int64_t first, int64_t count) {
  cpu::WeightMatrix r = w;
  r.data = static_cast<const uint8_t*>(w.data) + size_t(first * w.cols) * dtype_size(w.dtype);
  r.rows = count;
  if (w.dtype == DType::F8_E4M3) r.scale_inv = w.scale_inv + (first / w.block_rows) * w.scale_cols();
  return r;
}

}  // namespace

AbsorbedWeights::AbsorbedWeights(const cpu::WeightMatrix& kv_b_proj, int64_t heads, int64_t nope, int64_t v)
    : source_(kv_b_proj), nope_(nope), v_(v) {
  const bool fp8 = kv_b_proj.dtype == DType::F8_E4M3;
  // Every head's k_nope and v rows must start on a block boundary for FP8 to stay FP8.
  const bool blocks_align = (heads == 1 || (nope + v) % kv_b_proj.block_rows == 0) && nope % kv_b_proj.block_rows == 0;
  if (fp8 && !blocks_align) {
    kv_b_f32_.resize(size_t(kv_b_proj.rows * kv_b_proj.cols));
    cpu::dequantize(kv_b_proj, kv_b_f32_.data());
  }
  const cpu::WeightMatrix kv = kv_b();
  const int64_t lora = kv.cols;
  const size_t elem = dtype_size(kv.dtype);
  uk_t_bytes_.resize(size_t(heads * lora * nope) * elem);
  const auto* src = static_cast<const uint8_t*>(kv.data);
  for (int64_t h = 0; h < heads; ++h) {
    const uint8_t* uk = src + size_t(h * (nope + v) * lora) * elem;  // [nope, lora]
    uint8_t* uk_t = uk_t_bytes_.data() + size_t(h * lora * nope) * elem;  // [lora, nope]
    for (int64_t d = 0; d < nope; ++d) {
      for (int64_t r = 0; r < lora; ++r) std::memcpy(uk_t + size_t(r * nope + d) * elem, uk + size_t(d * lora + r) * elem, elem);
    }
  }
  if (kv.dtype == DType::F8_E4M3) {
    // Block (i, j) of a head's [lora, nope] is block (j, i) of its [nope, lora] rows, transposed.
    const cpu::WeightMatrix head = uk_t(0);  // every head's grid has this shape
    const int64_t grid_rows = head.scale_rows(), grid_cols = head.scale_cols();
    uk_t_scales_.resize(size_t(heads * grid_rows * grid_cols));
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t first = h * (nope + v) / kv.block_rows;
      for (int64_t i = 0; i < grid_rows; ++i) {
        for (int64_t j = 0; j < grid_cols; ++j) {
          uk_t_scales_[size_t((h * grid_rows + i) * grid_cols + j)] = kv.scale_inv[(first + j) * kv.scale_cols() + i];
        }
      }
    }
  }
}

cpu::WeightMatrix AbsorbedWeights::kv_b() const {
  if (kv_b_f32_.empty()) return source_;
  return cpu::WeightMatrix{DType::F32, kv_b_f32_.data(), source_.rows, source_.cols};
}

cpu::WeightMatrix AbsorbedWeights::uk_t(int64_t head) const {
  const cpu::WeightMatrix kv = kv_b();
  const int64_t lora = kv.cols;
  cpu::WeightMatrix w;
  w.dtype = kv.dtype;
  w.data = uk_t_bytes_.data() + size_t(head * lora * nope_) * dtype_size(kv.dtype);
  w.rows = lora;
  w.cols = nope_;
  if (kv.dtype == DType::F8_E4M3) {
    w.block_rows = kv.block_cols;
    w.block_cols = kv.block_rows;
    w.scale_inv = uk_t_scales_.data() + head * w.scale_rows() * w.scale_cols();
  }
  return w;
}

cpu::WeightMatrix AbsorbedWeights::uv(int64_t head) const {
  return row_range(kv_b(), head * (nope_ + v_) + nope_, v_);
}

}  // namespace latentserve::models::deepseek_v3
