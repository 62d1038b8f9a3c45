#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

#include "engine/device_executor.h"

namespace latentserve::engine {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// The checks of an engine's own settings, whoever makes its executor.
Status check_config(const models::deepseek_v3::Model& model, const EngineConfig& config) {
  const auto& cfg = model.config();
  if (config.block_size < 1 || config.block_size > 4096) {
    return make_error("block size must be between 1 and 4096, got " + std::to_string(config.block_size));
  }
  if (config.scheduler.max_num_batched_tokens < 1 || config.scheduler.max_num_seqs < 1) {
    return make_error("max-num-batched-tokens and max-num-seqs must be at least 1");
  }
  const SpeculativeConfig& spec = config.speculative;
  if (spec.num_speculative_tokens < 0 || spec.num_speculative_tokens > 16) {
    return make_error("num-speculative-tokens must be between 0 and 16, got " +
                      std::to_string(spec.num_speculative_tokens));
  }
  if (spec.enabled() && model.num_mtp_layers() == 0) {
    return make_error("speculative decoding with MTP needs the checkpoint's MTP layer (model.layers." +
                      std::to_string(cfg.num_hidden_layers) + ".*), and this checkpoint has none");
  }
  if (spec.forced_acceptance > 1.0) {
    return make_error("forced acceptance must be in [0, 1] (or negative: off), got " +
                      std::to_string(spec.forced_acceptance));
  }
  return ok_status();
}

int64_t cache_layers_needed(const models::deepseek_v3::Model& model, const EngineConfig& config) {
  return config.speculative.enabled() ? model.num_cache_layers_with_mtp() : model.num_cache_layers();
}

// What a given executor must offer the engine `config` describes.
Status check_executor(const models::deepseek_v3::Model& model, const models::deepseek_v3::ModelExecutor& executor,
                      const EngineConfig& config) {
  const int64_t layers = cache_layers_needed(model, config);
  if (executor.num_cache_layers() < layers) {
    return make_error("the executor's latent cache holds " + std::to_string(executor.num_cache_layers()) +
                      " layers, and this engine needs " + std::to_string(layers) +
                      (config.speculative.enabled() ? " (the main layers plus the MTP layer, for speculative decoding)"
                                                    : " (the main layers)") +
                      "; make the executor with num_cache_layers = " + std::to_string(layers));
  }
  if (executor.block_size() != config.block_size) {
    return make_error("the executor's cache blocks hold " + std::to_string(executor.block_size()) +
                      " tokens, and the engine's block size is " + std::to_string(config.block_size) +
                      "; they must be equal");
  }
  if (config.num_kv_blocks && (*config.num_kv_blocks < 1 || *config.num_kv_blocks > executor.num_blocks())) {
    return make_error("num_kv_blocks " + std::to_string(*config.num_kv_blocks) + " must be between 1 and the " +
                      std::to_string(executor.num_blocks()) + " blocks of the executor's cache");
  }
  return ok_status();
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::create(const models::deepseek_v3::Model& model,
                                               EngineConfig config) {
  LS_RETURN_IF_ERROR(check_config(model, config));
  models::deepseek_v3::ExecutorConfig exec;
  exec.device = config.device;
  exec.num_cache_layers = cache_layers_needed(model, config);
  exec.block_size = config.block_size;
  exec.num_blocks = config.num_kv_blocks;
  exec.cache_memory = config.kv_cache_memory;
  LS_ASSIGN_OR_RETURN(auto executor, make_executor(model, exec));
  return create(model, std::shared_ptr<models::deepseek_v3::ModelExecutor>(std::move(executor)), std::move(config));
}

Result<std::unique_ptr<Engine>> Engine::create(const models::deepseek_v3::Model& model,
                                               std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
                                               EngineConfig config) {
  LS_RETURN_IF_ERROR(check_config(model, config));
  if (executor == nullptr) return make_error("Engine::create: no executor given");
  LS_RETURN_IF_ERROR(check_executor(model, *executor, config));
  const SpeculativeConfig& spec = config.speculative;
  config.scheduler.lookahead_slots = spec.num_speculative_tokens;
  // An executor that engines before this one used still holds their latent values. That is
  // harmless: the BlockManager below starts with every block free and its prefix cache without a
  // single hash, so each block is written by this engine before any step reads it (and the
  // runner's per-block MTP hidden states start afresh too).
  LS_ASSIGN_OR_RETURN(auto runner, ModelRunner::create(model, executor, spec.enabled()));
  const int64_t num_blocks = config.num_kv_blocks.value_or(executor->num_blocks());
  LS_ASSIGN_OR_RETURN(auto blocks, BlockManager::create(num_blocks, executor->block_size(),
                                                        config.enable_prefix_cache));
  if (config.log_startup) {
    std::cerr << "latentserve: device " << executor->description() << ", latent cache of " << num_blocks
              << " blocks x " << executor->block_size() << " tokens = " << num_blocks * executor->block_size()
              << " tokens (" << executor->cache_bytes() / (1 << 20) << " MiB), prefix cache "
              << (config.enable_prefix_cache ? "on" : "off");
    if (spec.enabled()) std::cerr << ", speculative decoding: MTP, " << spec.num_speculative_tokens << " draft(s)";
    std::cerr << "\n";
  }
  std::unique_ptr<Engine> engine(new Engine(model, std::move(config), std::move(blocks), std::move(runner)));
  engine->loop_alive_ = true;
  engine->thread_ = std::thread([e = engine.get()] {
    e->loop();
    e->loop_alive_ = false;
  });
  return engine;
}

Engine::Engine(const models::deepseek_v3::Model& model, EngineConfig config, BlockManager blocks,
               std::unique_ptr<ModelRunner> runner)
    : model_(model),
      config_(std::move(config)),
      blocks_(std::move(blocks)),
      scheduler_(config_.scheduler, blocks_),
      runner_(std::move(runner)) {
  for (int64_t id : model.config().eos_token_ids) eos_ids_.push_back(int32_t(id));
  stats_.device = runner_->executor().description();
  stats_.num_blocks = blocks_.num_blocks();
  stats_.num_free_blocks = blocks_.num_free_blocks();
  stats_.block_size = blocks_.block_size();
  stats_.spec_num_speculative_tokens = config_.speculative.num_speculative_tokens;
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Status Engine::validate(const Request& r) const {
  const auto& cfg = model_.config();
  LS_RETURN_IF_ERROR(r.params.validate(cfg.vocab_size, config_.limits));
  if (r.prompt_token_ids.empty()) return make_error("the prompt is empty");
  for (size_t i = 0; i < r.prompt_token_ids.size(); ++i) {
    if (r.prompt_token_ids[i] < 0 || r.prompt_token_ids[i] >= cfg.vocab_size) {
      return make_error("prompt token " + std::to_string(i) + " is " +
                        std::to_string(r.prompt_token_ids[i]) + ", outside the vocabulary [0, " +
                        std::to_string(cfg.vocab_size) + ")");
    }
  }
  const int64_t total = int64_t(r.prompt_token_ids.size()) + r.params.max_tokens;
  if (total > cfg.max_position_embeddings) {
    return make_error("the prompt (" + std::to_string(r.prompt_token_ids.size()) +
                      " tokens) plus max_tokens (" + std::to_string(r.params.max_tokens) +
                      ") is over the model's context length of " +
                      std::to_string(cfg.max_position_embeddings) + " tokens");
  }
  // Speculation reserves cache slots past the tokens (the MTP slot and drafts).
  const int64_t blocks_needed =
      (total + config_.scheduler.lookahead_slots + blocks_.block_size() - 1) / blocks_.block_size();
  if (blocks_needed > blocks_.num_blocks()) {
    return make_error("the prompt plus max_tokens needs " + std::to_string(total) +
                      " tokens of latent cache, more than the whole cache holds (" +
                      std::to_string(blocks_.num_blocks() * blocks_.block_size()) + ")");
  }
  if (!r.params.stop.empty() && !config_.decoder_factory) {
    return make_error("stop strings need a tokenizer, and this engine has none");
  }
  return ok_status();
}

Result<RequestHandle> Engine::submit(Request request) {
  LS_RETURN_IF_ERROR(validate(request));
  auto state = std::make_shared<RequestState>();
  state->request = std::move(request);
  state->channel = std::make_shared<OutputChannel>();
  state->num_unfinished = state->request.params.n;
  state->usage.prompt_tokens = int64_t(state->request.prompt_token_ids.size());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return make_error("the engine is shutting down");
    state->id = next_request_id_++;
    ++unfinished_requests_;
    ++queued_requests_;
    stats_.num_requests_unfinished = unfinished_requests_;
    stats_.num_queued_requests = queued_requests_;
    inbox_.push_back(state);
  }
  wake_.notify_all();
  return RequestHandle(this, state->id, state->channel);
}

void Engine::abort(uint64_t request_id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    aborts_.push_back(request_id);
  }
  wake_.notify_all();
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Engine::wait_idle() const {
  std::unique_lock<std::mutex> lock(mutex_);
  idle_.wait(lock, [&] { return unfinished_requests_ == 0 || stopping_; });
}

void Engine::loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stopping_ || !inbox_.empty() || !aborts_.empty() || scheduler_.has_work();
      });
      if (stopping_) break;
    }
    step();
  }
  // Shutting down: everything still live ends as aborted, so no reader waits forever.
  drain_inbox();
  std::vector<uint64_t> live;
  for (const auto& [id, r] : requests_) live.push_back(id);
  for (uint64_t id : live) abort_request(id);
  publish_stats();
  if (config_.speculative.enabled() && config_.log_startup) log_speculation_summary();
}

