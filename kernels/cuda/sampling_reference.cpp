// The plain CPU sampler the GPU one is held to: process, sort, cut, draw, all in the obvious way.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cuda/sampling.h"

namespace latentserve::kernels::cuda {
namespace {

int32_t first_max(const float* w, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (w[i] > w[best]) best = int32_t(i);
  }
  return best;
}

// The ids with w >= cut, in the order of `ids`.
std::vector<int32_t> at_least(const std::vector<float>& w, const std::vector<int32_t>& ids, double cut) {
  std::vector<int32_t> out;
  for (int32_t id : ids) {
    if (double(w[size_t(id)]) >= cut) out.push_back(id);
  }
  return out;
}

}  // namespace

SampleRowReference sample_row_reference(const float* logits, int64_t vocab, const SamplingRowParams& p,
                                        double u) {
  SampleRowReference r;
  if (vocab < 1) return r;
  if (p.temperature < kSamplingGreedyTemperature) {
    r.token = first_max(logits, vocab);
    return r;
  }
  std::vector<float> w(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) w[size_t(i)] = logits[i] / p.temperature;
  const double max = w[size_t(first_max(w.data(), vocab))];
  if (!(max > -std::numeric_limits<double>::infinity())) {
    r.token = first_max(logits, vocab);
    return r;
  }
  std::vector<int32_t> kept(static_cast<size_t>(vocab));
  std::iota(kept.begin(), kept.end(), 0);
  std::sort(kept.begin(), kept.end(), [&](int32_t a, int32_t b) {
    return w[size_t(a)] != w[size_t(b)] ? w[size_t(a)] > w[size_t(b)] : a < b;
  });
  kept = at_least(w, kept, -std::numeric_limits<double>::max());
  if (p.min_p > 0.0f) kept = at_least(w, kept, max + std::log(double(p.min_p)));
  if (p.top_k > 0 && p.top_k < vocab && int64_t(kept.size()) > p.top_k) {
    kept = at_least(w, kept, w[size_t(kept[size_t(p.top_k - 1)])]);
  }
  auto weight = [&](int32_t id) { return std::exp(double(w[size_t(id)]) - max); };
  if (p.top_p < 1.0f) {
    double total = 0;
    for (int32_t id : kept) total += weight(id);
    const double need = double(p.top_p) * total;
    double running = 0, cut = w[size_t(kept.back())];
    for (int32_t id : kept) {
      running += weight(id);
      r.boundary = std::min(r.boundary, std::abs(running - need) / total);
      if (running >= need) {
        cut = w[size_t(id)];
        break;
      }
    }
    kept = at_least(w, kept, cut);
  }
  std::sort(kept.begin(), kept.end());
  double total = 0;
  for (int32_t id : kept) total += weight(id);
  const double target = u * total;
  double running = 0;
  r.token = kept.back();
  for (int32_t id : kept) {
    running += weight(id);
    r.boundary = std::min(r.boundary, std::abs(running - target) / total);
    if (running > target) {
      r.token = id;
      break;
    }
  }
  return r;
}

}  // namespace latentserve::kernels::cuda
