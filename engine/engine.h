// Engine: continuous batching on its own thread. Front ends submit requests and read their
// outputs from any thread; one loop schedules, runs the model, samples and streams results.
// engine/README.md is the contract (ownership, threads, the step recipe, invariants).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "engine/block_manager.h"
#include "engine/model_runner.h"
#include "engine/request.h"
#include "engine/scheduler.h"
#include "engine/sequence.h"
#include "engine/speculative.h"
#include "engine/token_decoder.h"
#include "models/deepseek_v3/executor.h"
#include "models/deepseek_v3/model.h"

namespace latentserve::engine {

struct EngineConfig {
  SchedulerConfig scheduler;
  // Where the model runs (engine/device_executor.h): auto takes a GPU when the build has CUDA
  // and one is present, else the CPU.
  models::deepseek_v3::Device device = models::deepseek_v3::Device::kAuto;
  int64_t block_size = 64;
  std::optional<int64_t> num_kv_blocks;    // overrides kv_cache_memory
  std::optional<int64_t> kv_cache_memory;  // bytes; default: the device's share of its memory
  bool enable_prefix_cache = true;
  SamplingLimits limits;
  TokenDecoderFactory decoder_factory;     // needed for text deltas and stop strings
  bool check_integrity_every_step = false;  // tests: BlockManager::check_integrity each step
  bool log_startup = true;                  // print the cache size (and a speculation summary) on stderr
  SpeculativeConfig speculative;            // MTP drafts; off unless num_speculative_tokens > 0
};

struct EngineStats {
  std::string device;               // the executor's description, e.g. "cpu" or "cuda:0 (...)"
  int64_t num_running = 0;
  int64_t num_waiting = 0;
  int64_t num_requests_unfinished = 0;
  // Requests submitted whose first step has not run yet (live, not lagging a step): what a
  // front end compares with its queue limit.
  int64_t num_queued_requests = 0;
  int64_t num_blocks = 0;
  int64_t num_free_blocks = 0;
  int64_t block_size = 0;
  int64_t num_steps = 0;
  int64_t num_preemptions = 0;
  int64_t prompt_tokens = 0;        // computed prompt tokens (cache hits excluded)
  int64_t generated_tokens = 0;
  int64_t prefix_queried_tokens = 0;
  int64_t prefix_hit_tokens = 0;
  double forward_seconds = 0;       // inside ModelRunner::run
  double overhead_seconds = 0;      // the rest of each step (scheduling, sampling, outputs)
  std::string integrity_error;      // first integrity failure seen (check_integrity_every_step)

  // Speculative decoding (all zero without it). A verify step is one decoding sequence's share
  // of a step that carried drafts; it yields its accepted drafts plus one token.
  int64_t spec_num_speculative_tokens = 0;         // K
  int64_t spec_drafted_tokens = 0;                 // drafts verified
  int64_t spec_accepted_tokens = 0;                // of which accepted
  int64_t spec_verify_steps = 0;
  int64_t spec_emitted_tokens = 0;                 // tokens the verify steps yielded
  std::vector<int64_t> spec_drafted_per_position;   // [K]: drafts at position i of a step
  std::vector<int64_t> spec_accepted_per_position;  // [K]: of which accepted