void Engine::drain_inbox() {
  std::vector<std::shared_ptr<RequestState>> arrived;
  std::vector<uint64_t> aborted;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    arrived.swap(inbox_);
    aborted.swap(aborts_);
  }
  for (auto& r : arrived) admit(std::move(r));
  for (uint64_t id : aborted) abort_request(id);
}

void Engine::admit(std::shared_ptr<RequestState> request) {
  requests_[request->id] = request;
  const SamplingParams& params = request->request.params;
  for (int32_t i = 0; i < params.n; ++i) {
    auto seq = std::make_unique<Sequence>();
    seq->id = next_sequence_id_++;
    seq->request = request;
    seq->index = i;
    seq->tokens = request->request.prompt_token_ids;
    seq->num_prompt_tokens = seq->num_tokens();
    seq->sampler = SamplerState::create(params, uint32_t(i), seq->tokens);
    if (config_.decoder_factory) seq->decoder = config_.decoder_factory(params.skip_special_tokens);
    seq->stop = StopChecker(params.stop, params.include_stop_str_in_output);
    scheduler_.add_waiting(seq.get());
    sequences_[seq->id] = std::move(seq);
  }
}

void Engine::abort_request(uint64_t request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;  // unknown or already finished
  std::vector<Sequence*> live;
  for (auto& [id, seq] : sequences_) {
    if (seq->request->id == request_id) live.push_back(seq.get());
  }
  for (Sequence* seq : live) {
    Output out;
    finish_sequence(*seq, FinishReason::kAbort, out);
    emit(*seq, std::move(out));
  }
}

