// Chooses where the model runs: the ModelExecutor for ExecutorConfig::device (the CPU, CUDA when
// this build has it, or auto: a GPU when one is present, else the CPU).
#pragma once

#include <memory>

#include "common/result.h"
#include "models/deepseek_v3/executor.h"

namespace latentserve::engine {

// True when this build carries the CUDA executor (nvcc was found at configure time).
bool built_with_cuda_executor();
// True when this build carries it and a usable GPU is present: what Device::kAuto picks.
bool cuda_device_present();

// Errors: kCuda in a build without CUDA or on a machine without a usable GPU, or what the chosen
// executor reports (cache sizing, memory). Never crashes for want of a GPU.
Result<std::unique_ptr<models::deepseek_v3::ModelExecutor>> make_executor(
    const models::deepseek_v3::Model& model, const models::deepseek_v3::ExecutorConfig& config);

}  // namespace latentserve::engine
