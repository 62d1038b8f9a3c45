// Collecting a request's streamed Outputs into whole completions, for callers that want the
// final result only (offline generation, benchmarks, tests).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/output.h"
#include "engine/request.h"

namespace latentserve::engine {

struct CollectedCompletion {
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<TokenLogprobs> logprobs;
  FinishReason finish_reason = FinishReason::kAbort;
  std::string stop_reason;
  std::string error;
};

struct CollectedRequest {
  std::map<int32_t, CollectedCompletion> completions;  // by index
  Usage usage;
};

// Adds one Output; returns true when it was the request's last.
bool collect_output(CollectedRequest& into, Output output);
// Reads the handle to the end.
CollectedRequest collect_all(RequestHandle& handle);

}  // namespace latentserve::engine
