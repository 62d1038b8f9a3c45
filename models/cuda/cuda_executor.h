// The DeepSeek-V3 forward pass on one NVIDIA GPU: weights uploaded from a loaded Model (BF16, or
// FP8 with block scales), a BF16 paged latent cache in device memory, kernels from kernels/cuda.
#pragma once

#include <memory>

#include "common/result.h"
#include "models/cuda/decode_graph.h"
#include "models/cuda/device_weights.h"
#include "models/deepseek_v3/executor.h"

namespace latentserve::models::cuda {

// Uploads `model`'s weights to config.cuda_device and allocates the latent cache there. Fails with
// a message (never a crash) when there is no GPU or the memory does not suffice. Plain decode
// steps replay CUDA graphs unless the environment sets LATENTSERVE_CUDA_GRAPHS=0.
Result<std::unique_ptr<deepseek_v3::ModelExecutor>> make_cuda_executor(
    const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config);

// The same with explicit CUDA graph options (the environment is not read).
Result<std::unique_ptr<deepseek_v3::ModelExecutor>> make_cuda_executor(
    const deepseek_v3::Model& model, const deepseek_v3::ExecutorConfig& config,
    const DecodeGraphOptions& graphs);

// Benchmarks: an executor over `weights` already on config.cuda_device (e.g. random ones of a real
// model's shapes; weights.layers must match model_config, which must outlive the executor).
Result<std::unique_ptr<deepseek_v3::ModelExecutor>> make_cuda_executor_on_device_weights(
    const ModelConfig& model_config, DeviceWeights weights, const deepseek_v3::ExecutorConfig& config,
    const DecodeGraphOptions& graphs);

}  // namespace latentserve::models::cuda
