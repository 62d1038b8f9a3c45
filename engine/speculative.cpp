#include "engine/speculative.h"

#include <cmath>
#include <limits>

#include "engine/sampler_internal.h"

namespace latentserve::engine {
namespace {

// The first token whose running weight exceeds u * total (the sampler's walk, in id order).
int32_t draw_from(const std::vector<double>& weight, double u) {
  double total = 0;
  for (double w : weight) total += w;
  const double target = u * total;
  double running = 0;
  for (size_t i = 0; i < weight.size(); ++i) {
    running += weight[i];
    if (running > target) return int32_t(i);
  }
  for (size_t i = weight.size(); i-- > 0;) {  // u * total rounded past the end
    if (weight[i] > 0) return int32_t(i);
  }
  return 0;
}

}  // namespace

std::vector<float> target_distribution(const float* logits_row, int64_t vocab, const SamplingParams& params,
                                       const SamplerState& state, int64_t num_output_tokens,
                                       std::span<const int32_t> eos_ids) {
  std::vector<float> p(size_t(vocab), 0.0f);
  if (params.temperature < kGreedyTemperature) {
    p[size_t(sample_with_uniform(logits_row, vocab, params, state, num_output_tokens, eos_ids, 0.0).token)] = 1.0f;
    return p;
  }
  detail::Scratch& scratch = detail::thread_scratch(vocab);
  const detail::LogitTransform transform(params, state, num_output_tokens, eos_ids);
  const float* w = detail::processed_row(logits_row, vocab, transform, scratch);
  const float max = detail::row_max(w, vocab);
  if (!(max > -std::numeric_limits<float>::infinity())) {  // every token banned: the sampler's fallback
    p[size_t(detail::row_argmax(logits_row, vocab))] = 1.0f;
    return p;
  }
  // The sampler's weights: exp(w - max) in float over the kept tokens, summed in double.
  const int64_t kept = detail::kept_tokens(w, vocab, params, max, scratch);
  double total = 0;
  if (kept < 0) {
    for (int64_t i = 0; i < vocab; ++i) total += double(p[size_t(i)] = detail::exp_nonpositive(w[i] - max));
  } else {
    for (int64_t j = 0; j < kept; ++j) {
      const int32_t id = scratch.ids[size_t(j)];
      total += double(p[size_t(id)] = detail::exp_nonpositive(w[id] - max));
    }
  }
  for (float& x : p) x = float(double(x) / total);
  return p;
}

int32_t choose_draft(const float* mtp_logits, int64_t vocab, const SamplingView& view,
                     const SamplerState& state, int64_t draft_index, std::vector<float>* q) {
  const SamplingParams& params = *view.params;
  const int64_t position = view.num_output_tokens + draft_index;
  if (params.temperature < kGreedyTemperature) {
    if (q) q->clear();
    return sample_with_uniform(mtp_logits, vocab, params, state, position, view.eos_ids, 0.0).token;
  }
  std::vector<float> dist = target_distribution(mtp_logits, vocab, params, state, position, view.eos_ids);
  std::vector<double> weight(dist.begin(), dist.end());
  const int32_t token = draw_from(weight, double(uniform(state, uint64_t(position), uint32_t(RandomPurpose::kSpecDraft))));
  if (q) *q = std::move(dist);
  return token;
}

Verification verify_drafts(const float* logits, int64_t vocab, const SamplingView& view,
                           const SamplerState& state, std::span<const int32_t> drafts,
                           std::span<const std::vector<float>> q) {
  const SamplingParams& params = *view.params;
  const bool greedy = params.temperature < kGreedyTemperature;
  SamplerState st = state;  // penalties see accepted drafts as outputs
  Verification v;
  for (size_t j = 0; j <= drafts.size(); ++j) {
    const float* row = logits + int64_t(j) * vocab;
    const int64_t position = view.num_output_tokens + int64_t(j);
    if (j == drafts.size()) {  // every draft accepted: the bonus token, drawn as without speculation
      v.tokens.push_back(sample(row, vocab, params, st, position, view.eos_ids));
      break;
    }
    const int32_t d = drafts[j];
    if (greedy) {
      const SampleResult r = sample_with_uniform(row, vocab, params, st, position, view.eos_ids, 0.0);
      v.tokens.push_back(r);
      if (r.token != d) break;
    } else {
      const std::vector<float> p = target_distribution(row, vocab, params, st, position, view.eos_ids);
      const std::vector<float>& qj = q[j];
      const double pd = p[size_t(d)], qd = qj[size_t(d)];
      const double u = uniform(st, uint64_t(position), uint32_t(RandomPurpose::kSpecAccept));
      if (!(qd > 0 && u * qd < pd)) {
        // Rejected: resample from the normalised residual max(0, p - q) (p itself if it is empty).
        std::vector<double> residual(static_cast<size_t>(vocab), 0.0);
        double mass = 0;
        for (int64_t i = 0; i < vocab; ++i) mass += residual[size_t(i)] = std::max(0.0, double(p[size_t(i)]) - qj[size_t(i)]);
        if (!(mass > 0)) residual.assign(p.begin(), p.end());
        const double ur = uniform(st, uint64_t(position), uint32_t(RandomPurpose::kSpecResample));
        v.tokens.push_back(result_for_token(row, vocab, params, draw_from(residual, ur)));
        break;
      }
      v.tokens.push_back(result_for_token(row, vocab, params, d));
    }
    st.append_output(d);
    ++v.num_accepted;
  }
  return v;
}

void SpeculativeCounters::record(int64_t num_drafts, int64_t num_accepted) {
  drafted += num_drafts;
  accepted += num_accepted;
  verify_steps += 1;
  emitted += num_accepted + 1;
  if (int64_t(drafted_at.size()) < num_drafts) {
    drafted_at.resize(size_t(num_drafts), 0);
    accepted_at.resize(size_t(num_drafts), 0);
  }
  for (int64_t i = 0; i < num_drafts; ++i) {
    drafted_at[size_t(i)] += 1;
    accepted_at[size_t(i)] += i < num_accepted ? 1 : 0;
  }
}

}  // namespace latentserve::engine
