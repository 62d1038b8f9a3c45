// The FP8 product: activations are quantized per token in 1×128 groups, then cuBLASLt multiplies
// E4M3 × E4M3 with the weights' 128×128 block scales (BLK128x128_32F) and the activations' group
// scales (VEC128_32F) applied inside the kernel. Those modes take token counts that are multiples
// of 4, so the last m % 4 tokens are padded to 4 and multiplied into a small scratch. Where
// cuBLASLt offers no algorithm (GPUs other than Hopper, unaligned shapes), the weight is
// dequantized to BF16 and multiplied in BF16.
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/matmul.h"

namespace latentserve::kernels::cuda {
namespace {

// Quantized activations get a row stride that keeps every row 16-byte aligned for the tensor cores.
int64_t quantized_ld(int64_t k) {
  return round_up(k, 16);
}

// cuBLASLt's VEC128 / BLK128x128 scale modes need M and N (here: output features and tokens)
// to be multiples of 4.
constexpr int64_t kTokenMultiple = 4;

// Row stride (elements) of the scratch for a product's last m % 4 rows: 16-byte aligned rows.
int64_t tail_ld(int64_t n) {
  return round_up(n, 8);
}

Status check(const MatmulFp8Params& p) {
  const std::string where = "cuda matmul fp8: ";
  const int64_t m = p.m, n = p.w.rows, k = p.w.cols;
  if (m < 0 || n < 0 || k < 0) {
    return make_error(where + "negative shape m=" + std::to_string(m) + " n=" + std::to_string(n) +
                      " k=" + std::to_string(k));
  }
  if (p.ldx < k || p.ldy < n) {
    return make_error(where + "row strides ldx=" + std::to_string(p.ldx) +
                      " ldy=" + std::to_string(p.ldy) + " must be at least k=" + std::to_string(k) +
                      " and n=" + std::to_string(n));
  }
  if (p.x_dtype != DType::BF16 && p.x_dtype != DType::F32) {
    return make_error(where + "x_dtype " + std::string(dtype_name(p.x_dtype)) +
                      " is not supported (BF16 or F32)");
  }
  if (p.y_dtype != DType::BF16 && p.y_dtype != DType::F32) {
    return make_error(where + "y_dtype " + std::string(dtype_name(p.y_dtype)) +
                      " is not supported (BF16 or F32)");
  }
  if (m > 0 && n > 0 && (!p.x || !p.y || !p.w.data || !p.w.scales)) {
    return make_error(where + "x, y, w.data and w.scales must be device pointers, got null");
  }
  return ok_status();
}

}  // namespace

Status MatmulContext::reserve_fp8_scratch(int64_t max_m, int64_t max_n, int64_t max_k) {
  if (max_m < 0 || max_n < 0 || max_k < 0) {
    return make_error("cuda matmul: reserve_fp8_scratch with a negative size");
  }
  const int64_t rows = round_up(max_m, kTokenMultiple);
  LS_RETURN_IF_ERROR(act_q_.reserve(size_t(rows * quantized_ld(max_k)), "FP8 activations"));
  LS_RETURN_IF_ERROR(act_scales_.reserve(
      size_t(ceil_div(max_k, kFp8Group) * activation_scale_ld(max_m)) * sizeof(float),
      "FP8 activation scales"));
  LS_RETURN_IF_ERROR(
      tail_y_.reserve(size_t(kTokenMultiple * tail_ld(max_n)) * sizeof(float), "FP8 tail rows"));
  if (!device_has_fp8()) {
    LS_RETURN_IF_ERROR(w_bf16_.reserve(size_t(max_n * max_k) * 2, "dequantized BF16 weights"));
    LS_RETURN_IF_ERROR(x_bf16_.reserve(size_t(max_m * max_k) * 2, "BF16 activations"));
  }
  return ok_status();
}

Status MatmulContext::fp8(const MatmulFp8Params& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  const int64_t m = p.m, n = p.w.rows, k = p.w.cols;
  if (m == 0 || n == 0) return ok_status();
  if (k == 0) {
    const size_t es = dtype_size(p.y_dtype);
    return LS_CUDA_CHECK(
        cudaMemset2DAsync(p.y, size_t(p.ldy) * es, 0, size_t(n) * es, size_t(m), stream));
  }
  LS_RETURN_IF_ERROR(check_device());
  if (allow_block_scaled_ && device_has_fp8() && n % kTokenMultiple == 0) {
    // Sized on every call, tail scratch included: no later call of this shape grows anything.
    LS_RETURN_IF_ERROR(reserve_fp8_scratch(m, n, k));
    // The first m4 rows go straight to y; the last m % 4 are computed as 4 rows in tail_y_.
    const int64_t m4 = m / kTokenMultiple * kTokenMultiple, tail = m - m4;
    bool ran = true;
    if (m4 > 0) {
      LS_ASSIGN_OR_RETURN(ran, fp8_block_scaled(p, 0, m4, m4, p.y, p.ldy, stream));
    }
    if (ran && tail > 0) {
      LS_ASSIGN_OR_RETURN(
          ran, fp8_block_scaled(p, m4, tail, kTokenMultiple, tail_y_.data(), tail_ld(n), stream));
      if (ran) {
        const size_t es = dtype_size(p.y_dtype);
        LS_CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(
            static_cast<char*>(p.y) + size_t(m4 * p.ldy) * es, size_t(p.ldy) * es, tail_y_.data(),
            size_t(tail_ld(n)) * es, size_t(n) * es, size_t(tail), cudaMemcpyDeviceToDevice,
            stream));
      }
    }
    if (ran) {
      last_fp8_path_ = Fp8Path::kBlockScaled;
      return ok_status();
    }
  }
  LS_RETURN_IF_ERROR(fp8_dequantized(p, stream));
  last_fp8_path_ = Fp8Path::kDequantizedBf16;
  return ok_status();
}

