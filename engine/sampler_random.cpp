// The random path of the fast sampler: min_p, top_k and top_p without sorting the vocabulary.
//
// Every truncation keeps a set {i : w_i >= threshold}, so the tokens that matter are a prefix
// of the vocabulary ordered by logit. top_k finds its threshold with a k-entry heap in one
// pass; top_p alone collects candidates C = {w_i >= max - D} with branch-free passes, widening
// D until C holds top_p of the mass; top_p's cut is then a quickselect on cumulative mass over
// the candidates. Nothing is fully sorted. Weights are float exps summed in
// double, so a cut or a draw can differ from the reference only within ~1e-6 of a boundary.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/sampler_internal.h"

namespace latentserve::engine::detail {
namespace {

constexpr int64_t kBlock = 1024;
constexpr float kInitialSpan = 8.0f;    // nats below the max collected first
constexpr float kWidestSpan = 8192.0f;  // beyond this, collect every finite logit

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

// values[j] = w[ids[j]], weights[j] = exp(values[j] - max); returns the sum of the weights.
double gather_weights(const float* w, float max, const int32_t* ids, int64_t n, Scratch& s) {
  float* values = s.values.data();
  double* weights = s.weights.data();
  for (int64_t j = 0; j < n; ++j) values[j] = w[ids[j]];
  for (int64_t j = 0; j < n; ++j) weights[j] = double(exp_nonpositive(values[j] - max));
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += weights[j];
  return sum;
}

// Draws among candidate ids (ascending): first whose running weight exceeds u * total.
int32_t draw_candidates(const float* w, float max, const int32_t* ids, int64_t n, double u, Scratch& s) {
  const double total = gather_weights(w, max, ids, n, s);
  const double* weight = s.weights.data();
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

// exps[i] = exp(w_i - max) and per-block sums; returns the total.
double fill_exps(const float* w, int64_t vocab, float max, Scratch& s) {
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
  return total;
}

// Draws over the whole vocabulary: the block holding u * total, then the token inside it.
int32_t draw_full(const float* w, int64_t vocab, float max, double u, Scratch& s) {
  const double target = u * fill_exps(w, vocab, max, s);
  const float* e = s.exps.data();
  double running = 0;
  for (size_t b = 0; b < s.block_sums.size(); ++b) {
    if (running + s.block_sums[b] <= target) {
      running += s.block_sums[b];
      continue;
    }
    const int64_t begin = int64_t(b) * kBlock, end = std::min(vocab, begin + kBlock);
    for (int64_t i = begin; i < end; ++i) {
      running += double(e[i]);
      if (running > target) return int32_t(i);
    }
  }
  for (int64_t i = vocab - 1; i > 0; --i) {  // u * total rounded past the end
    if (e[i] > 0.0f) return int32_t(i);
  }
  return 0;
}

// The k-th largest logit (k <= vocab): one pass with a k-entry min-heap; most logits lose a
// single comparison against the heap's smallest.
float kth_largest(const float* w, int64_t vocab, int64_t k, Scratch& s) {
  std::vector<float>& heap = s.heap;
  heap.assign(w, w + k);
  std::make_heap(heap.begin(), heap.end(), std::greater<float>());
  for (int64_t i = k; i < vocab; ++i) {
    if (w[i] > heap.front()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
      heap.back() = w[i];
      std::push_heap(heap.begin(), heap.end(), std::greater<float>());
    }
  }
  return heap.front();
}

// The logit of the last token of the shortest logit-ordered prefix whose weight reaches
// `need`: a quickselect over (value, weight) pairs, three-way partitioned so ties move together.
float top_p_cut(float* values, double* weights, int64_t n, double need) {
  float lowest = values[0];
  for (int64_t j = 1; j < n; ++j) lowest = std::min(lowest, values[j]);
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const float a = values[lo], b = values[lo + (hi - lo) / 2], c = values[hi - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
    // [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) < pivot.
    int64_t gt = lo, j = lo, lt = hi;
    while (j < lt) {
      if (values[j] > pivot) {
        std::swap(values[j], values[gt]);
        std::swap(weights[j++], weights[gt++]);
      } else if (values[j] < pivot) {
        --lt;
        std::swap(values[j], values[lt]);
        std::swap(weights[j], weights[lt]);
      } else {
        ++j;
      }
    }
    double above = 0, equal = 0;
    for (int64_t q = lo; q < gt; ++q) above += weights[q];
    for (int64_t q = gt; q < lt; ++q) equal += weights[q];
    if (above >= need) {
      hi = gt;
    } else if (above + equal >= need) {
      return pivot;
    } else {
      need -= above + equal;
      lo = lt;
    }
  }
  return lowest;  // the total rounded below need: keep everything
}

// Keeps the shortest logit-ordered prefix of ids[0, n) whose weight reaches top_p * total, plus
// ties of its last token. total < 0 means "the weight of ids[0, n)".
int64_t keep_top_p(const float* w, float max, int32_t* ids, int64_t n, float top_p, double total, Scratch& s) {
  const double sum = gather_weights(w, max, ids, n, s);
  if (total < 0) total = sum;
  const float cut = top_p_cut(s.values.data(), s.weights.data(), n, double(top_p) * total);
  return filter(w, ids, n, cut);
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
  if (top_k) {
    // Everything tied with the k-th largest stays, unless min_p cuts higher.
    const int64_t n = collect(w, vocab, std::max(floor, kth_largest(w, vocab, p.top_k, s)), ids);
    return top_p ? keep_top_p(w, max, ids, n, p.top_p, -1.0, s) : n;
  }
  if (min_p) return keep_top_p(w, max, ids, collect(w, vocab, floor, ids), p.top_p, -1.0, s);
  // top_p alone: the total weight first, then candidates down to where they hold top_p of it.
  const double total = fill_exps(w, vocab, max, s);
  int64_t n = 0;
  bool complete = false;  // ids hold every finite token
  for (float span = kInitialSpan;; span *= 2.0f) {
    complete = span > kWidestSpan;
    n = collect(w, vocab, complete ? floor : max - span, ids);
    if (complete) break;
    double mass = 0;
    for (int64_t j = 0; j < n; ++j) mass += double(s.exps[size_t(ids[j])]);
    if (mass >= double(p.top_p) * total) break;
  }
  return keep_top_p(w, max, ids, n, p.top_p, complete ? -1.0 : total, s);
}

int32_t sample_random(const float* w, int64_t vocab, const SamplingParams& p, double u, Scratch& s) {
  const float max = row_max(w, vocab);
  if (!(max > -std::numeric_limits<float>::infinity())) return -1;
  const int64_t n = kept_tokens(w, vocab, p, max, s);
  return n < 0 ? draw_full(w, vocab, max, u, s) : draw_candidates(w, max, s.ids.data(), n, u, s);
}

}  // namespace latentserve::engine::detail
