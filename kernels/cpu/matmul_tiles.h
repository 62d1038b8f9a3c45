// Private to the matmul kernels: the decode loop shared by the scalar, AVX2 and AVX-512 variants.
// Each variant supplies an `Isa` (vector type, loads of x, fma, horizontal sum) and one weight loader
// per dtype; this header supplies the loop nest. Prefill tiles live in matmul_packed.h.
//
// Shape: a micro tile computes MR rows of x against NR rows of W over one k-block. Both are
// contiguous along k, so each step loads MR vectors of x and NR vectors of W (widened to FP32) and
// does MR×NR fmas into MR×NR vector accumulators, parked between k-blocks and reduced horizontally
// once at the end of the row. Decode runs micro tiles with all m ≤ 8 rows of x (two halves for up
// to 16): every weight element is read from memory once, x's block stays in L1, and W streams
// through at memory speed. Even/odd loaders (BF16 on AVX-512) split each weight line into its even
// and odd elements and run line_tile, which reads x from a copy packed in that order, one per
// thread per call.
//
// FP8 weights: the block scale is folded into the converted weight vector (one multiply per weight
// vector, shared by MR rows of x), so accumulators run across scale blocks without extra registers.
// The chunk order and the per-lane arithmetic are exactly those of matmul_packed.h (see the batch
// invariance note in matmul_internal.h).
//
// Everything is in an anonymous namespace: this header is compiled once per instruction set, and
// the copies must not be merged by the linker.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>

#include "kernels/cpu/matmul_internal.h"
#include "kernels/cpu/matmul_packed.h"

namespace latentserve::kernels::cpu::detail {
namespace {

// Where a micro tile's accumulators live between k-blocks, and what to do with them.
struct TileState {
  float* acc;  // MR × NR × kWidth floats, [i][j][lane]
  bool first;  // start from zero instead of acc
  bool last;   // reduce into y instead of storing to acc
};

// Weight elements per 64-byte cache line (at least one vector): the main loop's step, so each
// weight row gets one prefetch per line and a loader may widen a whole line at once.
template <class Isa, class Wt>
constexpr int64_t line_elems() {
  constexpr int64_t per_line = 64 / int64_t(sizeof(typename Wt::Elem));
  return per_line > Isa::kWidth ? per_line : Isa::kWidth;
}

// A loader may widen a whole cache line at once (fewer, wider operations than one vector at a
// time): load_line(p, out) writes line_elems / kWidth vectors and returns nonzero when the line
// holds a NaN code it did not widen to NaN; the caller then makes the row's results NaN.
template <class Isa, class Wt>
concept LineLoader = requires(const typename Wt::Elem* p, typename Isa::Vec* out) {
  { Wt::load_line(p, out) } -> std::convertible_to<uint64_t>;
};

// A line loader may also widen half a line at a time (two vectors), for tiles whose accumulators
// leave no room for a whole line's vectors per weight row: widen_half(p) does the integer steps
// for 2·kWidth elements, half_vector(h, v) converts vector v of them, nan_codes(p) is load_line's
// NaN report for the line at p.
template <class Isa, class Wt>
concept HalfLineLoader = LineLoader<Isa, Wt> && requires(const typename Wt::Elem* p, typename Wt::Half h) {
  { Wt::widen_half(p) } -> std::same_as<typename Wt::Half>;
  { Wt::half_vector(h, 0) } -> std::same_as<typename Isa::Vec>;
  { Wt::nan_codes(p) } -> std::convertible_to<uint64_t>;
};

// Prefetches the element `offset` elements after p. The target may lie outside the matrix (the
// walk's next rows at a slab's edge), so the address is formed as an integer: a prefetch never faults.
template <class Isa, class E>
inline void prefetch_at(const E* p, int64_t offset) {
  Isa::prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + uintptr_t(offset) * sizeof(E)));
}

// A micro tile's MR × NR vector accumulators: zero at a row's first k-block, else reloaded from
// where the previous k-block parked them.
template <class Isa, int MR, int NR>
inline void start_tile(typename Isa::Vec (&acc)[MR][NR], TileState st) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = st.first ? Isa::zero() : Isa::load_x(st.acc + (i * NR + j) * Isa::kWidth);
}

// After a k-block: parks the accumulators, or after the row's last one reduces each into y[i, j].
template <class Isa, int MR, int NR>
inline void finish_tile(typename Isa::Vec (&acc)[MR][NR], TileState st, float* y, int64_t ldy) {
  if (st.last) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) y[i * ldy + j] = Isa::sum(acc[i][j]);
  } else {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) Isa::store(st.acc + (i * NR + j) * Isa::kWidth, acc[i][j]);
  }
}

