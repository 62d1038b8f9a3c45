// Sequence: one completion as the engine thread sees it — its tokens, how many have latents in
// the cache, its blocks, its sampler and text state. Requests with n > 1 own n Sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/block_manager.h"
#include "engine/output.h"
#include "engine/request.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "engine/stop_checker.h"
#include "engine/token_decoder.h"

namespace latentserve::engine {

enum class SequenceStatus { kWaiting, kRunning, kFinished };

// What every completion of one request shares; lives as long as any of them.
struct RequestState {
  uint64_t id = 0;
  Request request;
  std::shared_ptr<OutputChannel> channel;
  int32_t num_unfinished = 0;  // completions still running or waiting
  bool started = false;        // some completion has been scheduled (the request left the queue)
  Usage usage;
};

struct Sequence {
  uint64_t id = 0;  // unique over the engine's life, in admission order
  std::shared_ptr<RequestState> request;
  int32_t index = 0;  // which of the request's n completions
  SequenceStatus status = SequenceStatus::kWaiting;

  std::vector<int32_t> tokens;  // prompt, then generated tokens
  int64_t num_prompt_tokens = 0;
  int64_t num_computed_tokens = 0;  // tokens whose latents are in the cache
  SequenceBlocks blocks;
  bool counted_cached_tokens = false;  // usage.cached_tokens taken from the first admission

  SamplerState sampler;
  DraftState draft;  // speculative decoding only
  std::unique_ptr<TokenDecoder> decoder;
  StopChecker stop;
  std::optional<FinishReason> finish_reason;
  std::string stop_reason;

  const SamplingParams& params() const { return request->request.params; }
  int64_t num_tokens() const { return int64_t(tokens.size()); }
  int64_t num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  // Tokens still to compute before the next sample.
  int64_t num_uncomputed() const { return num_tokens() - num_computed_tokens; }
};

}  // namespace latentserve::engine
