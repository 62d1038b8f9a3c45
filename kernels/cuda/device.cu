// Device discovery that tolerates machines without a GPU, and CUDA error formatting.
#include "kernels/cuda/device.h"

#include <string>

namespace latentserve::kernels::cuda {

int device_count() {
  int count = 0;
  // No driver, no device, a driver too old for this runtime: all mean "no usable GPU" here.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  return count;
}

Status cuda_status(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return ok_status();
  return make_error(std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " +
                    cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

}  // namespace latentserve::kernels::cuda