bool Engine::step() {
  const auto start = Clock::now();
  drain_inbox();
  const SchedulePlan plan = scheduler_.schedule();
  if (plan.empty()) {
    publish_stats();
    return false;
  }
  int64_t newly_started = 0;
  for (const auto& item : plan.items) {
    Sequence& seq = *item.seq;
    if (!seq.counted_cached_tokens && seq.index == 0) {
      seq.request->usage.cached_tokens = seq.blocks.num_cached_tokens;
      seq.counted_cached_tokens = true;
    }
    if (!seq.request->started) {
      seq.request->started = true;
      ++newly_started;
    }
  }
  if (newly_started > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_requests_ -= newly_started;
    stats_.num_queued_requests = queued_requests_;
  }

  const auto forward_start = Clock::now();
  auto logits = runner_->run(plan);
  double forward_seconds = seconds_since(forward_start);

  if (!logits.ok()) {
    // A forward failure is a bug, not bad input (batches are built here); end what ran, loudly.
    std::cerr << "latentserve: forward failed: " << logits.error().message << "\n";
    for (const auto& item : plan.items) {
      Output out;
      out.error = logits.error().message;
      finish_sequence(*item.seq, FinishReason::kError, out);
      emit(*item.seq, std::move(out));
    }
  } else if (config_.speculative.enabled()) {
    forward_seconds += speculative_update(plan, *logits);
  } else {
    int64_t computed_prompt = 0;
    for (const auto& item : plan.items) {
      Sequence& seq = *item.seq;
      computed_prompt += std::max<int64_t>(
          0, std::min(seq.num_computed_tokens + item.num_new_tokens, seq.num_prompt_tokens) -
                 seq.num_computed_tokens);
      seq.num_computed_tokens += item.num_new_tokens;
      (void)blocks_.commit_full_blocks(seq.blocks, seq.tokens, seq.num_computed_tokens);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.prompt_tokens += computed_prompt;
    }
    sample_and_update(plan, *logits);
  }
  if (config_.check_integrity_every_step) check_integrity();

  // Erase finished sequences (their outputs are out; the scheduler no longer sees them).
  for (auto it = sequences_.begin(); it != sequences_.end();) {
    it = it->second->status == SequenceStatus::kFinished ? sequences_.erase(it) : std::next(it);
  }
  const double total = seconds_since(start);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.num_steps += 1;
    stats_.forward_seconds += forward_seconds;
    stats_.overhead_seconds += total - forward_seconds;
  }
  publish_stats();
  return true;
}

void Engine::sample_and_update(const SchedulePlan& plan, const StepLogits& logits) {
  std::vector<SampleRow> rows;
  std::vector<Sequence*> row_seq;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    if (logits.row_of_item[i] < 0) continue;
    Sequence* seq = plan.items[i].seq;
    rows.push_back({&seq->params(), &seq->sampler, seq->num_output_tokens()});
    row_seq.push_back(seq);
  }
  if (rows.empty()) return;
  std::vector<SampleResult> results(rows.size());
  const int64_t vocab = model_.config().vocab_size;
  Status sampled = sample_batch(logits.logits.data(), vocab, rows, eos_ids_, results);
  for (size_t r = 0; r < rows.size(); ++r) {
    Sequence& seq = *row_seq[r];
    Output out;
    if (!sampled.ok()) {
      out.error = sampled.error().message;
      finish_sequence(seq, FinishReason::kError, out);
    } else {
      append_token(seq, results[r], out);
    }
    emit(seq, std::move(out));
  }
}

