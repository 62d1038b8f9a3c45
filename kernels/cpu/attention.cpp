// MLA attention over the paged latent cache (absorbed form) and plain varlen causal attention.
// Fast versions: FP32, one OpenMP work item per query token, online (flash-style) softmax over
// cache blocks, the absorbed loop also built for AVX2+FMA and chosen by selected_isa().
// References: double, two-pass softmax, no blocking.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/cpu/cpu_features.h"

namespace latentserve::kernels::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The per-token loop is force-inlined into a plain and an AVX2+FMA entry point (picked at run
// time), so every helper it calls is marked always_inline and compiled for the caller's target.
#define LS_INLINE [[gnu::always_inline]] inline

// Sixteen independent partial sums: one running sum would stall on the add latency.
LS_INLINE float dot(const float* a, const float* b, int64_t n) {
  constexpr int64_t kLanes = 16;
  float part[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
#pragma omp simd
    for (int64_t k = 0; k < kLanes; ++k) part[k] += a[j + k] * b[j + k];
  }
  float s = 0.0f;
  for (; j < n; ++j) s += a[j] * b[j];
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < kLanes; ++k) s += part[k];
  return s;
}

LS_INLINE void axpy(float alpha, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) y[j] += alpha * x[j];
}

// (sequence, query index within it) for every query row, so threads can split rows evenly.
template <class Seq, class Len>
std::vector<std::pair<int32_t, int32_t>> query_items(const Seq* seqs, int32_t n, Len len) {
  std::vector<std::pair<int32_t, int32_t>> items;
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t i = 0; i < len(seqs[s]); ++i) items.emplace_back(s, i);
  }
  return items;
}

// Per-thread running state of the online softmax for every head of one query token.
struct OnlineSoftmax {
  std::vector<float> acc;     // [heads, width]
  std::vector<float> max;     // [heads]
  std::vector<float> sum;     // [heads]
  std::vector<float> scores;  // [heads, tile]

  OnlineSoftmax(int64_t heads, int64_t width, int64_t tile)
      : acc(size_t(heads * width)), max(size_t(heads)), sum(size_t(heads)),
        scores(size_t(heads * tile)) {}

  void reset() {
    std::fill(acc.begin(), acc.end(), 0.0f);
    std::fill(max.begin(), max.end(), kNegInf);
    std::fill(sum.begin(), sum.end(), 0.0f);
  }

  // Folds a tile of n scores of head h into the running max/sum, rescaling the accumulator,
  // and turns the scores into unnormalised probabilities relative to the new max.
  LS_INLINE void fold(int64_t h, int64_t tile, int64_t n, int64_t width) {
    float* s = scores.data() + h * tile;
    float tile_max = kNegInf;
    for (int64_t t = 0; t < n; ++t) tile_max = std::max(tile_max, s[t]);
    const float new_max = std::max(max[size_t(h)], tile_max);
    if (new_max > max[size_t(h)] && max[size_t(h)] != kNegInf) {
      const float alpha = std::exp(max[size_t(h)] - new_max);
      float* a = acc.data() + h * width;
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) a[j] *= alpha;
      sum[size_t(h)] *= alpha;
    }
    max[size_t(h)] = new_max;
    float added = 0.0f;
    for (int64_t t = 0; t < n; ++t) {
      s[t] = std::exp(s[t] - new_max);
      added += s[t];
    }
    sum[size_t(h)] += added;
  }

  void write(int64_t heads, int64_t width, float* out) const {
    for (int64_t h = 0; h < heads; ++h) {
      const float inv = 1.0f / sum[size_t(h)];
      for (int64_t j = 0; j < width; ++j) out[h * width + j] = acc[size_t(h * width + j)] * inv;
    }
  }
};

