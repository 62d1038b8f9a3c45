// GreedyGenerator: runs one request at a time through the model on the CPU with a private latent
// cache, greedy decoding with top-k logprobs. The simplest correct generation path; the batching
// engine is measured against it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "models/deepseek_v3/model.h"

namespace latentserve::engine {

struct GreedyRequest {
  std::vector<int32_t> prompt_token_ids;
  int32_t max_tokens = 16;
  int32_t logprobs = 0;  // how many top entries per generated token (0: none)
  bool ignore_eos = false;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

struct GreedyResult {
  std::vector<int32_t> token_ids;
  std::vector<std::vector<TokenLogprob>> logprobs;  // per generated token, best first
  std::string finish_reason;                        // "length" or "stop"
};

// The k most likely tokens of one logits row, best first (ties: lower id first).
std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t vocab, int32_t k);

class GreedyGenerator {
 public:
  explicit GreedyGenerator(const models::deepseek_v3::Model& model, int64_t block_size = 64);

  // Checks the request against the model (ids in the vocabulary, length within the context).
  Status validate(const GreedyRequest& request) const;
  Result<GreedyResult> generate(const GreedyRequest& request) const;

 private:
  const models::deepseek_v3::Model& model_;
  int64_t block_size_;
};

}  // namespace latentserve::engine
