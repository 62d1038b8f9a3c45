// ModelRunner: turns a SchedulePlan into a models::Batch, runs it on the ModelExecutor it holds
// (the model and its latent cache on one device) and hands back the logits rows of the sequences
// that sample this step (and, with speculative decoding, the hidden states the MTP module reads,
// and the MTP forward itself).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/result.h"
#include "engine/scheduler.h"
#include "models/deepseek_v3/executor.h"
#include "models/deepseek_v3/model.h"

namespace latentserve::engine {

struct StepLogits {
  std::vector<float> logits;            // [rows, vocab]
  // Per plan item: its first logits row, or -1 (mid-prefill). A decoding item with drafts has
  // num_draft_tokens + 1 consecutive rows (its last token's, then each draft's).
  std::vector<int32_t> row_of_item;
  std::vector<float> hidden;            // [batch tokens, hidden] final-norm output (speculation only)
  std::vector<int32_t> query_start;     // per plan item: its first batch row
};

class ModelRunner {
 public:
  // `model` (for its configuration) must outlive the runner; `executor` runs it and may be shared
  // with engines before or after this one, never at the same time: the runner claims it
  // (ModelExecutor::claim) and releases it when destroyed.
  // keep_hidden: return hidden states and remember each block's last hidden state (for MTP).
  // Errors: no executor, or one another runner holds.
  static Result<std::unique_ptr<ModelRunner>> create(
      const models::deepseek_v3::Model& model, std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
      bool keep_hidden = false);
  ~ModelRunner();
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  const models::deepseek_v3::Model& model() const { return model_; }
  const models::deepseek_v3::ModelExecutor& executor() const { return *executor_; }

  // The batch a plan describes (exposed for tests).
  models::Batch build_batch(const SchedulePlan& plan, std::vector<int32_t>& row_of_item) const;
  Result<StepLogits> run(const SchedulePlan& plan);

  // The MTP layer 0 over `batch` (see Model::mtp_forward).
  Result<models::deepseek_v3::MtpForwardOutput> run_mtp(const models::Batch& batch,
                                                        const std::vector<float>& hidden);
  // The main model's final-norm hidden state at the last position of `block`, as computed when
  // the block was last filled ([hidden]). Valid for blocks in the prefix cache: it is what the
  // MTP entry after a cached prefix needs.
  const float* block_last_hidden(int32_t block) const;

 private:
  ModelRunner(const models::deepseek_v3::Model& model,
              std::shared_ptr<models::deepseek_v3::ModelExecutor> executor, bool keep_hidden);

  const models::deepseek_v3::Model& model_;
  std::shared_ptr<models::deepseek_v3::ModelExecutor> executor_;  // claimed by this runner
  bool keep_hidden_ = false;
  std::vector<float> block_last_hidden_;  // [num_blocks, hidden] when keep_hidden
};

}  // namespace latentserve::engine