// One query token of the absorbed form: walks the sequence's block table, reading each cache
// row once for all heads (scores), then once more from cache for the weighted sum.
LS_INLINE void absorbed_token(const MlaAbsorbedParams& p, const AttentionSequence& seq, int32_t i,
                              OnlineSoftmax& st) {
  const LatentCache& c = p.cache;
  const int64_t R = c.kv_lora_rank, E = c.rope_dim, H = p.heads, bs = c.block_size;
  const int64_t row = seq.query_start + i;
  const int64_t n_keys = int64_t(seq.context_len) - seq.query_len + i + 1;
  const float* ql = p.q_latent + row * H * R;
  const float* qr = p.q_rope + row * H * E;
  st.reset();
  for (int64_t b = 0; b * bs < n_keys; ++b) {
    const int64_t n = std::min(bs, n_keys - b * bs);
    const float* block = c.slot(int64_t(seq.block_table[b]) * bs);
    for (int64_t t = 0; t < n; ++t) {
      const float* lat = block + t * c.token_dim();
      for (int64_t h = 0; h < H; ++h) {
        st.scores[size_t(h * bs + t)] =
            (dot(ql + h * R, lat, R) + dot(qr + h * E, lat + R, E)) * p.softmax_scale;
      }
    }
    for (int64_t h = 0; h < H; ++h) st.fold(h, bs, n, R);
    for (int64_t t = 0; t < n; ++t) {
      const float* lat = block + t * c.token_dim();
      for (int64_t h = 0; h < H; ++h) axpy(st.scores[size_t(h * bs + t)], lat, &st.acc[size_t(h * R)], R);
    }
  }
  st.write(H, R, p.out_latent + row * H * R);
}

void absorbed_token_plain(const MlaAbsorbedParams& p, const AttentionSequence& seq, int32_t i,
                          OnlineSoftmax& st) {
  absorbed_token(p, seq, i, st);
}

[[gnu::target("avx2,fma")]] void absorbed_token_avx2(const MlaAbsorbedParams& p,
                                                     const AttentionSequence& seq, int32_t i,
                                                     OnlineSoftmax& st) {
  absorbed_token(p, seq, i, st);
}

// softmax(scores) · values in double; scores are consumed.
void weighted_sum_reference(std::vector<double>& scores, const std::vector<const float*>& values,
                            int64_t width, float* out) {
  double m = -std::numeric_limits<double>::infinity();
  for (double s : scores) m = std::max(m, s);
  double total = 0.0;
  for (double& s : scores) total += (s = std::exp(s - m));
  for (int64_t j = 0; j < width; ++j) {
    double v = 0.0;
    for (size_t t = 0; t < scores.size(); ++t) v += scores[t] * double(values[t][j]);
    out[j] = float(v / total);
  }
}

double dot_reference(const float* a, const float* b, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += double(a[j]) * double(b[j]);
  return s;
}

}  // namespace

void write_latent_cache(const float* latent, const int64_t* slot_mapping, int64_t num_tokens,
                        const LatentCache& cache) {
  const int64_t td = cache.token_dim();
  for (int64_t i = 0; i < num_tokens; ++i) {
    if (slot_mapping[i] < 0) continue;  // padding token: nothing to store
    std::memcpy(cache.slot(slot_mapping[i]), latent + i * td, size_t(td) * sizeof(float));
  }
}

void mla_attention_absorbed(const MlaAbsorbedParams& p) {
  const auto items = query_items(p.sequences, p.num_sequences,
                                 [](const AttentionSequence& s) { return s.query_len; });
  const int64_t n_items = int64_t(items.size());
  const bool avx2 = selected_isa() >= CpuIsa::Avx2;
#pragma omp parallel if (n_items > 1)
  {
    OnlineSoftmax st(p.heads, p.cache.kv_lora_rank, p.cache.block_size);
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < n_items; ++k) {
      const AttentionSequence& seq = p.sequences[items[size_t(k)].first];
      if (avx2) {
        absorbed_token_avx2(p, seq, items[size_t(k)].second, st);
      } else {
        absorbed_token_plain(p, seq, items[size_t(k)].second, st);
      }
    }
  }
}