// MR rows of x against weight rows [n, n + NR) over k in [ka, kb). For FP8, ka is a multiple of
// block_cols; otherwise ka is a multiple of kWidth and only the row's end may be ragged.
// prefetch: offset in elements from each weight element read to the one to prefetch beside it
// (0 for none); decode_typed points it at the weights its walk reads next.
template <class Isa, class Wt, int MR, int NR>
inline void micro_tile(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n, int64_t ka,
                       int64_t kb, int64_t prefetch, TileState st, float* y, int64_t ldy) {
  using Vec = typename Isa::Vec;
  using E = typename Wt::Elem;
  constexpr int kW = Isa::kWidth;
  constexpr int64_t kLine = line_elems<Isa, Wt>();
  constexpr int kLineVecs = int(kLine / kW);
  // Whole lines pay while few rows of x share each weight vector; with more, the fmas dominate and
  // a line's worth of widened vectors crowds the accumulators out of registers (measured slower
  // for FP8 at m = 8).
  constexpr bool kWholeLines = LineLoader<Isa, Wt> && MR <= 4;
  static_assert(!EvenOddLoader<Wt>, "even/odd loaders run line_tile");
  const int64_t cols = w.cols;
  const E* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = static_cast<const E*>(w.data) + (n + j) * cols;
  const float* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = x + i * ldx;

  Vec acc[MR][NR];
  start_tile<Isa, MR, NR>(acc, st);
  uint64_t poisoned[NR] = {};

  // Non-scaled dtypes run the whole range as one segment; FP8 runs one segment per scale block.
  const int64_t segment = Wt::kBlockScaled ? w.block_cols : kb - ka;
  const int64_t scale_cols = Wt::kBlockScaled ? w.scale_cols() : 0;
  for (int64_t k0 = ka; k0 < kb; k0 += segment) {
    const int64_t k1 = k0 + segment < kb ? k0 + segment : kb;
    Vec scale[NR];
    if constexpr (Wt::kBlockScaled) {
      for (int j = 0; j < NR; ++j) {
        const float s = w.scale_inv[((n + j) / w.block_rows) * scale_cols + k0 / w.block_cols];
        scale[j] = Isa::set1(s * Wt::kScaleFactor);
      }
    }
    // One chunk: weight vector j at wv[j * stride], scaled, against all MR rows of x at k.
    auto step = [&](int64_t k, Vec* wv, int stride) __attribute__((always_inline)) {
      if constexpr (Wt::kBlockScaled) {
        for (int j = 0; j < NR; ++j) wv[j * stride] = Isa::mul(wv[j * stride], scale[j]);
      }
      for (int i = 0; i < MR; ++i) {
        const Vec xv = Isa::in_register(Isa::load_x(xr[i] + k));
        for (int j = 0; j < NR; ++j) acc[i][j] = Isa::fma(xv, wv[j * stride], acc[i][j]);
      }
    };
    // Whole cache lines, then whole vectors, then the ragged end: the same chunks in the same
    // order as a vector-at-a-time loop, so the split changes no result.
    int64_t k = k0;
    for (; k + kLine <= k1; k += kLine) {
      if constexpr (kWholeLines) {
        Vec wv[NR * kLineVecs];  // [j][v]
        for (int j = 0; j < NR; ++j) {
          if constexpr (Isa::kPrefetch) {
            if (prefetch) prefetch_at<Isa>(wr[j] + k, prefetch);
          }
          poisoned[j] |= Wt::load_line(wr[j] + k, wv + j * kLineVecs);
        }
        for (int v = 0; v < kLineVecs; ++v) step(k + v * kW, wv + v, kLineVecs);
      } else if constexpr (HalfLineLoader<Isa, Wt> && kLineVecs == 4) {
        // Half a line per weight row at a time: NR half lines plus NR vectors beside MR × NR
        // accumulators, where a whole line's four vectors per row would not fit.
        for (int j = 0; j < NR; ++j) {
          if constexpr (Isa::kPrefetch) {
            if (prefetch) prefetch_at<Isa>(wr[j] + k, prefetch);
          }
          poisoned[j] |= Wt::nan_codes(wr[j] + k);
        }
        for (int half = 0; half < 2; ++half) {
          typename Wt::Half h[NR];
          for (int j = 0; j < NR; ++j) h[j] = Wt::widen_half(wr[j] + k + half * 2 * kW);
          for (int v = 0; v < 2; ++v) {
            Vec wv[NR];
            for (int j = 0; j < NR; ++j) wv[j] = Wt::half_vector(h[j], v);
            step(k + (2 * half + v) * kW, wv, 1);
          }
        }
      } else {
        for (int v = 0; v < kLineVecs; ++v) {
          Vec wv[NR];
          for (int j = 0; j < NR; ++j) {
            // Every vector, though one per line would do: measured faster for k-blocked decode.
            if constexpr (Isa::kPrefetch) {
              if (prefetch) prefetch_at<Isa>(wr[j] + k + v * kW, prefetch);
            }
            wv[j] = Wt::load(wr[j] + k + v * kW);
          }
          step(k + v * kW, wv, 1);
        }
      }
    }
    for (; k + kW <= k1; k += kW) {
      Vec wv[NR];
      for (int j = 0; j < NR; ++j) {
        wv[j] = Wt::load(wr[j] + k);
        if constexpr (Wt::kBlockScaled) wv[j] = Isa::mul(wv[j], scale[j]);
      }
      for (int i = 0; i < MR; ++i) {
        const Vec xv = Isa::in_register(Isa::load_x(xr[i] + k));
        for (int j = 0; j < NR; ++j) acc[i][j] = Isa::fma(xv, wv[j], acc[i][j]);
      }
    }
    if (k < k1) {  // ragged end of the row or of a scale block: partial loads, zeros beyond
      const int rest = static_cast<int>(k1 - k);
      Vec wv[NR];
      for (int j = 0; j < NR; ++j) {
        wv[j] = Wt::load_part(wr[j] + k, rest);
        if constexpr (Wt::kBlockScaled) wv[j] = Isa::mul(wv[j], scale[j]);
      }
      for (int i = 0; i < MR; ++i) {
        const Vec xv = Isa::load_x_part(xr[i] + k, rest);
        for (int j = 0; j < NR; ++j) acc[i][j] = Isa::fma(xv, wv[j], acc[i][j]);
      }
    }
  }
  for (int j = 0; j < NR; ++j) {
    if (poisoned[j]) {
      for (int i = 0; i < MR; ++i) acc[i][j] = Isa::set1(__builtin_nanf(""));
    }
  }
  finish_tile<Isa, MR, NR>(acc, st, y + n, ldy);
}

