#include "engine/collected.h"

namespace latentserve::engine {

bool collect_output(CollectedRequest& into, Output out) {
  CollectedCompletion& c = into.completions[out.index];
  c.token_ids.insert(c.token_ids.end(), out.token_ids.begin(), out.token_ids.end());
  c.text += out.text;
  for (auto& lp : out.logprobs) c.logprobs.push_back(std::move(lp));
  if (out.finish_reason) {
    c.finish_reason = *out.finish_reason;
    c.stop_reason = out.stop_reason;
    c.error = out.error;
  }
  if (out.request_finished) into.usage = out.usage;
  return out.request_finished;
}

CollectedRequest collect_all(RequestHandle& handle) {
  CollectedRequest result;
  while (auto out = handle.next()) {
    if (collect_output(result, std::move(*out))) break;
  }
  return result;
}

}  // namespace latentserve::engine
