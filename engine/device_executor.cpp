#include "engine/device_executor.h"

#ifdef LATENTSERVE_WITH_CUDA_EXECUTOR
#include "kernels/cuda/device.h"
#include "models/cuda/cuda_executor.h"
#endif

namespace latentserve::engine {

namespace ds = models::deepseek_v3;

bool built_with_cuda_executor() {
#ifdef LATENTSERVE_WITH_CUDA_EXECUTOR
  return true;
#else
  return false;
#endif
}

bool cuda_device_present() {
#ifdef LATENTSERVE_WITH_CUDA_EXECUTOR
  return kernels::cuda::device_count() > 0;
#else
  return false;
#endif
}

namespace {

Result<std::unique_ptr<ds::ModelExecutor>> make_cuda(const ds::Model& model, const ds::ExecutorConfig& config) {
#ifdef LATENTSERVE_WITH_CUDA_EXECUTOR
  if (!cuda_device_present()) {
    return make_error("device cuda: no usable CUDA device (no GPU, or no driver); use --device cpu");
  }
  return models::cuda::make_cuda_executor(model, config);
#else
  (void)model;
  (void)config;
  return make_error(
      "device cuda: this build has no CUDA support (built without nvcc, or without the CUDA "
      "executor); use --device cpu");
#endif
}

}  // namespace

Result<std::unique_ptr<ds::ModelExecutor>> make_executor(const ds::Model& model, const ds::ExecutorConfig& config) {
  switch (config.device) {
    case ds::Device::kCpu:
      return ds::make_cpu_executor(model, config);
    case ds::Device::kCuda:
      return make_cuda(model, config);
    case ds::Device::kAuto:
      // A GPU that is present but fails (memory, driver) is an error, not a silent fallback: the
      // user should know the server is not running where it could.
      return cuda_device_present() ? make_cuda(model, config) : ds::make_cpu_executor(model, config);
  }
  return make_error("make_executor: unknown device value " + std::to_string(int(config.device)));
}

}  // namespace latentserve::engine
