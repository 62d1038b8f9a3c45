// Private to the matmul kernels: the prefill tile shared by the scalar, AVX2 and AVX-512 variants.
// Many rows of x reuse every weight row, so the work is compute-bound once the weights are widened:
// per k-block the tile widens a panel of weight rows to FP32 once (block scales folded in) and
// copies the matching x rows beside it, both in the chunk layout below, into per-thread buffers that
// stay in L1/L2. An MR × NR register micro kernel then runs over every (x rows, weight rows) pair
// of the panels without masks or conversions. Vector accumulators persist across k-blocks in a
// third buffer, so each (row, column) sums its chunks in the same order as the decode loop of
// matmul_tiles.h and gets the same bits (batch invariance, matmul_internal.h).
//
// Everything is in an anonymous namespace: this header is compiled once per instruction set.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "kernels/cpu/matmul_internal.h"

namespace latentserve::kernels::cpu::detail {
namespace {

// A loader whose lines (two vectors) hold a run of 2 kW weights as its even elements, then its odd
// ones: x is packed in the same order and a line is the unit of the chunk order (matmul_internal.h).
template <class Wt>
concept EvenOddLoader = requires { requires Wt::kEvenOdd; };

// x[k0, k1) of one row in even/odd order (k0 a multiple of kLine): line l at out + l * kLine, the
// last one zero-padded to a whole line.
template <class Wt, int64_t kLine>
void pack_x_lines(const float* row, int64_t k0, int64_t k1, float* out) {
  for (int64_t k = k0; k < k1; k += kLine)
    Wt::pack_x_line(row + k, static_cast<int>(std::min<int64_t>(kLine, k1 - k)), out + (k - k0));
}

// The chunks of one row: runs of at most kW consecutive k, restarting at every segment (an FP8
// scale block; the whole row for other dtypes), the last chunk of a segment possibly short.
struct ChunkMap {
  int64_t cols, seg, per_seg, count;

  ChunkMap(int64_t cols_, int64_t seg_, int kW)
      : cols(cols_), seg(seg_), per_seg((seg_ + kW - 1) / kW),
        count((cols_ / seg_) * per_seg + (cols_ % seg_ + kW - 1) / kW) {}
};

// Walks the chunks of a ChunkMap in order, from any starting chunk.
struct ChunkCursor {
  int64_t segment, start, len;  // scale column, first k, number of k (≤ kW)

  ChunkCursor(const ChunkMap& map, int64_t c, int kW) : segment(c / map.per_seg) {
    start = segment * map.seg + (c % map.per_seg) * kW;
    set_len(map, kW);
  }
  void next(const ChunkMap& map, int kW) {
    start += kW;
    if (start >= std::min(map.cols, (segment + 1) * map.seg)) start = ++segment * map.seg;
    set_len(map, kW);
  }
  void set_len(const ChunkMap& map, int kW) {
    const int64_t end = std::min(map.cols, (segment + 1) * map.seg);
    len = std::min<int64_t>(kW, end - start);
  }
};

// Per-thread buffers of FP32, 64-byte aligned, kept between calls (sizes are fixed per Isa).
struct Scratch {
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> mem;
  size_t size = 0;

