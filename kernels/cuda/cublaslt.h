// cuBLASLt plumbing shared by the GEMM paths: status checking that yields a Status naming the call
// and location, and owning handles for the library handle and its descriptors.
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <utility>

#include "common/result.h"

namespace latentserve::kernels::cuda {

// OK for CUBLAS_STATUS_SUCCESS, else "<what> failed at <file>:<line>: <status name>: <text>".
Status cublas_status(cublasStatus_t st, const char* what, const char* file, int line);

}  // namespace latentserve::kernels::cuda

#define LS_CUBLAS_CHECK(expr) \
  ::latentserve::kernels::cuda::cublas_status((expr), #expr, __FILE__, __LINE__)
#define LS_CUBLAS_RETURN_IF_ERROR(expr) LS_RETURN_IF_ERROR(LS_CUBLAS_CHECK(expr))

namespace latentserve::kernels::cuda {

// One owning wrapper per cuBLASLt object kind; `Destroy` is its destroy function.
template <class Handle, cublasStatus_t (*Destroy)(Handle)>
class LtObject {
 public:
  LtObject() = default;
  ~LtObject() {
    if (h_ != nullptr) Destroy(h_);
  }
  LtObject(LtObject&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  LtObject& operator=(LtObject&& o) noexcept {
    if (this != &o) {
      if (h_ != nullptr) Destroy(h_);
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  LtObject(const LtObject&) = delete;
  LtObject& operator=(const LtObject&) = delete;

  Handle get() const { return h_; }
  Handle* out() { return &h_; }  // for the Create call; only on an empty object

 private:
  Handle h_ = nullptr;
};

using LtHandle = LtObject<cublasLtHandle_t, cublasLtDestroy>;
using LtMatmulDesc = LtObject<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using LtLayout = LtObject<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using LtPreference = LtObject<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

// Sets one attribute of a matmul descriptor, naming the attribute in the error.
template <class T>
Status set_desc_attribute(const LtMatmulDesc& d, cublasLtMatmulDescAttributes_t attr,
                          const T& value, const char* name) {
  const cublasStatus_t st = cublasLtMatmulDescSetAttribute(d.get(), attr, &value, sizeof(value));
  return cublas_status(st, name, __FILE__, __LINE__);
}

// Largest power of two ≤ 256 dividing the address: what cuBLASLt may assume about the pointer.
int pointer_alignment(const void* p);

// A column-major cuBLASLt layout of `rows` × `cols` with leading dimension `ld` elements.
Result<LtLayout> make_layout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);

}  // namespace latentserve::kernels::cuda
