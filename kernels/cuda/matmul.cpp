// cuBLASLt GEMMs for y = x · Wᵀ. Row-major y[m, n] is column-major yᵀ[n, m], so every product is
// issued as D[n, m] = op(A)·B with A = W (k × n column-major, transposed: the "TN" form FP8 tensor
// cores require), B = x (k × m column-major) and D = y. Plans (descriptors, layouts and the
// heuristic's algorithm) are built once per key and reused.
#include "kernels/cuda/matmul.h"

#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {
namespace {

Result<cudaDataType_t> output_type(DType t, const char* where) {
  if (t == DType::BF16) return CUDA_R_16BF;
  if (t == DType::F32) return CUDA_R_32F;
  return make_error(std::string(where) + ": y_dtype " + std::string(dtype_name(t)) +
                    " is not supported (BF16 or F32)");
}

std::string shape_text(int64_t m, int64_t n, int64_t k) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

Status check_shape(const char* where, int64_t m, int64_t n, int64_t k, int64_t ldx, int64_t ldy,
                   bool have_pointers) {
  if (m < 0 || n < 0 || k < 0) {
    return make_error(std::string(where) + ": negative shape " + shape_text(m, n, k));
  }
  if (ldx < k || ldy < n) {
    return make_error(std::string(where) + ": row strides ldx=" + std::to_string(ldx) +
                      " ldy=" + std::to_string(ldy) + " must be at least k and n (" +
                      shape_text(m, n, k) + ")");
  }
  if (m > 0 && n > 0 && !have_pointers) {
    return make_error(std::string(where) +
                      ": x, w, y (and FP8 scales) must be device pointers, got null");
  }
  return ok_status();
}

// k = 0: the product is all zeros, which cuBLASLt does not accept as a problem size.
Status zero_output(void* y, int64_t ldy, int64_t m, int64_t n, DType t, cudaStream_t stream) {
  const size_t es = dtype_size(t);
  return LS_CUDA_CHECK(
      cudaMemset2DAsync(y, size_t(ldy) * es, 0, size_t(n) * es, size_t(m), stream));
}

}  // namespace

const char* fp8_path_name(Fp8Path path) {
  return path == Fp8Path::kBlockScaled ? "fp8-block-scaled" : "bf16-dequantized";
}

Result<std::unique_ptr<MatmulContext>> MatmulContext::create(size_t workspace_bytes) {
  std::unique_ptr<MatmulContext> ctx(new MatmulContext());
  LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&ctx->device_));
  LS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&ctx->cc_major_, cudaDevAttrComputeCapabilityMajor, ctx->device_));
  LS_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&ctx->cc_minor_, cudaDevAttrComputeCapabilityMinor, ctx->device_));
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(ctx->handle_.out()));
  LS_ASSIGN_OR_RETURN(ctx->workspace_,
                      DeviceBuffer::allocate(workspace_bytes, "cuBLASLt workspace"));
  return ctx;
}

Status MatmulContext::check_device() const {
  int current = -1;
  LS_CUDA_RETURN_IF_ERROR(cudaGetDevice(&current));
  if (current != device_) {
    return make_error("cuda matmul: context belongs to device " + std::to_string(device_) +
                      " but device " + std::to_string(current) + " is current");
  }
  return ok_status();
}

