// GPU sampling, one block per row. Every truncation keeps {w >= threshold}, so each cut is a
// search for a threshold: the largest float key K with count(w >= K) >= k (top_k) or
// mass(w >= K) >= top_p · total (top_p), found by bisection over the order-preserving integer
// keys of floats. A first pass measures how many tokens (and how much mass) lie within 1, 2, 4,
// ... nats of the max; when a small set suffices it is copied to shared memory and the bisection
// runs there, otherwise over the whole row. The draw then walks the row in id order: per-warp
// segment sums first, then one warp scans the segment holding u · total.
#include <cfloat>
#include <climits>
#include <cmath>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/sampling.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kCapacity = 4096;  // candidates the shared-memory bisection holds
constexpr int kSpans = 12;       // candidate sets within 2^s nats of the max, s < kSpans
constexpr int kStats = 2 * kSpans + 2;

// Order-preserving map of non-NaN floats to unsigned integers, and back.
__device__ __forceinline__ uint32_t key_of(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float float_of(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sums each v[j] over the block; every thread gets the same totals (same order of additions).
template <int N>
__device__ void block_sum(double (&v)[N], double* scratch) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < N; ++j) v[j] = warp_sum(v[j]);
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < N; ++j) scratch[warp * N + j] = v[j];
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < N; ++j) {
    double s = 0;
    for (int w = 0; w < kWarps; ++w) s += scratch[w * N + j];
    v[j] = s;
  }
  __syncthreads();
}

// (value, index) of the block's first maximum; ties go to the lower index.
__device__ void block_argmax(float& value, int& index, float* values, int* indices) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, value, o);
    const int i = __shfl_xor_sync(0xffffffffu, index, o);
    if (v > value || (v == value && i < index)) {
      value = v;
      index = i;
    }
  }
  if (lane == 0) {
    values[warp] = value;
    indices[warp] = index;
  }
  __syncthreads();
  value = values[0];
  index = indices[0];
  for (int w = 1; w < kWarps; ++w) {
    if (values[w] > value || (values[w] == value && indices[w] < index)) {
      value = values[w];
      index = indices[w];
    }
  }
  __syncthreads();
}

// The processed logits w, read from the raw row or from the shared-memory candidates.
struct RowSource {
  const float* x;
  float temperature;
  int n;
  __device__ float operator()(int i) const { return __fdiv_rn(x[i], temperature); }
};
struct SharedSource {
  const float* c;
  int n;
  __device__ float operator()(int i) const { return c[i]; }
};

// The largest key K in [lo, hi] with count(w >= K) >= k, or mass(w >= K) >= need with weights
// exp(w - max) (by_mass); lo when none qualifies.
template <class Source>
__device__ uint32_t bisect(const Source& src, uint32_t lo, uint32_t hi, bool by_mass, double need,
                           float top, double* scratch) {
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo + 1) / 2;
    const float t = float_of(mid);
    double v[1] = {0.0};
    for (int i = threadIdx.x; i < src.n; i += kThreads) {
      const float w = src(i);
      if (w >= t) v[0] += by_mass ? double(expf(w - top)) : 1.0;
    }
    block_sum(v, scratch);
    if (v[0] >= need) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

template <class Source>
__device__ double mass_at_least(const Source& src, float t, float top, double* scratch) {
  double v[1] = {0.0};
  for (int i = threadIdx.x; i < src.n; i += kThreads) {
    const float w = src(i);
    if (w >= t) v[0] += double(expf(w - top));
  }
  block_sum(v, scratch);
  return v[0];
}

