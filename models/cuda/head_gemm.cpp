// The per-head GEMM as one cublasGemmStridedBatchedEx call. cuBLAS is column-major, so the
// row-major product y = x · W is computed as yᵀ = Wᵀ · xᵀ: a row-major [k, n] W is a column-major
// [n, k] matrix with leading dimension ldw (no transpose), a row-major [n, k] one needs OP_T.
#include "models/cuda/head_gemm.h"

#include <string>

namespace latentserve::models::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(8) << 20;

Status cublas_ok(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return ok_status();
  return make_error(std::string(what) + " failed: " + cublasGetStatusName(st) + ": " +
                    cublasGetStatusString(st));
}

}  // namespace

void per_head_gemm_reference(const PerHeadGemmParams& p, const float* x, const float* w, float* y) {
  for (int64_t t = 0; t < p.tokens; ++t) {
    for (int64_t h = 0; h < p.heads; ++h) {
      const float* xr = x + t * p.ldx + h * p.x_head_stride;
      const float* wh = w + h * p.w_head_stride;
      float* yr = y + t * p.ldy + h * p.y_head_stride;
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0.0;
        for (int64_t i = 0; i < p.k; ++i) {
          const float wv = p.transpose_w ? wh[j * p.ldw + i] : wh[i * p.ldw + j];
          sum += double(xr[i]) * double(wv);
        }
        yr[j] = float(sum);
      }
    }
  }
}

Result<std::unique_ptr<PerHeadGemm>> PerHeadGemm::create() {
  std::unique_ptr<PerHeadGemm> g(new PerHeadGemm());
  LS_RETURN_IF_ERROR(cublas_ok(cublasCreate(&g->handle_), "cublasCreate"));
  LS_ASSIGN_OR_RETURN(g->workspace_, kernels::cuda::DeviceBuffer::allocate(kWorkspaceBytes, "cuBLAS workspace"));
  return g;
}

PerHeadGemm::~PerHeadGemm() {
  if (handle_ != nullptr) cublasDestroy(handle_);
}

Status PerHeadGemm::run(const PerHeadGemmParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.heads <= 0 || p.k <= 0 || p.n <= 0) {
    return make_error("per_head_gemm: bad sizes (tokens " + std::to_string(p.tokens) + ", heads " +
                      std::to_string(p.heads) + ", k " + std::to_string(p.k) + ", n " +
                      std::to_string(p.n) + ")");
  }
  if (p.tokens == 0) return ok_status();
  const int64_t w_rows = p.transpose_w ? p.k : p.n;  // the leading dimension must cover these
  if (p.ldw < w_rows || p.ldx < p.k || p.ldy < p.n) {
    return make_error("per_head_gemm: leading dimensions (W " + std::to_string(p.ldw) + ", x " +
                      std::to_string(p.ldx) + ", y " + std::to_string(p.ldy) + ") below (" +
                      std::to_string(w_rows) + ", " + std::to_string(p.k) + ", " +
                      std::to_string(p.n) + ")");
  }
  constexpr int64_t kIntMax = 0x7fffffff;
  for (int64_t v : {p.tokens, p.heads, p.k, p.n, p.ldw, p.ldx, p.ldy}) {
    if (v > kIntMax) return make_error("per_head_gemm: a size exceeds cuBLAS's int range");
  }
  if (p.x == nullptr || p.w == nullptr || p.y == nullptr) return make_error("per_head_gemm: null pointer");
  LS_RETURN_IF_ERROR(cublas_ok(cublasSetStream(handle_, stream), "cublasSetStream"));
  // Set after every cublasSetStream, which resets the handle to cuBLAS's own workspace pool.
  LS_RETURN_IF_ERROR(cublas_ok(cublasSetWorkspace(handle_, workspace_.data(), workspace_.size()),
                               "cublasSetWorkspace"));
  const float alpha = 1.0f, beta = 0.0f;
  return cublas_ok(
      cublasGemmStridedBatchedEx(handle_, p.transpose_w ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                                 int(p.n), int(p.tokens), int(p.k), &alpha, p.w, CUDA_R_16BF,
                                 int(p.ldw), p.w_head_stride, p.x, CUDA_R_16BF, int(p.ldx),
                                 p.x_head_stride, &beta, p.y, CUDA_R_16BF, int(p.ldy),
                                 p.y_head_stride, int(p.heads), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT),
      "cublasGemmStridedBatchedEx (per-head GEMM)");
}

}  // namespace latentserve::models::cuda