// Even/odd loaders (BF16 on AVX-512): MR rows of x against weight rows [n, n + NR) over k in
// [ka, kb), ka a multiple of the line. x comes packed a line at a time for all MR rows together
// (decode_loader): row i's line l at x + (l * MR + i) * kLine, its even elements then its odd ones,
// the last line zero-padded. One pointer walks x at constant offsets, which leaves the general
// registers to the weight rows: with a pointer per row of x GCC spilled an accumulator at MR = 8.
// Each lane adds x_even · w_even, then x_odd · w_odd, line after line (matmul_internal.h).
template <class Isa, class Wt, int MR, int NR>
inline void line_tile(const WeightMatrix& w, const float* x, int64_t n, int64_t ka, int64_t kb,
                      int64_t prefetch, TileState st, float* y, int64_t ldy) {
  using Vec = typename Isa::Vec;
  using E = typename Wt::Elem;
  constexpr int kW = Isa::kWidth;
  constexpr int64_t kLine = 2 * kW;
  const int64_t cols = w.cols;
  const E* w0 = static_cast<const E*>(w.data) + n * cols;
  const float* xl = x + ka / kLine * MR * kLine;
  Vec acc[MR][NR];
  start_tile<Isa, MR, NR>(acc, st);
  // One half-line: weight vector j at wv[j] against the MR rows' matching x vectors at xv.
  auto step = [&](const Vec* wv, const float* xv) __attribute__((always_inline)) {
    for (int i = 0; i < MR; ++i) {
      const Vec xi = Isa::in_register(Isa::load_x(xv + i * kLine));
      for (int j = 0; j < NR; ++j) acc[i][j] = Isa::fma(xi, wv[j], acc[i][j]);
    }
  };
  int64_t k = ka;
  for (; k + kLine <= kb; k += kLine, xl += MR * kLine) {
    // The odd halves are widened only after the even ones are used: holding both for NR rows
    // crowds the accumulators out of registers at MR = 8.
    Vec wv[NR];
    for (int j = 0; j < NR; ++j) {
      if constexpr (Isa::kPrefetch) {
        if (prefetch) prefetch_at<Isa>(w0 + j * cols + k, prefetch);
      }
      wv[j] = Wt::load_even(w0 + j * cols + k);
    }
    step(wv, xl);
    // Loaded again through an opaque pointer: GCC would otherwise keep the first load's register
    // alive across the even fmas and spill accumulators to make room.
    const E* again = w0 + k;
    asm("" : "+r"(again));
    for (int j = 0; j < NR; ++j) wv[j] = Wt::load_odd(again + j * cols);
    step(wv, xl + kW);
  }
  if (k < kb) {  // ragged end: a partial line against x's zero-padded one
    Vec even[NR], odd[NR];
    for (int j = 0; j < NR; ++j) {
      Vec line[2];
      Wt::load_line_part(w0 + j * cols + k, static_cast<int>(kb - k), line);
      even[j] = line[0];
      odd[j] = line[1];
    }
    step(even, xl);
    step(odd, xl + kW);
  }
  finish_tile<Isa, MR, NR>(acc, st, y + n, ldy);
}