Result<bool> MatmulContext::fp8_block_scaled(const MatmulFp8Params& p, int64_t row0, int64_t rows,
                                             int64_t padded, void* d, int64_t ldd,
                                             cudaStream_t stream) {
  const int64_t n = p.w.rows, k = p.w.cols, ldq = quantized_ld(k);
  // This part's codes start at its first row; its scales [ceil(k/128), padded] follow those of
  // the rows before it, so every part's scale tensor starts 16-byte aligned.
  uint8_t* q = act_q_.as<uint8_t>() + row0 * ldq;
  float* scales = act_scales_.as<float>() + ceil_div(k, kFp8Group) * row0;
  const int d_type = p.y_dtype == DType::BF16 ? int(CUDA_R_16BF) : int(CUDA_R_32F);
  const PlanKey key{kPlanFp8BlockScaled,
                    padded,
                    n,
                    k,
                    k,
                    ldq,
                    ldd,
                    int(CUDA_R_8F_E4M3),
                    d_type,
                    pointer_alignment(p.w.data),
                    pointer_alignment(q),
                    pointer_alignment(d)};
  LS_ASSIGN_OR_RETURN(Plan* plan, this->plan(key, p.w.scales, scales));
  if (!plan->supported) return false;
  QuantizeParams qp;
  qp.x = static_cast<const char*>(p.x) + size_t(row0 * p.ldx) * dtype_size(p.x_dtype);
  qp.x_dtype = p.x_dtype;
  qp.ldx = p.ldx;
  qp.q = q;
  qp.ldq = ldq;
  qp.scales = scales;
  qp.scale_ld = padded;  // columns past `rows` (padding) feed only output rows never read
  qp.rows = rows;
  qp.cols = k;
  LS_RETURN_IF_ERROR(quantize_fp8_per_token_group(qp, stream));
  // Scale pointers change with every weight and part (and when the scratch grows): set per call.
  const void* a_scale = p.w.scales;
  const void* b_scale = scales;
  LS_RETURN_IF_ERROR(set_desc_attribute(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scale,
                                        "A_SCALE_POINTER"));
  LS_RETURN_IF_ERROR(set_desc_attribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scale,
                                        "B_SCALE_POINTER"));
  const cublasStatus_t st = launch(*plan, p.w.data, q, d, stream);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
    plan->supported = false;  // offered by the heuristic, refused at launch: fall back from now on
    return false;
  }
  LS_RETURN_IF_ERROR(cublas_status(st, "cublasLtMatmul (FP8 block-scaled)", __FILE__, __LINE__));
  return true;
}

Status MatmulContext::fp8_dequantized(const MatmulFp8Params& p, cudaStream_t stream) {
  const int64_t m = p.m, n = p.w.rows, k = p.w.cols;
  LS_RETURN_IF_ERROR(w_bf16_.reserve(size_t(n * k) * 2, "dequantized BF16 weights"));
  LS_RETURN_IF_ERROR(dequantize_fp8_weight(p.w, w_bf16_.data(), stream));
  MatmulBf16Params b;
  b.x = p.x;
  b.ldx = p.ldx;
  if (p.x_dtype == DType::F32) {
    LS_RETURN_IF_ERROR(x_bf16_.reserve(size_t(m * k) * 2, "BF16 activations"));
    LS_RETURN_IF_ERROR(convert_f32_to_bf16(static_cast<const float*>(p.x), p.ldx, m, k,
                                           x_bf16_.data(), k, stream));
    b.x = x_bf16_.data();
    b.ldx = k;
  }
  b.w = w_bf16_.data();
  b.y = p.y;
  b.y_dtype = p.y_dtype;
  b.m = m;
  b.n = n;
  b.k = k;
  b.ldy = p.ldy;
  return bf16(b, stream);
}

}  // namespace latentserve::kernels::cuda
