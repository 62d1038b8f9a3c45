// cuBLASLt status text and layout creation.
#include "kernels/cuda/cublaslt.h"

#include <string>

namespace latentserve::kernels::cuda {

Status cublas_status(cublasStatus_t st, const char* what, const char* file, int line) {
  if (st == CUBLAS_STATUS_SUCCESS) return ok_status();
  return make_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                    cublasLtGetStatusName(st) + ": " + cublasLtGetStatusString(st));
}

int pointer_alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % uintptr_t(al) != 0) al /= 2;
  return al;
}

Result<LtLayout> make_layout(cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld) {
  LtLayout layout;
  LS_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(layout.out(), type, rows, cols, ld));
  return layout;
}

}  // namespace latentserve::kernels::cuda
