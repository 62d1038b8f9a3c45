#include "engine/model_runner.h"

namespace latentserve::engine {

ModelRunner::ModelRunner(const models::deepseek_v3::Model& model, models::LatentCacheStorage cache)
    : model_(model), cache_(std::move(cache)) {}

models::Batch ModelRunner::build_batch(const SchedulePlan& plan,
                                       std::vector<int32_t>& row_of_item) const {
  models::Batch batch;
  row_of_item.assign(plan.items.size(), -1);
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const Sequence& seq = *plan.items[i].seq;
    const int64_t start = seq.num_computed_tokens;
    const int64_t n = plan.items[i].num_new_tokens;
    tokens.assign(seq.tokens.begin() + start, seq.tokens.begin() + start + n);
    // Logits only when this step computes the sequence's last token (so it samples next).
    const bool samples = start + n == seq.num_tokens();
    if (samples) row_of_item[i] = int32_t(batch.logit_rows.size());
    models::append_sequence(batch, tokens, int32_t(start), seq.blocks.block_table,
                            cache_.block_size(), samples);
  }
  return batch;
}

Result<StepLogits> ModelRunner::run(const SchedulePlan& plan) {
  StepLogits out;
  const models::Batch batch = build_batch(plan, out.row_of_item);
  LS_ASSIGN_OR_RETURN(auto forward, model_.forward(batch, cache_));
  out.logits = std::move(forward.logits);
  return out;
}

}  // namespace latentserve::engine