void mla_attention_absorbed_reference(const MlaAbsorbedParams& p) {
  const LatentCache& c = p.cache;
  const int64_t R = c.kv_lora_rank, E = c.rope_dim, H = p.heads;
  for (int32_t s = 0; s < p.num_sequences; ++s) {
    const AttentionSequence& seq = p.sequences[s];
    for (int32_t i = 0; i < seq.query_len; ++i) {
      const int64_t row = seq.query_start + i;
      const int64_t pos = int64_t(seq.context_len) - seq.query_len + i;
      std::vector<const float*> rows;
      for (int64_t t = 0; t <= pos; ++t) {
        const int64_t block = seq.block_table[t / c.block_size];
        rows.push_back(c.slot(block * c.block_size + t % c.block_size));
      }
      for (int64_t h = 0; h < H; ++h) {
        const float* ql = p.q_latent + (row * H + h) * R;
        const float* qr = p.q_rope + (row * H + h) * E;
        std::vector<double> scores;
        for (const float* r : rows) {
          scores.push_back((dot_reference(ql, r, R) + dot_reference(qr, r + R, E)) *
                           double(p.softmax_scale));
        }
        weighted_sum_reference(scores, rows, R, p.out_latent + (row * H + h) * R);
      }
    }
  }
}

void attention_varlen(const AttentionParams& p) {
  const auto items = query_items(p.sequences, p.num_sequences,
                                 [](const VarlenSequence& s) { return s.q_len; });
  const int64_t n_items = int64_t(items.size()), H = p.heads;
  const int64_t Dq = p.head_dim_qk, Dv = p.head_dim_v;
#pragma omp parallel if (n_items > 1)
  {
    std::vector<float> scores;
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int64_t k = 0; k < n_items; ++k) {
      for (int64_t h = 0; h < H; ++h) {
        const VarlenSequence& seq = p.sequences[items[size_t(k)].first];
        const int64_t i = items[size_t(k)].second;
        const int64_t row = seq.q_start + i;
        const int64_t n_keys = int64_t(seq.kv_len) - seq.q_len + i + 1;
        const float* q = p.q + (row * H + h) * Dq;
        scores.resize(size_t(std::max<int64_t>(n_keys, 0)));
        float m = kNegInf;
        for (int64_t t = 0; t < n_keys; ++t) {
          const float s = dot(q, p.k + ((seq.kv_start + t) * H + h) * Dq, Dq) * p.softmax_scale;
          scores[size_t(t)] = s;
          m = std::max(m, s);
        }
        float* out = p.out + (row * H + h) * Dv;
        std::fill(out, out + Dv, 0.0f);
        float total = 0.0f;
        for (int64_t t = 0; t < n_keys; ++t) {
          const float w = std::exp(scores[size_t(t)] - m);
          total += w;
          axpy(w, p.v + ((seq.kv_start + t) * H + h) * Dv, out, Dv);
        }
        const float inv = 1.0f / total;
        for (int64_t j = 0; j < Dv; ++j) out[j] *= inv;
      }
    }
  }
}

void attention_varlen_reference(const AttentionParams& p) {
  const int64_t H = p.heads, Dq = p.head_dim_qk, Dv = p.head_dim_v;
  for (int32_t s = 0; s < p.num_sequences; ++s) {
    const VarlenSequence& seq = p.sequences[s];
    for (int64_t i = 0; i < seq.q_len; ++i) {
      const int64_t row = seq.q_start + i;
      const int64_t last = int64_t(seq.kv_len) - seq.q_len + i;
      for (int64_t h = 0; h < H; ++h) {
        const float* q = p.q + (row * H + h) * Dq;
        std::vector<double> scores;
        std::vector<const float*> values;
        for (int64_t t = 0; t <= last; ++t) {
          const int64_t kv = seq.kv_start + t;
          scores.push_back(dot_reference(q, p.k + (kv * H + h) * Dq, Dq) * double(p.softmax_scale));
          values.push_back(p.v + (kv * H + h) * Dv);
        }
        weighted_sum_reference(scores, values, Dv, p.out + (row * H + h) * Dv);
      }
    }
  }
}

}  // namespace latentserve::kernels::cpu
