// The DeepSeek-V3 forward pass on one NVIDIA GPU: weights uploaded from a loaded Model (BF16, or
// FP8 with block scales), a BF16 paged latent cache in device memory, kernels from kernels/cuda.
#pragma once

#include <memory>

#include "common/result.h"
#include "models/deepseek_v3/executor.h"

namespace latentserve::models::cuda {

// Uploads `model`'s weights to config.cuda_device and allocates the latent cache there. Fails with
// a message (never a crash) when there is no GPU or the memory does not suffice.
Result<std::unique_ptr<deepseek_v3::ModelExecutor>> make_cuda_executor(
    const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config);

}  // namespace latentserve::models::cuda
