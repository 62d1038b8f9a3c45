// ModelExecutor: one loaded DeepSeek-V3 model and its paged latent cache on one device, the
// interface the engine's ModelRunner drives. CPU: cpu_executor.cpp; CUDA: models/cuda/.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "models/batch.h"
#include "models/deepseek_v3/model.h"

namespace latentserve::models::deepseek_v3 {

enum class Device { kCpu, kCuda, kAuto };

// "cpu", "cuda" or "auto"; anything else is an error naming the accepted values.
Result<Device> parse_device(const std::string& name);
const char* device_name(Device device);

struct ExecutorConfig {
  Device device = Device::kAuto;
  int64_t num_cache_layers = 0;           // main layers, plus the MTP layers when speculating
  int64_t block_size = 64;
  std::optional<int64_t> num_blocks;      // exact pool size; overrides cache_memory
  std::optional<int64_t> cache_memory;    // bytes for the pool; default: the device's own default
                                          // (CPU: a fifth of available memory, at most 8 GiB)
  int cuda_device = 0;                    // which GPU, for Device::kCuda
};

class ModelExecutor {
 public:
  virtual ~ModelExecutor() = default;

  // "cpu" or e.g. "cuda:0 (NVIDIA H200)": for logs and /metrics.
  virtual std::string description() const = 0;
  virtual int64_t num_blocks() const = 0;
  virtual int64_t block_size() const = 0;
  // Layers the latent cache holds: the main layers, plus the MTP layers when it was made for
  // speculation (what an engine that speculates needs).
  virtual int64_t num_cache_layers() const = 0;
  virtual int64_t cache_bytes() const = 0;  // the latent cache pool, all layers

  // Same contract as Model::forward / Model::mtp_forward; the outputs are on the host. An invalid
  // batch returns an error and leaves the cache untouched.
  virtual Result<ForwardOutput> forward(const Batch& batch) = 0;
  virtual Result<MtpForwardOutput> mtp_forward(const Batch& batch, const std::vector<float>& hidden,
                                               int64_t mtp_layer) = 0;

  // One engine at a time hands out an executor's cache blocks: several engines, one after
  // another, may reuse an executor (and its uploaded weights), never two at once. claim() is
  // false while a holder has not yet release()d it.
  bool claim() { return !claimed_.exchange(true); }
  void release() { claimed_.store(false); }

 private:
  std::atomic<bool> claimed_{false};
};

// The CPU executor: `model` (which must outlive it) over a LatentCacheStorage sized by `config`.
// Errors: num_cache_layers outside [main layers, main + MTP layers], a pool of no block, or memory
// that cannot be allocated. (engine/device_executor.h chooses between this and models/cuda's
// executor for ExecutorConfig::device.)
Result<std::unique_ptr<ModelExecutor>> make_cpu_executor(const Model& model, const ExecutorConfig& config);

}  // namespace latentserve::models::deepseek_v3
