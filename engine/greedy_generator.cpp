#include "engine/greedy_generator.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "models/batch.h"
#include "models/deepseek_v3/executor.h"

namespace latentserve::engine {

std::vector<TokenLogprob> top_logprobs(const float* logits, int64_t vocab, int32_t k) {
  // log p = x - max - log Σ exp(x - max), in double for the normaliser.
  const float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - max);
  const double log_norm = double(max) + std::log(sum);
  k = int32_t(std::min<int64_t>(k, vocab));
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::vector<TokenLogprob> out;
  for (int32_t i = 0; i < k; ++i) out.push_back({ids[size_t(i)], float(double(logits[ids[size_t(i)]]) - log_norm)});
  return out;
}

GreedyGenerator::GreedyGenerator(const models::deepseek_v3::Model& model, int64_t block_size)
    : model_(model), block_size_(block_size) {}

Status GreedyGenerator::validate(const GreedyRequest& r) const {
  const auto& cfg = model_.config();
  if (r.prompt_token_ids.empty()) return make_error("prompt_token_ids must not be empty");
  for (size_t i = 0; i < r.prompt_token_ids.size(); ++i) {
    const int32_t id = r.prompt_token_ids[i];
    if (id < 0 || id >= cfg.vocab_size) {
      return make_error("prompt_token_ids[" + std::to_string(i) + "] = " + std::to_string(id) +
                        " is outside the vocabulary [0, " + std::to_string(cfg.vocab_size) + ")");
    }
  }
  if (r.max_tokens < 1) return make_error("max_tokens must be at least 1");
  if (r.logprobs < 0 || r.logprobs > 20) return make_error("logprobs must be between 0 and 20");
  const int64_t total = int64_t(r.prompt_token_ids.size()) + r.max_tokens;
  if (total > cfg.max_position_embeddings) {
    return make_error("prompt (" + std::to_string(r.prompt_token_ids.size()) + " tokens) plus max_tokens (" +
                      std::to_string(r.max_tokens) + ") exceeds the context length " +
                      std::to_string(cfg.max_position_embeddings));
  }
  return ok_status();
}

Result<GreedyResult> GreedyGenerator::generate(const GreedyRequest& r) const {
  LS_RETURN_IF_ERROR(validate(r));
  const auto& cfg = model_.config();
  const int64_t total = int64_t(r.prompt_token_ids.size()) + r.max_tokens;
  const int64_t num_blocks = (total + block_size_ - 1) / block_size_;
  // Always the CPU: this is the baseline other paths are compared with, and its cache is sized
  // per request.
  models::deepseek_v3::ExecutorConfig exec;
  exec.device = models::deepseek_v3::Device::kCpu;
  exec.num_cache_layers = model_.num_cache_layers();
  exec.block_size = block_size_;
  exec.num_blocks = num_blocks;
  LS_ASSIGN_OR_RETURN(auto executor, models::deepseek_v3::make_cpu_executor(model_, exec));
  std::vector<int32_t> table(static_cast<size_t>(num_blocks));
  std::iota(table.begin(), table.end(), 0);

  GreedyResult result;
  std::vector<int32_t> step_tokens = r.prompt_token_ids;
  int32_t cached = 0;
  while (true) {
    models::Batch batch;
    models::append_sequence(batch, step_tokens, cached, table, block_size_, /*want_logits=*/true);
    LS_ASSIGN_OR_RETURN(auto out, executor->forward(batch));
    cached += int32_t(step_tokens.size());
    const float* logits = out.logits.data();
    const auto best = top_logprobs(logits, cfg.vocab_size, std::max(r.logprobs, 1));
    const int32_t next = best[0].id;
    result.token_ids.push_back(next);
    if (r.logprobs > 0) result.logprobs.push_back(best);
    const bool is_eos = std::find(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end(), next) !=
                        cfg.eos_token_ids.end();
    if (is_eos && !r.ignore_eos) {
      result.finish_reason = "stop";
      break;
    }
    if (int32_t(result.token_ids.size()) >= r.max_tokens) {
      result.finish_reason = "length";
      break;
    }
    step_tokens = {next};
  }
  return result;
}

}  // namespace latentserve::engine
