#include "engine/scheduler.h"

#include <algorithm>

namespace latentserve::engine {

bool Scheduler::WaitingOrder::operator()(const Sequence* a, const Sequence* b) const {
  const int32_t pa = a->params().priority;
  const int32_t pb = b->params().priority;
  return pa != pb ? pa < pb : a->id < b->id;
}

Scheduler::Scheduler(const SchedulerConfig& config, BlockManager& blocks)
    : config_(config), blocks_(blocks) {}

void Scheduler::add_waiting(Sequence* seq) {
  seq->status = SequenceStatus::kWaiting;
  waiting_.insert(seq);
}

void Scheduler::remove(Sequence* seq) {
  waiting_.erase(seq);
  running_.erase(std::remove(running_.begin(), running_.end(), seq), running_.end());
  blocks_.free(seq->blocks);
}

void Scheduler::preempt(Sequence* victim, SchedulePlan& plan) {
  running_.erase(std::remove(running_.begin(), running_.end(), victim), running_.end());
  blocks_.free(victim->blocks);
  victim->num_computed_tokens = 0;  // recomputed from scratch (its own prefix may still be cached)
  victim->draft.reset();
  add_waiting(victim);
  plan.preempted.push_back(victim);
  ++num_preemptions_;
}

bool Scheduler::reserve_running(Sequence* seq, int64_t n, SchedulePlan& plan) {
  while (!blocks_.append_slots(seq->blocks, seq->num_computed_tokens + n + config_.lookahead_slots).ok()) {
    Sequence* victim = running_.back();  // the newest; never one planned already (index > i)
    preempt(victim, plan);
    if (victim == seq) return false;
  }
  return true;
}

bool Scheduler::sibling_is_prefilling(const Sequence* seq) const {
  if (!blocks_.prefix_cache_enabled() || seq->request->request.params.n <= 1) return false;
  for (const Sequence* r : running_) {
    if (r->request == seq->request && r->num_computed_tokens < r->num_prompt_tokens) return true;
  }
  return false;
}

int64_t Scheduler::admit(Sequence* seq, int64_t budget) {
  const AllocationCost probe = blocks_.allocation_cost(seq->tokens, 0);
  const int64_t n = std::min(seq->num_tokens() - probe.num_cached_tokens, budget);
  const int64_t cover = probe.num_cached_tokens + n + config_.lookahead_slots;
  const AllocationCost cost = blocks_.allocation_cost(seq->tokens, cover);
  if (!blocks_.can_allocate(cost.num_blocks_taken)) return 0;
  if (!blocks_.allocate(seq->blocks, seq->tokens, cover).ok()) return 0;
  seq->num_computed_tokens = seq->blocks.num_cached_tokens;
  // The MTP entry of the last cached position depends on the token after it, which is ours.
  seq->draft.reset();
  seq->draft.mtp_computed = std::max<int64_t>(0, seq->num_computed_tokens - 1);
  seq->status = SequenceStatus::kRunning;
  running_.push_back(seq);
  return n;
}

SchedulePlan Scheduler::schedule() {
  SchedulePlan plan;
  int64_t budget = config_.max_num_batched_tokens;

  // Running sequences first: one token (plus its drafts) when decoding, the next chunk when
  // still prefilling.
  for (size_t i = 0; i < running_.size() && budget > 0;) {
    Sequence* seq = running_[i];
    const int64_t drafts = seq->num_uncomputed() == 1 ? int64_t(seq->draft.drafts.size()) : 0;
    const int64_t n = std::min(seq->num_uncomputed() + drafts, budget);
    if (!reserve_running(seq, n, plan)) break;  // it was the newest: nothing after it remains
    plan.items.push_back({seq, n, std::max<int64_t>(0, n - seq->num_uncomputed())});
    plan.num_tokens += n;
    budget -= n;
    ++i;
  }

  // Then waiting sequences by (priority, arrival), unless this step had to preempt.
  if (plan.preempted.empty()) {
    for (auto it = waiting_.begin();
         it != waiting_.end() && budget > 0 && int64_t(running_.size()) < config_.max_num_seqs;) {
      Sequence* seq = *it;
      if (sibling_is_prefilling(seq)) {
        ++it;
        continue;
      }
      const int64_t n = admit(seq, budget);
      if (n == 0) break;  // first come, first served: nobody overtakes a request that does not fit
      it = waiting_.erase(it);
      plan.items.push_back({seq, n});
      plan.num_tokens += n;
      budget -= n;
    }
  }
  return plan;
}

}  // namespace latentserve::engine
