// The random path of the fast sampler: min_p, top_k and top_p without sorting the vocabulary.
//
// Every truncation keeps a set {i : w_i >= threshold}, so the tokens that matter are a prefix
// of the vocabulary ordered by logit. We collect the candidates C = {w_i >= max - D} with one
// branch-free pass, widening D until C provably holds that prefix (at least k tokens for top_k,
// at least top_p of the mass for top_p), and sort only C. Weights of candidates are computed
// in double exactly as the reference computes them, so both agree bit for bit on the kept set.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/sampler_internal.h"

namespace latentserve::engine::detail {
namespace {

constexpr int64_t kBlock = 1024;
constexpr float kInitialSpan = 8.0f;   // nats below the max collected first
constexpr float kWidestSpan = 8192.0f; // beyond this, collect every finite logit

// Writes the ids with w_i >= t (ascending) to ids; returns how many.
int64_t collect(const float* w, int64_t vocab, float t, int32_t* ids) {
  int64_t n = 0;
  for (int64_t i = 0; i < vocab; ++i) {
    ids[n] = int32_t(i);
    n += w[i] >= t ? 1 : 0;
  }
  return n;
}

// Keeps the ids with w >= t, preserving their order.
int64_t filter(const float* w, int32_t* ids, int64_t n, float t) {
  int64_t kept = 0;
  for (int64_t j = 0; j < n; ++j) {
    ids[kept] = ids[j];
    kept += w[ids[j]] >= t ? 1 : 0;
  }
  return kept;
}

// Draws among candidate ids (ascending): first whose running weight exceeds u * total.
int32_t draw_candidates(const float* w, float max, int32_t* ids, int64_t n, double u, Scratch& s) {
  double* weight = s.weights.data();
  double total = 0;
  for (int64_t j = 0; j < n; ++j) {
    weight[j] = std::exp(double(w[ids[j]]) - double(max));
    total += weight[j];
  }
  const double target = u * total;
  double running = 0;
  for (int64_t j = 0; j < n; ++j) {
    running += weight[j];
    if (running > target) return ids[j];
  }
  for (int64_t j = n - 1; j > 0; --j) {  // u * total rounded past the end
    if (weight[j] > 0) return ids[j];
  }
  return ids[0];
}

// Draws over the whole vocabulary: exps and per-block sums in one pass, then the block, then the token.
int32_t draw_full(const float* w, int64_t vocab, float max, double u, Scratch& s) {
  const int64_t blocks = (vocab + kBlock - 1) / kBlock;
  s.block_sums.resize(size_t(blocks));
  float* e = s.exps.data();
  double total = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock, end = std::min(vocab, begin + kBlock);
    for (int64_t i = begin; i < end; ++i) e[i] = exp_nonpositive(w[i] - max);
    double lanes[8] = {};
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
      for (int j = 0; j < 8; ++j) lanes[j] += double(e[i + j]);
    }
    for (; i < end; ++i) lanes[0] += double(e[i]);
    double sum = 0;
    for (double l : lanes) sum += l;
    s.block_sums[size_t(b)] = sum;
    total += sum;
  }
  const double target = u * total;
  double running = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    if (running + s.block_sums[size_t(b)] <= target) {
      running += s.block_sums[size_t(b)];
      continue;
    }
    const int64_t begin = b * kBlock, end = std::min(vocab, begin + kBlock);
    for (int64_t i = begin; i < end; ++i) {
      running += double(e[i]);
      if (running > target) return int32_t(i);
    }
  }
  for (int64_t i = vocab - 1; i > 0; --i) {
    if (e[i] > 0.0f) return int32_t(i);
  }
  return 0;
}

// Keeps the tokens tied with or above the k-th largest of ids[0, n).
int64_t keep_top_k(const float* w, int32_t* ids, int64_t n, int64_t k) {
  if (n <= k) return n;
  std::nth_element(ids, ids + (k - 1), ids + n, [w](int32_t a, int32_t b) { return w[a] > w[b]; });
  const float kth = w[ids[k - 1]];
  const int64_t kept = filter(w, ids, n, kth);
  std::sort(ids, ids + kept);
  return kept;
}

// Keeps the smallest logit-ordered prefix of ids[0, n) whose weight reaches top_p * total, plus
// ties of its last token. total < 0 means "the weight of ids[0, n)" (summed in sorted order).
int64_t keep_top_p(const float* w, float max, int32_t* ids, int64_t n, float top_p, double total, Scratch& s) {
  std::sort(ids, ids + n, [w](int32_t a, int32_t b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
  double* weight = s.weights.data();
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    weight[j] = std::exp(double(w[ids[j]]) - double(max));
    sum += weight[j];
  }
  if (total < 0) total = sum;
  const double target = double(top_p) * total;
  float cut = w[ids[n - 1]];
  double running = 0;
  for (int64_t j = 0; j < n; ++j) {
    running += weight[j];
    if (running >= target) {
      cut = w[ids[j]];
      break;
    }
  }
  const int64_t kept = filter(w, ids, n, cut);
  std::sort(ids, ids + kept);
  return kept;
}

}  // namespace

int64_t kept_tokens(const float* w, int64_t vocab, const SamplingParams& p, float max, Scratch& s) {
  const bool top_k = p.top_k > 0 && p.top_k < vocab;
  const bool top_p = p.top_p < 1.0f;
  const bool min_p = p.min_p > 0.0f;
  int32_t* ids = s.ids.data();
  // The lowest logit any truncation may keep; -FLT_MAX leaves out only banned (-inf) tokens.
  const float floor = min_p ? min_p_threshold(max, p.min_p) : -std::numeric_limits<float>::max();
  if (!top_k && !top_p) return min_p ? collect(w, vocab, floor, ids) : -1;
  // top_p alone over the whole vocabulary needs the total weight up front.
  const bool needs_total = top_p && !top_k && !min_p;
  const double total = needs_total ? exp_sum(w, vocab, max) : -1.0;
  int64_t n = 0;
  bool complete = false;  // ids hold every token that top_p renormalises over
  for (float span = kInitialSpan;; span *= 4.0f) {
    const float t = (span > kWidestSpan || (min_p && !top_k)) ? floor : std::max(floor, max - span);
    n = collect(w, vocab, t, ids);
    complete = t == floor || top_k;
    if (t == floor || (top_k && n >= p.top_k)) break;
    if (needs_total) {
      double mass = 0;
      for (int64_t j = 0; j < n; ++j) mass += std::exp(double(w[ids[j]]) - double(max));
      if (mass >= double(p.top_p) * total) break;
    }
  }
  if (top_k) n = keep_top_k(w, ids, n, p.top_k);
  if (top_p) n = keep_top_p(w, max, ids, n, p.top_p, complete ? -1.0 : total, s);
  return n;
}

int32_t sample_random(const float* w, int64_t vocab, const SamplingParams& p, double u, Scratch& s) {
  const float max = row_max(w, vocab);
  if (!(max > -std::numeric_limits<float>::infinity())) return -1;
  const int64_t n = kept_tokens(w, vocab, p, max, s);
  return n < 0 ? draw_full(w, vocab, max, u, s) : draw_candidates(w, max, s.ids.data(), n, u, s);
}

}  // namespace latentserve::engine::detail
