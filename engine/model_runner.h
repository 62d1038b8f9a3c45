// ModelRunner: turns a SchedulePlan into a models::Batch, owns the latent cache memory, runs the
// forward pass and hands back one logits row per sequence that samples this step.
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "engine/scheduler.h"
#include "models/deepseek_v3/model.h"
#include "models/latent_cache.h"

namespace latentserve::engine {

struct StepLogits {
  std::vector<float> logits;            // [rows, vocab]
  std::vector<int32_t> row_of_item;     // per plan item: its logits row, or -1 (mid-prefill)
};

class ModelRunner {
 public:
  ModelRunner(const models::deepseek_v3::Model& model, models::LatentCacheStorage cache);

  const models::deepseek_v3::Model& model() const { return model_; }
  const models::LatentCacheStorage& cache() const { return cache_; }

  // The batch a plan describes (exposed for tests).
  models::Batch build_batch(const SchedulePlan& plan, std::vector<int32_t>& row_of_item) const;
  Result<StepLogits> run(const SchedulePlan& plan);

 private:
  const models::deepseek_v3::Model& model_;
  models::LatentCacheStorage cache_;
};

}  // namespace latentserve::engine
