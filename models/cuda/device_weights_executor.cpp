// The CUDA executor over weights already in device memory: benchmarks build DeepSeek-V3-sized
// random weights there directly, since a checkpoint of that size takes minutes to write and load.
#include "models/cuda/cuda_executor.h"
#include "models/cuda/executor_state.h"

namespace latentserve::models::cuda {

namespace dsv3 = deepseek_v3;

Result<std::unique_ptr<dsv3::ModelExecutor>> CudaExecutor::create(const ModelConfig& model_config,
                                                                  DeviceWeights weights,
                                                                  const dsv3::ExecutorConfig& config,
                                                                  const DecodeGraphOptions& graphs) {
  if (int64_t(weights.layers.size()) != model_config.num_hidden_layers) {
    return make_error("CUDA executor: " + std::to_string(weights.layers.size()) + " device layers for a config of " +
                      std::to_string(model_config.num_hidden_layers));
  }
  std::unique_ptr<CudaExecutor> e(new CudaExecutor());
  e->weights_ = std::move(weights);
  Status st = e->init(model_config, nullptr, config, graphs);
  if (!st.ok()) return st.error().with_context("CUDA executor");
  return std::unique_ptr<dsv3::ModelExecutor>(std::move(e));
}

Result<std::unique_ptr<dsv3::ModelExecutor>> make_cuda_executor_on_device_weights(
    const ModelConfig& model_config, DeviceWeights weights, const dsv3::ExecutorConfig& config,
    const DecodeGraphOptions& graphs) {
  return CudaExecutor::create(model_config, std::move(weights), config, graphs);
}

}  // namespace latentserve::models::cuda