// Applies top_k then top_p over `src`, whose keys below `floor_key` are known not to matter.
template <class Source>
__device__ float truncate(const Source& src, const SamplingRowParams& rp, bool k_cuts, float lower,
                          uint32_t floor_key, float top, double mass_all, double* scratch) {
  const uint32_t hi = key_of(top);
  if (k_cuts) {
    const uint32_t lo = max(floor_key, key_of(lower));
    lower = fmaxf(lower, float_of(bisect(src, lo, hi, false, double(rp.top_k), top, scratch)));
  }
  if (rp.top_p < 1.0f) {
    const double total = k_cuts ? mass_at_least(src, lower, top, scratch) : mass_all;
    const uint32_t lo = max(floor_key, key_of(lower));
    lower = fmaxf(lower, float_of(bisect(src, lo, hi, true, double(rp.top_p) * total, top, scratch)));
  }
  return lower;
}

// The first id (in id order) whose running weight exceeds u · total over {w >= lower}.
__device__ int draw(const RowSource& row, float lower, float top, double u, double* seg_sums,
                    int* shared_token) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int seg = (row.n + kWarps * 32 - 1) / (kWarps * 32) * 32;
  const int begin = warp * seg, end = min(row.n, begin + seg);
  double part = 0;
  for (int i = begin + lane; i < end; i += 32) {
    const float w = row(i);
    if (w >= lower) part += double(expf(w - top));
  }
  part = warp_sum(part);
  if (lane == 0) seg_sums[warp] = part;
  if (threadIdx.x == 0) *shared_token = -1;
  __syncthreads();
  double total = 0;
  for (int s = 0; s < kWarps; ++s) total += seg_sums[s];
  const double target = u * total;
  double base = 0;
  int hit = kWarps - 1;
  for (int s = 0; s < kWarps; ++s) {
    if (base + seg_sums[s] > target) {
      hit = s;
      break;
    }
    if (s + 1 < kWarps) base += seg_sums[s];
  }
  // Rounding can leave u · total past every segment: the last segment with weight then holds the
  // answer (its last positive token), as in the CPU sampler.
  while (hit > 0 && seg_sums[hit] <= 0.0) base -= seg_sums[--hit];
  if (warp == hit) {
    const int hb = hit * seg, he = min(row.n, hb + seg);
    int last_positive = hb;
    int token = -1;
    for (int c = hb; c < he && token < 0; c += 32) {
      const int i = c + lane;
      const float w = i < he ? row(i) : -INFINITY;
      const double e = (i < he && w >= lower) ? double(expf(w - top)) : 0.0;
      double incl = e;
      for (int o = 1; o < 32; o <<= 1) {
        const double up = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += up;
      }
      const unsigned crossed = __ballot_sync(0xffffffffu, base + incl > target && e > 0.0);
      const unsigned positive = __ballot_sync(0xffffffffu, e > 0.0);
      if (crossed != 0) token = c + __ffs(crossed) - 1;
      if (positive != 0) last_positive = c + 31 - __clz(positive);
      base += __shfl_sync(0xffffffffu, incl, 31);
    }
    if (lane == 0) *shared_token = token >= 0 ? token : last_positive;
  }
  __syncthreads();
  return *shared_token;
}

