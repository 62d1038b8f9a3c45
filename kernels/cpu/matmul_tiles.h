// Private to the matmul kernels: the register-tiled dot-product loop shared by the scalar, AVX2 and
// AVX-512 variants. Each variant supplies an `Isa` (vector type, loads of x, fma, horizontal sum) and
// one weight loader per dtype; this header supplies the loop nest.
//
// Shape: a micro tile computes MR rows of x against NR rows of W. Both are contiguous along k, so
// each step loads MR vectors of x and NR vectors of W (converted to FP32) and does MR×NR fmas into
// MR×NR vector accumulators, reduced horizontally once at the end. Every weight element loaded from
// memory is used MR times (prefill: compute-bound) and every x element NR times; for decode (m ≤ 8)
// the whole of x stays in L1/L2 and W streams through once, which is the memory-bound optimum.
//
// FP8 weights: the block scale is folded into the converted weight vector (one multiply per weight
// vector, shared by MR rows of x), so accumulators run across scale blocks without extra registers.
//
// Everything is in an anonymous namespace: this header is compiled once per instruction set, and
// the copies must not be merged by the linker.
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul_internal.h"

namespace latentserve::kernels::cpu::detail {
namespace {

template <class Isa, class Wt, int MR, int NR>
inline void micro_tile(const WeightMatrix& w, const float* x, int64_t ldx, int64_t n, float* y,
                       int64_t ldy) {
  using Vec = typename Isa::Vec;
  using E = typename Wt::Elem;
  constexpr int kW = Isa::kWidth;
  const int64_t cols = w.cols;
  const E* wr[NR];
  for (int j = 0; j < NR; ++j) wr[j] = static_cast<const E*>(w.data) + (n + j) * cols;
  const float* xr[MR];
  for (int i = 0; i < MR; ++i) xr[i] = x + i * ldx;

  Vec acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = Isa::zero();

  // Non-scaled dtypes run the whole row as one segment; FP8 runs one segment per scale block.
  const int64_t segment = Wt::kBlockScaled ? w.block_cols : cols;
  const int64_t scale_cols = Wt::kBlockScaled ? (cols + w.block_cols - 1) / w.block_cols : 0;
  for (int64_t k0 = 0; k0 < cols; k0 += segment) {
    const int64_t k1 = k0 + segment < cols ? k0 + segment : cols;
    Vec scale[NR];
    if constexpr (Wt::kBlockScaled) {
      for (int j = 0; j < NR; ++j) {
        const float s = w.scale_inv[((n + j) / w.block_rows) * scale_cols + k0 / w.block_cols];
        scale[j] = Isa::set1(s * Wt::kScaleFactor);
      }
    }
    int64_t k = k0;
    for (; k + kW <= k1; k += kW) {
      Vec wv[NR];
      for (int j = 0; j < NR; ++j) {
        wv[j] = Wt::load(wr[j] + k);
        if constexpr (Wt::kBlockScaled) wv[j] = Isa::mul(wv[j], scale[j]);
      }
      for (int i = 0; i < MR; ++i) {
        const Vec xv = Isa::load_x(xr[i] + k);
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
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) y[i * ldy + n + j] = Isa::sum(acc[i][j]);
}

// The last rows of x when m is not a multiple of MR: picks the micro tile with exactly `rows` rows.
template <class Isa, class Wt, int R, int NR>
inline void micro_tile_rows(int64_t rows, const WeightMatrix& w, const float* x, int64_t ldx,
                            int64_t n, float* y, int64_t ldy) {
  if constexpr (R > 0) {
    if (rows == R) return micro_tile<Isa, Wt, R, NR>(w, x, ldx, n, y, ldy);
    micro_tile_rows<Isa, Wt, R - 1, NR>(rows, w, x, ldx, n, y, ldy);
  }
}

// All rows of x against NR rows of W starting at n. The NR weight rows stay in L1 while x passes.
template <class Isa, class Wt, int MR, int NR>
inline void weight_group(const WeightMatrix& w, const MatmulBlock& b, int64_t n) {
  int64_t i = 0;
  for (; i + MR <= b.m; i += MR) micro_tile<Isa, Wt, MR, NR>(w, b.x + i * b.ldx, b.ldx, n, b.y + i * b.ldy, b.ldy);
  if (i < b.m)
    micro_tile_rows<Isa, Wt, MR - 1, NR>(b.m - i, w, b.x + i * b.ldx, b.ldx, n, b.y + i * b.ldy, b.ldy);
}

template <class Isa, class Wt, int MR, int NR>
void matmul_block_typed(const WeightMatrix& w, const MatmulBlock& b) {
  int64_t n = b.n0;
  for (; n + NR <= b.n1; n += NR) weight_group<Isa, Wt, MR, NR>(w, b, n);
  for (; n < b.n1; ++n) weight_group<Isa, Wt, MR, 1>(w, b, n);
}

// Chooses the loader for w.dtype. `Loaders` maps each dtype to its loader type.
template <class Isa, template <DType> class Loader, int MR, int NR>
void matmul_block_dispatch(const WeightMatrix& w, const MatmulBlock& b) {
  switch (w.dtype) {
    case DType::F32: return matmul_block_typed<Isa, Loader<DType::F32>, MR, NR>(w, b);
    case DType::BF16: return matmul_block_typed<Isa, Loader<DType::BF16>, MR, NR>(w, b);
    case DType::F16: return matmul_block_typed<Isa, Loader<DType::F16>, MR, NR>(w, b);
    case DType::F8_E4M3: return matmul_block_typed<Isa, Loader<DType::F8_E4M3>, MR, NR>(w, b);
    default: return;  // matmul() rejects other dtypes before any block runs
  }
}

}  // namespace
}  // namespace latentserve::kernels::cpu::detail