// Decode: all m rows of x against NR weight rows at a time (Isa::decode_weight_rows(m) picks NR so
// the m × NR accumulators fit the register file), so W streams from memory exactly once and each
// weight vector is widened once for m fmas.
//
// A group of weight rows advances together one k-block at a time: x's block stays in L1 for every
// micro tile of the group, and the accumulators park in a small buffer between blocks. Long
// whole-row streams would instead re-read x from L2 beside the weight stream (measured 10-20 %
// slower at m = 2..8, and no faster at m = 1). Each micro tile prefetches, line for line, the
// weights the walk reads next: the next micro tile's rows at the same k, or after the group's last
// tile the first tile's rows one k-block on (then the next group's first k-block). Prefetching a
// row's own next k-block instead, which is read only after the rest of the group, measured
// 10-15 % slower at m = 2..8.
//
// More than kDecodeRows rows of x (up to twice that) split into two halves that share the walk:
// each micro tile runs the first half against its weight rows, then the second half against the
// same rows, now in L1. W still streams once; the halves' x blocks together stay within the L1
// budget of one half through smaller k-blocks.
constexpr int64_t kDecodeGroup = 12;
constexpr int64_t kDecodeKBlock = 512;
constexpr int64_t kDecodeSplitKBlock = 256;

template <class Isa, class Wt>
int64_t decode_k_block(const WeightMatrix& w, bool split) {
  int64_t kb = split ? kDecodeSplitKBlock : kDecodeKBlock;  // multiples of every line (32 BF16, 64 FP8)
  if constexpr (Wt::kBlockScaled) kb = std::max<int64_t>(1, kb / w.block_cols) * w.block_cols;
  return std::min(kb, w.cols);
}

// Where each half of x lives: even/odd loaders get x packed per half (decode_loader), the rest
// read b.x directly.
struct DecodeHalves {
  const float* x[2];
  int64_t ldx;
  float* y[2];
};

// Rows [0, MR) of x, then (MR2 > 0) rows [MR, MR + MR2), against every weight row of the block.
template <class Isa, class Wt, int MR, int MR2>
void decode_typed(const WeightMatrix& w, const MatmulBlock& b, const DecodeHalves& h) {
  constexpr int NR = Isa::decode_weight_rows(MR);
  constexpr int kW = Isa::kWidth;
  constexpr bool kSplit = MR2 > 0;
  static_assert(kDecodeGroup % NR == 0, "a group holds whole micro tiles");
  static_assert(MR2 <= MR, "the second half fits the first half's registers");
  alignas(64) float acc[kDecodeGroup * (MR + MR2) * kW];
  const int64_t kblock = decode_k_block<Isa, Wt>(w, kSplit);
  const int64_t cols = w.cols;
  for (int64_t g = b.n0; g < b.n1; g += kDecodeGroup) {
    const int64_t g1 = std::min(b.n1, g + kDecodeGroup);
    for (int64_t ka = 0; ka < cols; ka += kblock) {
      const int64_t kb = std::min(cols, ka + kblock);
      const bool first = ka == 0, last = kb == cols;
      // Where the walk goes after the group's last tile, as an offset from row g at column ka;
      // 0 (no prefetch) at the end of the thread's slab.
      const int64_t wrap = !last ? kblock : g1 < b.n1 ? (g1 - g) * cols - ka : 0;
      // The offset a micro tile prefetches at when it starts at row n and is `rows` tall.
      auto next = [&](int64_t n, int64_t rows) {
        if (n + rows < g1) return rows * cols;
        return wrap == 0 ? int64_t(0) : wrap - (n - g) * cols;
      };
      // Even/odd loaders read x packed line by line (decode_loader); the rest read it as given.
      auto tile = [&]<int M, int R>(int half, int64_t row, float* parked, int64_t prefetch)
                      __attribute__((always_inline)) {
        if constexpr (EvenOddLoader<Wt>)
          line_tile<Isa, Wt, M, R>(w, h.x[half], row, ka, kb, prefetch, {parked, first, last}, h.y[half], b.ldy);
        else
          micro_tile<Isa, Wt, M, R>(w, h.x[half], h.ldx, row, ka, kb, prefetch, {parked, first, last}, h.y[half], b.ldy);
      };
      auto tiles = [&]<int R>(int64_t row, float* parked) __attribute__((always_inline)) {
        tile.template operator()<MR, R>(0, row, parked, next(row, R));
        if constexpr (kSplit) tile.template operator()<MR2, R>(1, row, parked + MR * R * kW, 0);
      };
      int64_t n = g;
      float* a = acc;
      for (; n + NR <= g1; n += NR, a += (MR + MR2) * NR * kW) tiles.template operator()<NR>(n, a);
      for (; n < g1; ++n, a += (MR + MR2) * kW) tiles.template operator()<1>(n, a);
    }
  }
}