__global__ __launch_bounds__(kThreads) void sample_rows_kernel(SampleRowsParams p) {
  __shared__ float candidates[kCapacity];
  __shared__ double scratch[kWarps * kStats];
  __shared__ float warp_values[kWarps];
  __shared__ int warp_indices[kWarps];
  __shared__ int count;
  __shared__ int token_slot;
  const int64_t row_index = blockIdx.x;
  const float* x = p.logits + row_index * p.ld;
  const SamplingRowParams rp = p.row_params[row_index];
  const int vocab = int(p.vocab);
  const bool greedy = !(rp.temperature >= kSamplingGreedyTemperature);
  const RowSource row{x, greedy ? 1.0f : rp.temperature, vocab};

  // The raw first maximum (greedy, or every processed logit -inf) and the processed max.
  float raw_best = -INFINITY, top = -INFINITY;
  int raw_index = INT_MAX;
  for (int i = threadIdx.x; i < vocab; i += kThreads) {
    const float r = x[i];
    if (r > raw_best || raw_index == INT_MAX) {
      raw_best = r;
      raw_index = i;
    }
    if (!greedy) top = fmaxf(top, row(i));
  }
  block_argmax(raw_best, raw_index, warp_values, warp_indices);
  int best = 0;
  block_argmax(top, best, warp_values, warp_indices);
  if (greedy || !(top > -INFINITY)) {
    if (threadIdx.x == 0) p.tokens[row_index] = raw_index;
    return;
  }

  float lower = -FLT_MAX;
  if (rp.min_p > 0.0f) {
    const double cut = double(top) + log(double(rp.min_p));
    float f = __double2float_rn(cut);
    if (double(f) < cut) f = nextafterf(f, INFINITY);
    lower = fmaxf(lower, f);
  }
  const bool k_on = rp.top_k > 0 && rp.top_k < vocab;
  const bool p_on = rp.top_p < 1.0f;
  if (k_on || p_on) {
    // stats[s], stats[kSpans + s]: count and mass within 2^s nats of the top (and >= lower);
    // stats[2 kSpans], stats[2 kSpans + 1]: count and mass of everything >= lower.
    double stats[kStats];
#pragma unroll
    for (int j = 0; j < kStats; ++j) stats[j] = 0.0;
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const float w = row(i);
      if (w < lower) continue;
      const double e = double(expf(w - top));
#pragma unroll
      for (int s = 0; s < kSpans; ++s) {
        if (w >= top - float(1 << s)) {
          stats[s] += 1.0;
          stats[kSpans + s] += e;
        }
      }
      stats[2 * kSpans] += 1.0;
      stats[2 * kSpans + 1] += e;
    }
    block_sum(stats, scratch);
    const double count_all = stats[2 * kSpans], mass_all = stats[2 * kSpans + 1];
    const bool k_cuts = k_on && count_all > double(rp.top_k);
    int span = -1;
    for (int s = 0; s < kSpans && span < 0 && (k_cuts || p_on); ++s) {
      const bool enough = stats[s] == count_all ||
                          (k_on ? stats[s] >= double(rp.top_k)
                                : stats[kSpans + s] >= double(rp.top_p) * mass_all * (1.0 + 1e-9));
      if (stats[s] <= double(kCapacity) && enough) span = s;
    }
    if (span >= 0) {
      const float t = fmaxf(lower, top - float(1 << span));
      if (threadIdx.x == 0) count = 0;
      __syncthreads();
      for (int i = threadIdx.x; i < vocab; i += kThreads) {
        const float w = row(i);
        if (w >= t) candidates[atomicAdd(&count, 1)] = w;
      }
      __syncthreads();
      const SharedSource src{candidates, count};
      lower = truncate(src, rp, k_cuts, lower, key_of(t), top, mass_all, scratch);
    } else if (k_cuts || p_on) {
      lower = truncate(row, rp, k_cuts, lower, key_of(lower), top, mass_all, scratch);
    }
  }
  const int token = draw(row, lower, top, p.uniforms[row_index], scratch, &token_slot);
  if (threadIdx.x == 0) p.tokens[row_index] = token;
}

}  // namespace

Status sample_rows(const SampleRowsParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.vocab < 1 || p.vocab > INT_MAX || p.ld < p.vocab) {
    return make_error("sample_rows: bad size (rows " + std::to_string(p.rows) + ", vocab " +
                      std::to_string(p.vocab) + ", ld " + std::to_string(p.ld) + ")");
  }
  if (p.rows == 0) return ok_status();
  if (p.rows > INT_MAX) return make_error("sample_rows: " + std::to_string(p.rows) + " rows exceed the grid");
  if (p.logits == nullptr || p.row_params == nullptr || p.uniforms == nullptr || p.tokens == nullptr) {
    return make_error("sample_rows: null logits, row parameters, uniforms or tokens");
  }
  sample_rows_kernel<<<unsigned(p.rows), kThreads, 0, stream>>>(p);
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
