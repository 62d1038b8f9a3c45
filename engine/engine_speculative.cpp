// The speculative-decoding half of Engine::step (engine/README.md, "Speculative decoding"):
// verify, append, run the MTP over the newly verified positions, draft, commit, trim.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>

#include "engine/engine.h"
#include "engine/random.h"

namespace latentserve::engine {

namespace {

using Clock = std::chrono::steady_clock;

// One sequence's rows in an MTP batch.
struct MtpRows {
  Sequence* seq = nullptr;
  int32_t logit_row = -1;  // its row in the MTP logits, or -1 (no draft wanted)
  int64_t last_row = 0;    // its last batch row (the hidden state a chained step reads)
  int64_t wanted = 0;      // drafts to propose
};

}  // namespace

int64_t Engine::drafts_wanted(const Sequence& seq) const {
  if (seq.status != SequenceStatus::kRunning || seq.num_uncomputed() != 1) return 0;
  // Drafts past max_tokens could never be used; the last allowed token needs no draft.
  const int64_t remaining = seq.params().max_tokens - seq.num_output_tokens();
  return std::clamp<int64_t>(remaining - 1, 0, config_.speculative.num_speculative_tokens);
}

int32_t Engine::forced_draft(const Sequence& seq, int32_t draft) const {
  const SpeculativeConfig& spec = config_.speculative;
  if (spec.forced_acceptance < 0 || !spec.oracle || !(seq.params().temperature < kGreedyTemperature)) {
    return draft;
  }
  std::vector<int32_t> outputs(seq.tokens.begin() + seq.num_prompt_tokens, seq.tokens.end());
  outputs.insert(outputs.end(), seq.draft.drafts.begin(), seq.draft.drafts.end());
  const std::span<const int32_t> prompt(seq.tokens.data(), size_t(seq.num_prompt_tokens));
  const std::optional<int32_t> truth = spec.oracle(prompt, outputs);
  if (!truth) return draft;
  const float u = random_uniform_float(seq.sampler.seed(), seq.sampler.sample_index(), outputs.size(),
                                       RandomPurpose::kSpecForce);
  if (u < spec.forced_acceptance) return *truth;
  return draft == *truth ? int32_t((*truth + 1) % model_.config().vocab_size) : draft;
}

double Engine::speculative_update(const SchedulePlan& plan, const StepLogits& logits) {
  std::vector<int64_t> computed_before;
  for (const auto& item : plan.items) computed_before.push_back(item.seq->num_computed_tokens);
  verify_and_append(plan, logits);
  const double mtp_seconds = draft_next(plan, logits, computed_before);
  // Only verified tokens reach the prefix cache, and only once the MTP layer's slots in their
  // blocks are written too; rejected drafts' blocks go back to the pool.
  for (const auto& item : plan.items) {
    Sequence& seq = *item.seq;
    if (seq.status != SequenceStatus::kRunning) continue;
    (void)blocks_.commit_full_blocks(seq.blocks, seq.tokens, seq.num_computed_tokens);
    (void)blocks_.truncate(seq.blocks, seq.num_computed_tokens + 1 + int64_t(seq.draft.drafts.size()));
  }
  return mtp_seconds;
}

void Engine::verify_and_append(const SchedulePlan& plan, const StepLogits& logits) {
  const int64_t vocab = model_.config().vocab_size;
  const auto n = int64_t(plan.items.size());
  std::vector<std::optional<Verification>> verdicts(plan.items.size());
  for (int64_t i = 0; i < n; ++i) {
    const ScheduledSequence& item = plan.items[size_t(i)];
    const int32_t row = logits.row_of_item[size_t(i)];
    if (row < 0) continue;
    const Sequence& seq = *item.seq;
    const SamplingView view{&seq.params(), eos_ids_, seq.num_output_tokens()};
    const auto k = size_t(item.num_draft_tokens);
    const std::span<const int32_t> drafts(seq.draft.drafts.data(), k);
    const std::span<const std::vector<float>> q(seq.draft.q.data(), seq.draft.q.empty() ? 0 : k);
    verdicts[size_t(i)] = verify_drafts(&logits.logits[size_t(int64_t(row) * vocab)], vocab, view,
                                        seq.sampler, drafts, q);
  }

  int64_t computed_prompt = 0;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const ScheduledSequence& item = plan.items[i];
    Sequence& seq = *item.seq;
    const int64_t inputs = item.num_new_tokens - item.num_draft_tokens;  // already verified
    computed_prompt += std::max<int64_t>(
        0, std::min(seq.num_computed_tokens + inputs, seq.num_prompt_tokens) - seq.num_computed_tokens);
    const int64_t accepted = verdicts[i] ? verdicts[i]->num_accepted : 0;
    seq.num_computed_tokens += inputs + accepted;  // rejected drafts' latents are garbage now
    seq.draft.drafts.clear();
    seq.draft.q.clear();
    if (!verdicts[i]) continue;
    if (item.num_draft_tokens > 0) spec_counters_.record(item.num_draft_tokens, accepted);
    Output out;
    for (const SampleResult& r : verdicts[i]->tokens) {
      append_token(seq, r, out);
      if (seq.status == SequenceStatus::kFinished) break;
    }
    emit(seq, std::move(out));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.prompt_tokens += computed_prompt;
}

double Engine::draft_next(const SchedulePlan& plan, const StepLogits& logits,
                          const std::vector<int64_t>& computed_before) {
  const auto start = Clock::now();
  const int64_t H = model_.config().hidden_size;
  const int64_t vocab = model_.config().vocab_size;
  const int64_t bs = blocks_.block_size();

  // 1. The MTP over every running sequence's newly verified positions [mtp_computed, computed):
  //    position i reads h_i (this step's forward, or the cached hidden state at a prefix hit's
  //    boundary) and the token at i + 1.
  models::Batch batch;
  std::vector<float> hidden;
  std::vector<MtpRows> rows;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    Sequence& seq = *plan.items[i].seq;
    if (seq.status != SequenceStatus::kRunning) continue;
    const int64_t from = seq.draft.mtp_computed, to = seq.num_computed_tokens;
    if (from >= to) continue;
    for (int64_t pos = from; pos < to; ++pos) {
      const float* h = pos >= computed_before[i]
                           ? &logits.hidden[size_t((logits.query_start[i] + pos - computed_before[i]) * H)]
                           : runner_->block_last_hidden(seq.blocks.block_table[size_t(pos / bs)]);
      hidden.insert(hidden.end(), h, h + H);
    }
    MtpRows r;
    r.seq = &seq;
    r.wanted = drafts_wanted(seq);
    if (r.wanted > 0) r.logit_row = int32_t(batch.logit_rows.size());
    const std::vector<int32_t> next(seq.tokens.begin() + from + 1, seq.tokens.begin() + to + 1);
    models::append_sequence(batch, next, int32_t(from), seq.blocks.block_table, bs, r.wanted > 0);
    r.last_row = batch.num_tokens() - 1;
    seq.draft.mtp_computed = to;
    rows.push_back(r);
  }
  if (rows.empty()) return std::chrono::duration<double>(Clock::now() - start).count();
  auto mtp = runner_->run_mtp(batch, hidden);
  if (!mtp.ok()) {  // batches are built here, so this is a bug: run on without drafts, loudly
    std::cerr << "latentserve: MTP forward failed: " << mtp.error().message << "\n";
    for (MtpRows& r : rows) r.seq->draft.reset();
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  // 2. Drafts: the first from the rows above, then the MTP chained on its own outputs.
  std::vector<float> logits_now = std::move(mtp->logits);
  std::vector<float> hidden_now = std::move(mtp->hidden);
  std::vector<int64_t> hidden_row(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) hidden_row[r] = rows[r].last_row;
  for (int64_t j = 0;; ++j) {
    models::Batch chain;
    std::vector<float> chain_hidden;
    for (size_t r = 0; r < rows.size(); ++r) {
      MtpRows& m = rows[r];
      if (m.logit_row < 0) continue;
      Sequence& seq = *m.seq;
      const SamplingView view{&seq.params(), eos_ids_, seq.num_output_tokens()};
      std::vector<float> q;
      int32_t d = choose_draft(&logits_now[size_t(int64_t(m.logit_row) * vocab)], vocab, view,
                               seq.sampler, j, &q);
      d = forced_draft(seq, d);
      seq.draft.drafts.push_back(d);
      if (!q.empty()) seq.draft.q.push_back(std::move(q));
      if (j + 1 >= m.wanted) {
        m.logit_row = -1;
        continue;
      }
      // MTP position computed + j: hidden from the previous MTP step, token = the draft just made.
      const float* h = &hidden_now[size_t(hidden_row[r] * H)];
      chain_hidden.insert(chain_hidden.end(), h, h + H);
      m.logit_row = int32_t(chain.logit_rows.size());
      hidden_row[r] = chain.num_tokens();
      models::append_sequence(chain, {d}, int32_t(seq.num_computed_tokens + j), seq.blocks.block_table, bs, true);
    }
    if (chain.num_tokens() == 0) break;
    auto next = runner_->run_mtp(chain, chain_hidden);
    if (!next.ok()) {
      std::cerr << "latentserve: MTP forward failed: " << next.error().message << "\n";
      break;  // the drafts made so far stand
    }
    logits_now = std::move(next->logits);
    hidden_now = std::move(next->hidden);
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Engine::log_speculation_summary() const {
  const EngineStats s = stats();
  std::fprintf(stderr,
               "latentserve: speculative decoding (MTP, K = %lld): %lld drafted, %lld accepted (%.1f%%), "
               "%.2f tokens per step; acceptance by position:",
               (long long)s.spec_num_speculative_tokens, (long long)s.spec_drafted_tokens,
               (long long)s.spec_accepted_tokens,
               s.spec_drafted_tokens ? 100.0 * double(s.spec_accepted_tokens) / double(s.spec_drafted_tokens) : 0.0,
               s.spec_mean_tokens_per_step());
  for (size_t i = 0; i < s.spec_drafted_per_position.size(); ++i) {
    std::fprintf(stderr, " %.3f", s.spec_acceptance_rate(i));
  }
  std::fprintf(stderr, "\n");
}

}  // namespace latentserve::engine
