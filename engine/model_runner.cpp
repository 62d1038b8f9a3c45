#include "engine/model_runner.h"

#include <algorithm>
#include <utility>

namespace latentserve::engine {

Result<std::unique_ptr<ModelRunner>> ModelRunner::create(
    const models::deepseek_v3::Model& model, std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
    bool keep_hidden) {
  if (executor == nullptr) return make_error("model runner: no executor given");
  if (!executor->claim()) {
    return make_error("model runner: the executor (" + executor->description() +
                      ") is in use by another engine; destroy that engine first");
  }
  return std::unique_ptr<ModelRunner>(new ModelRunner(model, std::move(executor), keep_hidden));
}

ModelRunner::ModelRunner(const models::deepseek_v3::Model& model,
                         std::shared_ptr<models::deepseek_v3::ModelExecutor> executor, bool keep_hidden)
    : model_(model), executor_(std::move(executor)), keep_hidden_(keep_hidden) {
  if (keep_hidden_) {
    block_last_hidden_.assign(size_t(executor_->num_blocks() * model_.config().hidden_size), 0.0f);
  }
}

ModelRunner::~ModelRunner() { executor_->release(); }

models::Batch ModelRunner::build_batch(const SchedulePlan& plan,
                                       std::vector<int32_t>& row_of_item) const {
  models::Batch batch;
  row_of_item.assign(plan.items.size(), -1);
  std::vector<int32_t> tokens;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const Sequence& seq = *plan.items[i].seq;
    const int64_t start = seq.num_computed_tokens;
    const int64_t drafts = plan.items[i].num_draft_tokens;
    const int64_t n = plan.items[i].num_new_tokens - drafts;  // tokens already in seq.tokens
    tokens.assign(seq.tokens.begin() + start, seq.tokens.begin() + start + n);
    tokens.insert(tokens.end(), seq.draft.drafts.begin(), seq.draft.drafts.begin() + drafts);
    // Logits only when this step computes the sequence's last token (so it samples next), and
    // for every draft (each is verified against the row before it).
    const bool samples = start + n == seq.num_tokens();
    if (samples) row_of_item[i] = int32_t(batch.logit_rows.size());
    models::append_sequence(batch, tokens, int32_t(start), seq.blocks.block_table,
                            executor_->block_size(), false);
    if (samples) {
      const int32_t last = int32_t(batch.token_ids.size()) - 1;
      for (int32_t r = last - int32_t(drafts); r <= last; ++r) batch.logit_rows.push_back(r);
    }
  }
  return batch;
}

Result<StepLogits> ModelRunner::run(const SchedulePlan& plan) {
  StepLogits out;
  const models::Batch batch = build_batch(plan, out.row_of_item);
  LS_ASSIGN_OR_RETURN(auto forward, executor_->forward(batch));
  out.logits = std::move(forward.logits);
  if (keep_hidden_) {
    const int64_t H = model_.config().hidden_size;
    const int64_t bs = executor_->block_size();
    for (const models::BatchSequence& s : batch.sequences) {
      out.query_start.push_back(s.query_start);
      for (int32_t i = 0; i < s.query_len; ++i) {
        const int64_t pos = s.context_len - s.query_len + i;
        if ((pos + 1) % bs != 0) continue;
        const float* src = &forward.hidden[size_t((s.query_start + i) * H)];
        std::copy(src, src + H, &block_last_hidden_[size_t(s.block_table[size_t(pos / bs)] * H)]);
      }
    }
    out.hidden = std::move(forward.hidden);
  }
  return out;
}

Result<models::deepseek_v3::MtpForwardOutput> ModelRunner::run_mtp(
    const models::Batch& batch, const std::vector<float>& hidden) {
  return executor_->mtp_forward(batch, hidden, 0);
}

const float* ModelRunner::block_last_hidden(int32_t block) const {
  return &block_last_hidden_[size_t(int64_t(block) * model_.config().hidden_size)];
}

}  // namespace latentserve::engine