void Engine::append_token(Sequence& seq, const SampleResult& result, Output& out) {
  const SamplingParams& params = seq.params();
  const int32_t token = result.token;
  seq.tokens.push_back(token);
  seq.sampler.append_output(token);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.generated_tokens += 1;
  }
  out.token_ids.push_back(token);
  if (params.logprobs) {
    TokenLogprobs lp;
    lp.token = token;
    lp.logprob = result.logprob;
    const auto top = result.top();
    lp.top.assign(top.begin(), top.begin() + std::min<size_t>(top.size(), size_t(*params.logprobs)));
    out.logprobs.push_back(std::move(lp));
  }

  const bool eos = !params.ignore_eos && contains(eos_ids_, token);
  if (eos || contains(params.stop_token_ids, token)) {
    // The stop token itself adds no text; what was held back can no longer start a stop string.
    if (seq.decoder) out.text += seq.stop.push(seq.decoder->flush()).text;
    out.text += seq.stop.flush();
    if (!eos) seq.stop_reason = std::to_string(token);
    finish_sequence(seq, FinishReason::kStop, out);
    return;
  }
  if (seq.decoder) {
    StopChecker::Step s = seq.stop.push(seq.decoder->push(token));
    out.text += s.text;
    if (s.matched) {
      seq.stop_reason = *s.matched;
      finish_sequence(seq, FinishReason::kStop, out);
      return;
    }
  }
  if (seq.num_output_tokens() >= params.max_tokens) {
    if (seq.decoder) {
      StopChecker::Step s = seq.stop.push(seq.decoder->flush());
      out.text += s.text;
      if (s.matched) {
        seq.stop_reason = *s.matched;
        finish_sequence(seq, FinishReason::kStop, out);
        return;
      }
    }
    out.text += seq.stop.flush();
    finish_sequence(seq, FinishReason::kLength, out);
  }
}

void Engine::finish_sequence(Sequence& seq, FinishReason reason, Output& out) {
  if (seq.status == SequenceStatus::kFinished) return;
  scheduler_.remove(&seq);
  seq.status = SequenceStatus::kFinished;
  seq.finish_reason = reason;
  out.finish_reason = reason;
  out.stop_reason = seq.stop_reason;
  RequestState& request = *seq.request;
  request.usage.completion_tokens += seq.num_output_tokens();
  if (--request.num_unfinished == 0) {
    out.request_finished = true;
    out.usage = request.usage;
    requests_.erase(request.id);
    if (!request.started) {  // aborted while still queued
      request.started = true;
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.num_queued_requests = --queued_requests_;
    }
    ++requests_finished_in_step_;  // counted as finished once the step's stats are published
  }
}

void Engine::emit(Sequence& seq, Output out) {
  out.request_id = seq.request->id;
  out.index = seq.index;
  seq.request->channel->push(std::move(out));
}

void Engine::check_integrity() {
  std::vector<const SequenceBlocks*> live;
  for (const auto& [id, seq] : sequences_) {
    if (seq->status != SequenceStatus::kFinished) live.push_back(&seq->blocks);
  }
  Status s = blocks_.check_integrity(live);
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stats_.integrity_error.empty()) stats_.integrity_error = s.error().message;
  }
}

void Engine::publish_stats() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    unfinished_requests_ -= requests_finished_in_step_;
    requests_finished_in_step_ = 0;
    stats_.num_requests_unfinished = unfinished_requests_;
    stats_.num_running = scheduler_.num_running();
    stats_.num_waiting = scheduler_.num_waiting();
    stats_.num_free_blocks = blocks_.num_free_blocks();
    stats_.num_preemptions = scheduler_.num_preemptions();
    stats_.prefix_queried_tokens = blocks_.stats().num_queried_tokens;
    stats_.prefix_hit_tokens = blocks_.stats().num_hit_tokens;
    stats_.spec_drafted_tokens = spec_counters_.drafted;
    stats_.spec_accepted_tokens = spec_counters_.accepted;
    stats_.spec_verify_steps = spec_counters_.verify_steps;
    stats_.spec_emitted_tokens = spec_counters_.emitted;
    stats_.spec_drafted_per_position = spec_counters_.drafted_at;
    stats_.spec_accepted_per_position = spec_counters_.accepted_at;
  }
  idle_.notify_all();
}

}  // namespace latentserve::engine
