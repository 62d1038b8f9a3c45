// The Scheduler: decides, each step, which sequences run and how many of their tokens, under the
// token budget and the sequence limit, asking the BlockManager for cache blocks and preempting
// the newest running sequence when blocks run out. It plans; it never touches device memory.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "engine/block_manager.h"
#include "engine/sequence.h"

namespace latentserve::engine {

struct SchedulerConfig {
  int64_t max_num_batched_tokens = 2048;  // new tokens per step over all sequences
  int64_t max_num_seqs = 256;             // sequences per step
  // Cache slots reserved past each scheduled sequence's tokens (speculative decoding: the MTP
  // layer's shifted slot and its chained drafts); 0 without speculation.
  int64_t lookahead_slots = 0;
};

struct ScheduledSequence {
  Sequence* seq = nullptr;
  int64_t num_new_tokens = 0;  // tokens [num_computed_tokens, +num_new_tokens) run this step
  // Of those, the last ones that are drafts (seq->draft.drafts[0, num_draft_tokens)), not yet in
  // seq->tokens; only for a decoding sequence.
  int64_t num_draft_tokens = 0;
};

struct SchedulePlan {
  std::vector<ScheduledSequence> items;  // running sequences first, then newly admitted ones
  std::vector<Sequence*> preempted;      // sent back to the waiting queue this step
  int64_t num_tokens = 0;

  bool empty() const { return items.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& config, BlockManager& blocks);

  // Queues a sequence (holding no blocks) by (priority, id).
  void add_waiting(Sequence* seq);
  SchedulePlan schedule();
  // Takes a sequence out of the scheduler (finished or aborted) and frees its blocks.
  void remove(Sequence* seq);

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_waiting() const { return int64_t(waiting_.size()); }
  int64_t num_running() const { return int64_t(running_.size()); }
  const std::vector<Sequence*>& running() const { return running_; }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  struct WaitingOrder {
    bool operator()(const Sequence* a, const Sequence* b) const;
  };

  // Grows a running sequence's blocks for `n` more tokens, preempting the newest running
  // sequences while needed. False when `seq` itself had to be preempted.
  bool reserve_running(Sequence* seq, int64_t n, SchedulePlan& plan);
  void preempt(Sequence* victim, SchedulePlan& plan);
  // Tries to admit one waiting sequence with at most `budget` tokens; 0 when it cannot.
  int64_t admit(Sequence* seq, int64_t budget);
  // A completion of a request with n > 1 waits while a sibling computes the shared prompt,
  // so it can take the prompt's blocks from the prefix cache instead of recomputing them.
  bool sibling_is_prefilling(const Sequence* seq) const;

  SchedulerConfig config_;
  BlockManager& blocks_;
  std::set<Sequence*, WaitingOrder> waiting_;
  std::vector<Sequence*> running_;  // in the order they started running
  int64_t num_preemptions_ = 0;
};

}  // namespace latentserve::engine
