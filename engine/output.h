// What the engine streams back for a request: per completion, the new tokens of a step with their
// text and logprobs, and at the end a finish reason and the request's token usage.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampler.h"

namespace latentserve::engine {

struct TokenLogprobs {
  int32_t token = 0;
  float logprob = 0.0f;
  std::vector<TopLogprob> top;  // best first; empty unless top logprobs were asked for
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // over all n completions
  int64_t cached_tokens = 0;      // prompt tokens served by the prefix cache
};

enum class FinishReason { kStop, kLength, kAbort, kError };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "abort", "error"

struct Output {
  uint64_t request_id = 0;
  int32_t index = 0;                    // which of the n completions
  std::vector<int32_t> token_ids;       // generated since this completion's previous Output
  std::string text;                     // their text: valid UTF-8, stop strings withheld
  std::vector<TokenLogprobs> logprobs;  // one per token when logprobs were asked for
  std::optional<FinishReason> finish_reason;  // set on this completion's last Output
  std::string stop_reason;              // the stop string, or the stop token id, that ended it
  bool request_finished = false;        // the request's very last Output (all n ended)
  Usage usage;                          // filled on the request's last Output
  std::string error;                    // with FinishReason::kError
};

}  // namespace latentserve::engine