// Picks the instantiation for b.m rows: up to kDecodeRows in one half, beyond it two halves of
// ceil(m / 2) and floor(m / 2) rows.
template <class Isa, class Wt, int M>
void decode_rows(const WeightMatrix& w, const MatmulBlock& b, const DecodeHalves& h) {
  if constexpr (M > 0) {
    if (b.m == M) {
      if constexpr (M <= kDecodeRows) return decode_typed<Isa, Wt, M, 0>(w, b, h);
      else return decode_typed<Isa, Wt, (M + 1) / 2, M / 2>(w, b, h);
    }
    decode_rows<Isa, Wt, M - 1>(w, b, h);
  }
}

// How many rows of x each half holds.
inline int64_t first_half(int64_t m) { return m <= kDecodeRows ? m : (m + 1) / 2; }

// Even/odd loaders read x in their own order: each thread packs all of x once per call (m × k
// floats, small next to the weights it streams), a half at a time, line by line with the half's
// rows' lines side by side; line_tile reads the packed copy.
template <class Isa, class Wt>
void decode_loader(const WeightMatrix& w, const MatmulBlock& b) {
  const int64_t m0 = first_half(b.m);
  if constexpr (EvenOddLoader<Wt>) {
    constexpr int64_t kLine = line_elems<Isa, Wt>();
    const int64_t lines = (w.cols + kLine - 1) / kLine;
    thread_local Scratch scratch;
    float* packed = scratch.get(size_t(b.m * lines * kLine));
    float* half_x[2] = {packed, packed + m0 * lines * kLine};
    for (int half = 0; half < 2; ++half) {
      const int64_t r0 = half == 0 ? 0 : m0, rows = half == 0 ? m0 : b.m - m0;
      for (int64_t l = 0; l < lines; ++l) {
        const int len = static_cast<int>(std::min<int64_t>(kLine, w.cols - l * kLine));
        for (int64_t i = 0; i < rows; ++i)
          Wt::pack_x_line(b.x + (r0 + i) * b.ldx + l * kLine, len, half_x[half] + (l * rows + i) * kLine);
      }
    }
    decode_rows<Isa, Wt, kDecodeMaxRows>(w, b, DecodeHalves{{half_x[0], half_x[1]}, 0, {b.y, b.y + m0 * b.ldy}});
  } else {
    decode_rows<Isa, Wt, kDecodeMaxRows>(w, b, DecodeHalves{{b.x, b.x + m0 * b.ldx}, b.ldx, {b.y, b.y + m0 * b.ldy}});
  }
}

// Chooses the loader for w.dtype; `Loader` maps each dtype to its loader type.
template <class Isa, template <DType> class Loader>
void decode_dispatch(const WeightMatrix& w, const MatmulBlock& b) {
  switch (w.dtype) {
    case DType::F32: return decode_loader<Isa, Loader<DType::F32>>(w, b);
    case DType::BF16: return decode_loader<Isa, Loader<DType::BF16>>(w, b);
    case DType::F16: return decode_loader<Isa, Loader<DType::F16>>(w, b);
    case DType::F8_E4M3: return decode_loader<Isa, Loader<DType::F8_E4M3>>(w, b);
    default: return;  // matmul() rejects other dtypes before any block runs
  }
}

}  // namespace
}  // namespace latentserve::kernels::cpu::detail
