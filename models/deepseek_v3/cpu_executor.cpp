// The CPU ModelExecutor: Model::forward over a LatentCacheStorage in host memory.
#include <algorithm>
#include <fstream>
#include <string>
#include <utility>

#include "models/deepseek_v3/executor.h"
#include "models/latent_cache.h"

namespace latentserve::models::deepseek_v3 {

namespace {

// A fifth of the memory the kernel reports available, at most 8 GiB: on the CPU the cache shares
// the machine with the weights and everything else.
int64_t default_cpu_cache_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return std::min<int64_t>(kib * 1024 / 5, int64_t(8) << 30);
  }
  return int64_t(1) << 30;
}

class CpuExecutor final : public ModelExecutor {
 public:
  CpuExecutor(const Model& model, LatentCacheStorage cache, int64_t cache_bytes)
      : model_(model), cache_(std::move(cache)), cache_bytes_(cache_bytes) {}

  std::string description() const override { return "cpu"; }
  int64_t num_blocks() const override { return cache_.num_blocks(); }
  int64_t block_size() const override { return cache_.block_size(); }
  int64_t num_cache_layers() const override { return cache_.num_layers(); }
  int64_t cache_bytes() const override { return cache_bytes_; }

  Result<ForwardOutput> forward(const Batch& batch) override { return model_.forward(batch, cache_); }
  Result<MtpForwardOutput> mtp_forward(const Batch& batch, const std::vector<float>& hidden,
                                       int64_t mtp_layer) override {
    return model_.mtp_forward(batch, hidden, cache_, mtp_layer);
  }

 private:
  const Model& model_;
  LatentCacheStorage cache_;
  int64_t cache_bytes_;
};

}  // namespace

Result<std::unique_ptr<ModelExecutor>> make_cpu_executor(const Model& model, const ExecutorConfig& config) {
  const int64_t layers = config.num_cache_layers;
  if (layers < model.num_cache_layers() || layers > model.num_cache_layers_with_mtp()) {
    return make_error("cpu executor: num_cache_layers must be between " +
                      std::to_string(model.num_cache_layers()) + " (the main layers) and " +
                      std::to_string(model.num_cache_layers_with_mtp()) + " (with the MTP layers), got " +
                      std::to_string(layers));
  }
  if (config.block_size < 1) {
    return make_error("cpu executor: block size must be at least 1, got " + std::to_string(config.block_size));
  }
  const int64_t per_block = LatentCacheStorage::bytes_per_block(model.config(), layers, config.block_size);
  const int64_t num_blocks =
      config.num_blocks ? *config.num_blocks : config.cache_memory.value_or(default_cpu_cache_bytes()) / per_block;
  if (num_blocks < 1) {
    return make_error("cpu executor: the latent cache would hold no block (one block takes " +
                      std::to_string(per_block) + " bytes)");
  }
  LS_ASSIGN_OR_RETURN(auto cache, LatentCacheStorage::allocate(model.config(), layers, num_blocks,
                                                               config.block_size));
  return std::unique_ptr<ModelExecutor>(new CpuExecutor(model, std::move(cache), num_blocks * per_block));
}

}  // namespace latentserve::models::deepseek_v3
