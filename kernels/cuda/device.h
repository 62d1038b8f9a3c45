// CUDA device discovery and error checking shared by every CUDA kernel, launcher and test.
// CUDA failures become a Status whose message names the call, the CUDA error and file:line.
#pragma once

#include <cuda_runtime_api.h>

#include "common/result.h"

namespace latentserve::kernels::cuda {

// Number of usable CUDA devices; 0 (never an error) when there is no driver or no GPU.
int device_count();

// OK for cudaSuccess, else an error "<what> failed at <file>:<line>: <name>: <description>".
Status cuda_status(cudaError_t err, const char* what, const char* file, int line);

}  // namespace latentserve::kernels::cuda

// Evaluates a CUDA runtime call and yields its Status.
#define LS_CUDA_CHECK(expr) \
  ::latentserve::kernels::cuda::cuda_status((expr), #expr, __FILE__, __LINE__)

// Returns the Status of a failed CUDA runtime call from the enclosing function.
#define LS_CUDA_RETURN_IF_ERROR(expr) LS_RETURN_IF_ERROR(LS_CUDA_CHECK(expr))