Result<MatmulContext::Plan> MatmulContext::make_plan(const PlanKey& key, const void* a_scale,
                                                     const void* b_scale) {
  Plan plan;
  LS_CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulDescCreate(plan.desc.out(), CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_t = CUBLAS_OP_T, op_n = CUBLAS_OP_N;
  LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, op_t, "TRANSA"));
  LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, op_n, "TRANSB"));
  cudaDataType_t ab_type = CUDA_R_16BF;
  if (key.kind == kPlanFp8BlockScaled) {
    ab_type = CUDA_R_8F_E4M3;
    const int32_t a_mode = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    const int32_t b_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, a_mode,
                                          "A_SCALE_MODE=BLK128x128_32F"));
    LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, b_mode,
                                          "B_SCALE_MODE=VEC128_32F"));
    LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scale,
                                          "A_SCALE_POINTER"));
    LS_RETURN_IF_ERROR(set_desc_attribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scale,
                                          "B_SCALE_POINTER"));
  }
  LS_ASSIGN_OR_RETURN(plan.a, make_layout(ab_type, uint64_t(key.k), uint64_t(key.n), key.lda));
  LS_ASSIGN_OR_RETURN(plan.b, make_layout(ab_type, uint64_t(key.k), uint64_t(key.m), key.ldb));
  LS_ASSIGN_OR_RETURN(
      plan.d, make_layout(cudaDataType_t(key.d_type), uint64_t(key.n), uint64_t(key.m), key.ldd));

  LtPreference pref;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(pref.out()));
  const uint64_t ws = workspace_.size();
  const uint32_t al_a = uint32_t(key.align_a), al_b = uint32_t(key.align_b),
                 al_d = uint32_t(key.align_d);
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
      pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));

  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_.get(), plan.desc.get(), plan.a.get(), plan.b.get(),
                                     plan.d.get(), plan.d.get(), pref.get(), 1, &result, &returned);
  // Unsupported combinations come back as NOT_SUPPORTED, INVALID_VALUE or zero results depending
  // on the GPU and library version; all mean "no algorithm here", which the caller decides about.
  plan.supported =
      st == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS;
  if (plan.supported) plan.algo = result.algo;
  return plan;
}

Result<MatmulContext::Plan*> MatmulContext::plan(const PlanKey& key, const void* a_scale,
                                                 const void* b_scale) {
  auto it = plans_.find(key);
  if (it == plans_.end()) {
    LS_ASSIGN_OR_RETURN(Plan fresh, make_plan(key, a_scale, b_scale));
    it = plans_.emplace(key, std::move(fresh)).first;
  }
  return &it->second;
}

cublasStatus_t MatmulContext::launch(Plan& plan, const void* a, const void* b, void* d,
                                     cudaStream_t stream) {
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(handle_.get(), plan.desc.get(), &alpha, a, plan.a.get(), b, plan.b.get(),
                        &beta, d, plan.d.get(), d, plan.d.get(), &plan.algo, workspace_.data(),
                        workspace_.size(), stream);
}

Status MatmulContext::bf16(const MatmulBf16Params& p, cudaStream_t stream) {
  constexpr const char* where = "cuda matmul bf16";
  LS_RETURN_IF_ERROR(check_shape(where, p.m, p.n, p.k, p.ldx, p.ldy, p.x && p.w && p.y));
  LS_ASSIGN_OR_RETURN(const cudaDataType_t d_type, output_type(p.y_dtype, where));
  if (p.m == 0 || p.n == 0) return ok_status();
  if (p.k == 0) return zero_output(p.y, p.ldy, p.m, p.n, p.y_dtype, stream);
  LS_RETURN_IF_ERROR(check_device());
  const PlanKey key{kPlanBf16,
                    p.m,
                    p.n,
                    p.k,
                    p.k,
                    p.ldx,
                    p.ldy,
                    int(CUDA_R_16BF),
                    int(d_type),
                    pointer_alignment(p.w),
                    pointer_alignment(p.x),
                    pointer_alignment(p.y)};
  LS_ASSIGN_OR_RETURN(Plan* plan, this->plan(key));
  if (!plan->supported) {
    return make_error(std::string(where) + ": cuBLASLt offers no algorithm for " +
                      shape_text(p.m, p.n, p.k) + " ldx=" + std::to_string(p.ldx) + " ldy=" +
                      std::to_string(p.ldy) + " y_dtype=" + std::string(dtype_name(p.y_dtype)));
  }
  return LS_CUBLAS_CHECK(launch(*plan, p.w, p.x, p.y, stream));
}

}  // namespace latentserve::kernels::cuda