  float* get(size_t floats) {
    if (floats > size) {
      mem.reset(static_cast<float*>(std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
      size = floats;
    }
    return mem.get();
  }
};

// One micro tile's operands for one k-block. acc holds each (x row, weight row) pair's vector
// accumulator between k-blocks: [x row][weight row][kW], x-row stride acc_ld weight rows.
struct MicroArgs {
  const float* x;  // chunk c of row i at x + i * x_ld + c * kW
  int64_t x_ld;
  const float* w;  // chunk c of weight row j at w + j * w_ld + c * kW
  int64_t w_ld;
  int64_t chunks;
  float* acc;
  int64_t acc_ld;
  bool first, last;  // start from zero / reduce into y
  float* y;          // y[i, j] at y + i * ldy + j
  int64_t ldy;
};

template <class Isa, int MR, int NR>
inline void packed_micro(const MicroArgs& p) {
  using Vec = typename Isa::Vec;
  constexpr int kW = Isa::kWidth;
  const float* xp = p.x;
  const float* wp = p.w;
  const int64_t x_ld = p.x_ld, w_ld = p.w_ld;
  Vec a[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) a[i][j] = p.first ? Isa::zero() : Isa::load_x(p.acc + (i * p.acc_ld + j) * kW);
  for (int64_t c = 0; c < p.chunks; ++c) {
    Vec wv[NR];
    for (int j = 0; j < NR; ++j) wv[j] = Isa::load_x(wp + j * w_ld + c * kW);
    for (int i = 0; i < MR; ++i) {
      const Vec xv = Isa::in_register(Isa::load_x(xp + i * x_ld + c * kW));
      for (int j = 0; j < NR; ++j) a[i][j] = Isa::fma(xv, wv[j], a[i][j]);
    }
  }
  if (p.last) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) p.y[i * p.ldy + j] = Isa::sum(a[i][j]);
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) Isa::store(p.acc + (i * p.acc_ld + j) * kW, a[i][j]);
  }
}

// The panels of one k-block: rows × chunks × kW floats, chunk c of row r at (r * ld + c) * kW.
template <class Isa, class Wt>
void pack_weights(const WeightMatrix& w, const ChunkMap& map, int64_t c0, int64_t chunks, int64_t n0,
                  int64_t n1, float* panel, int64_t ld) {
  using E = typename Wt::Elem;
  constexpr int kW = Isa::kWidth;
  const int64_t scale_cols = Wt::kBlockScaled ? w.scale_cols() : 0;
  for (int64_t n = n0; n < n1; ++n) {
    const E* row = static_cast<const E*>(w.data) + n * w.cols;
    float* out = panel + (n - n0) * ld * kW;
    ChunkCursor cur(map, c0, kW);
    for (int64_t c = 0; c < chunks; ++c, cur.next(map, kW)) {
      // The row is read in k-block bursts far apart in memory: fetch the next burst ahead.
      if constexpr (Isa::kPrefetch) Isa::prefetch(row + cur.start + ld * kW);
      auto v = cur.len == kW ? Wt::load(row + cur.start) : Wt::load_part(row + cur.start, int(cur.len));
      if constexpr (Wt::kBlockScaled) {
        const float s = w.scale_inv[(n / w.block_rows) * scale_cols + cur.segment];
        v = Isa::mul(v, Isa::set1(s * Wt::kScaleFactor));
      }
      Isa::store(out + c * kW, v);
    }
  }
}

// Even/odd loaders: chunks 2l and 2l + 1 are the even and odd elements of line l (2 kW weights,
// the last one zero-padded); c0 and chunks are even.
template <class Isa, class Wt>
void pack_weights_even_odd(const WeightMatrix& w, int64_t c0, int64_t chunks, int64_t n0, int64_t n1,
                           float* panel, int64_t ld) {
  using E = typename Wt::Elem;
  constexpr int kW = Isa::kWidth;
  for (int64_t n = n0; n < n1; ++n) {
    const E* row = static_cast<const E*>(w.data) + n * w.cols;
    float* out = panel + (n - n0) * ld * kW;
    for (int64_t c = 0; c < chunks; c += 2) {
      const int64_t k = (c0 + c) * kW;
      if constexpr (Isa::kPrefetch) Isa::prefetch(row + k + ld * kW);
      typename Isa::Vec v[2];
      if (k + 2 * kW <= w.cols) {
        Wt::load_line(row + k, v);
      } else {
        Wt::load_line_part(row + k, static_cast<int>(w.cols - k), v);
      }
      Isa::store(out + c * kW, v[0]);
      Isa::store(out + (c + 1) * kW, v[1]);
    }
  }
}

// x's rows in chunk layout. Packing (rather than reading x in place) also keeps the MR rows a
// micro tile reads from landing on the same L1 sets when ldx is a multiple of 4 KiB.
template <class Isa, class Wt>
void pack_x(const MatmulBlock& b, const ChunkMap& map, int64_t c0, int64_t chunks, float* panel,
            int64_t ld) {
  constexpr int kW = Isa::kWidth;
  if constexpr (EvenOddLoader<Wt>) {
    const int64_t k0 = c0 * kW, k1 = std::min(map.cols, (c0 + chunks) * kW);
    for (int64_t i = 0; i < b.m; ++i) pack_x_lines<Wt, 2 * kW>(b.x + i * b.ldx, k0, k1, panel + i * ld * kW);
    return;
  }
  const bool contiguous = map.seg % kW == 0 && (c0 + chunks) * kW <= map.cols;
  for (int64_t i = 0; i < b.m; ++i) {
    const float* row = b.x + i * b.ldx;
    float* out = panel + i * ld * kW;
    if (contiguous) {  // chunk c is x[c kW, c kW + kW): a plain copy
      std::memcpy(out, row + c0 * kW, size_t(chunks * kW) * sizeof(float));
      continue;
    }
    ChunkCursor cur(map, c0, kW);
    for (int64_t c = 0; c < chunks; ++c, cur.next(map, kW)) {
      const auto v = cur.len == kW ? Isa::load_x(row + cur.start) : Isa::load_x_part(row + cur.start, int(cur.len));
      Isa::store(out + c * kW, v);
    }
  }
}

// Exactly `rows` (< MR) rows of x, or exactly `cols` (< NR) weight rows: the ragged edges of a tile.
template <class Isa, int MR, int NR>
inline void packed_micro_edge(int64_t rows, int64_t cols, const MicroArgs& p) {
  if constexpr (MR > 0 && NR > 0) {
    if (rows < MR) return packed_micro_edge<Isa, MR - 1, NR>(rows, cols, p);
    if (cols < NR) return packed_micro_edge<Isa, MR, NR - 1>(rows, cols, p);
    packed_micro<Isa, MR, NR>(p);
  }
}

// One prefill tile: b.m ≤ kPrefillRows rows of x against weight rows [b.n0, b.n1), at most
// kPrefillWeightRows of them. Isa::kPrefillChunks chunks form one k-block.
template <class Isa, class Wt>
void prefill_typed(const WeightMatrix& w, const MatmulBlock& b) {
  constexpr int kW = Isa::kWidth, MR = Isa::kPrefillMR, NR = Isa::kPrefillNR;
  constexpr int64_t KC = Isa::kPrefillChunks, kPanel = KC * kW;
  static_assert(KC % 2 == 0, "k-blocks hold whole even/odd lines");
  const ChunkMap map(w.cols, Wt::kBlockScaled ? w.block_cols : w.cols, kW);
  // Even/odd loaders: two chunks per line of 2 kW weights, the last line's both even if short.
  const int64_t count = EvenOddLoader<Wt> ? 2 * ((w.cols + 2 * kW - 1) / (2 * kW)) : map.count;
  const int64_t nw = b.n1 - b.n0;
  thread_local Scratch scratch;
  float* wpanel = scratch.get(size_t((kPrefillWeightRows + kPrefillRows) * kPanel +
                                     kPrefillRows * kPrefillWeightRows * kW));
  float* xpanel = wpanel + kPrefillWeightRows * kPanel;
  float* acc = xpanel + kPrefillRows * kPanel;
  for (int64_t c0 = 0; c0 < count; c0 += KC) {
    const int64_t chunks = std::min(KC, count - c0);
    if constexpr (EvenOddLoader<Wt>) {
      pack_weights_even_odd<Isa, Wt>(w, c0, chunks, b.n0, b.n1, wpanel, KC);
    } else {
      pack_weights<Isa, Wt>(w, map, c0, chunks, b.n0, b.n1, wpanel, KC);
    }
    pack_x<Isa, Wt>(b, map, c0, chunks, xpanel, KC);
    MicroArgs p{nullptr, kPanel, nullptr, kPanel, chunks, nullptr, kPrefillWeightRows,
                c0 == 0, c0 + KC >= count, nullptr, b.ldy};
    for (int64_t i = 0; i < b.m; i += MR) {
      p.x = xpanel + i * kPanel;
      for (int64_t j = 0; j < nw; j += NR) {
        p.w = wpanel + j * kPanel;
        p.acc = acc + (i * kPrefillWeightRows + j) * kW;
        p.y = b.y + i * b.ldy + b.n0 + j;
        if (i + MR <= b.m && j + NR <= nw) {
          packed_micro<Isa, MR, NR>(p);
        } else {
          packed_micro_edge<Isa, MR, NR>(std::min<int64_t>(MR, b.m - i), std::min<int64_t>(NR, nw - j), p);
        }
      }
    }
  }
}

template <class Isa, template <DType> class Loader>
void prefill_dispatch(const WeightMatrix& w, const MatmulBlock& b) {
  switch (w.dtype) {
    case DType::F32: return prefill_typed<Isa, Loader<DType::F32>>(w, b);
    case DType::BF16: return prefill_typed<Isa, Loader<DType::BF16>>(w, b);
    case DType::F16: return prefill_typed<Isa, Loader<DType::F16>>(w, b);
    case DType::F8_E4M3: return prefill_typed<Isa, Loader<DType::F8_E4M3>>(w, b);
    default: return;  // matmul() rejects other dtypes before any block runs
  }
}

}  // namespace
}  // namespace latentserve::kernels::cpu::detail