  // Accepted / drafted at draft position i (0 when none was drafted there).
  double spec_acceptance_rate(size_t position) const {
    if (position >= spec_drafted_per_position.size() || spec_drafted_per_position[position] == 0) return 0;
    return double(spec_accepted_per_position[position]) / double(spec_drafted_per_position[position]);
  }
  // Tokens per verify step (1 + mean accepted drafts); 0 before the first.
  double spec_mean_tokens_per_step() const {
    return spec_verify_steps == 0 ? 0 : double(spec_emitted_tokens) / double(spec_verify_steps);
  }
};

class Engine {
 public:
  // Makes its own executor (engine/device_executor.h) from config.device, block_size,
  // num_kv_blocks and kv_cache_memory.
  static Result<std::unique_ptr<Engine>> create(const models::deepseek_v3::Model& model,
                                                EngineConfig config);
  // Runs on `executor`, made for `model`, instead of making one: engines created one after
  // another on the same executor reuse its weights on the device and its allocated cache.
  // config.device and kv_cache_memory are not used (the executor is already placed and sized);
  // num_kv_blocks, when set, uses only that many of its blocks. Errors: the executor's cache has
  // fewer layers than the speculation setting needs (main layers, plus the MTP layer when
  // speculating), its block size is not config.block_size, or another live engine uses it.
  static Result<std::unique_ptr<Engine>> create(const models::deepseek_v3::Model& model,
                                                std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
                                                EngineConfig config);
  ~Engine();  // aborts what is left, stops the loop and releases the executor
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates the request (parameters, vocabulary, context length, cache capacity) and queues
  // it; an invalid request returns an error and queues nothing.
  Result<RequestHandle> submit(Request request);
  // The checks submit() makes, without queuing anything.
  Status validate(const Request& request) const;
  // Aborts a request (no-op when unknown or finished); its blocks are freed by the next step.
  void abort(uint64_t request_id);
  EngineStats stats() const;
  // True while the scheduling loop runs (false once it has stopped, for whatever reason).
  bool alive() const { return loop_alive_.load(); }
  // Blocks until no request is waiting or running and the last step's stats are published.
  void wait_idle() const;

 private:
  Engine(const models::deepseek_v3::Model& model, EngineConfig config, BlockManager blocks,
         std::unique_ptr<ModelRunner> runner);

  void loop();
  bool step();  // false when there was nothing to do
  void drain_inbox();
  void admit(std::shared_ptr<RequestState> request);
  void abort_request(uint64_t request_id);
  void sample_and_update(const SchedulePlan& plan, const StepLogits& logits);
  // Speculative decoding (engine_speculative.cpp): verify drafts and append tokens, run the MTP
  // over the newly verified positions, draft the next step's tokens, commit and trim blocks.
  // Returns the seconds spent in the MTP forward.
  double speculative_update(const SchedulePlan& plan, const StepLogits& logits);
  void verify_and_append(const SchedulePlan& plan, const StepLogits& logits);
  double draft_next(const SchedulePlan& plan, const StepLogits& logits,
                    const std::vector<int64_t>& computed_before);
  int32_t forced_draft(const Sequence& seq, int32_t draft) const;
  int64_t drafts_wanted(const Sequence& seq) const;
  void log_speculation_summary() const;
  void append_token(Sequence& seq, const SampleResult& result, Output& out);
  void finish_sequence(Sequence& seq, FinishReason reason, Output& out);
  void emit(Sequence& seq, Output out);
  void check_integrity();
  void publish_stats();

  const models::deepseek_v3::Model& model_;
  EngineConfig config_;
  BlockManager blocks_;
  Scheduler scheduler_;
  std::unique_ptr<ModelRunner> runner_;  // holds the executor, claimed until the engine is gone
  std::vector<int32_t> eos_ids_;

  // Engine-thread state.
  std::map<uint64_t, std::unique_ptr<Sequence>> sequences_;
  std::map<uint64_t, std::shared_ptr<RequestState>> requests_;
  uint64_t next_sequence_id_ = 1;
  int64_t requests_finished_in_step_ = 0;
  SpeculativeCounters spec_counters_;

  // Shared with front-end threads, under mutex_.
  mutable std::mutex mutex_;
  mutable std::condition_variable wake_;
  mutable std::condition_variable idle_;
  std::vector<std::shared_ptr<RequestState>> inbox_;
  std::vector<uint64_t> aborts_;
  uint64_t next_request_id_ = 1;
  int64_t unfinished_requests_ = 0;
  int64_t queued_requests_ = 0;  // submitted, not yet scheduled once
  bool stopping_ = false;
  EngineStats stats_;

  std::atomic<bool> loop_alive_{false};
  std::thread thread_;
};

}  // namespace latentserve::engine
