// Private to the matmul kernels: the two block routines every instruction-set variant implements.
// matmul.cpp splits the work across threads and hands each thread blocks of these shapes.
//
// Batch invariance: y[i, n] must not depend on how many rows of x share the call, because the
// engine's greedy outputs must be the same whether a request runs alone or batched. Every routine
// of one instruction set therefore computes y[i, n] the same way: one vector accumulator whose
// lane l sums x[i, k] * W[n, k] (a fused multiply-add per chunk) over the chunks of the row in
// increasing k order, then one horizontal sum of fixed shape. Chunks are kWidth-long runs of k;
// FP8 rows restart them at every scale block (ChunkMap in matmul_packed.h), the ragged last chunk
// of a run is zero-padded, and FP8 weights are multiplied by their block scale before the fma.
// Loaders with kEvenOdd (BF16 on AVX-512) instead take 2·kWidth-long lines of k: lane l adds
// x[k + 2l]·W[n, k + 2l], then x[k + 2l + 1]·W[n, k + 2l + 1], line after line, the last one
// zero-padded; this saves widening work, and both the decode and prefill loops follow it.
// Tiling, packing, threading and the decode/prefill switch change only which thread computes an
// element and when, never this order.
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace latentserve::kernels::cpu::detail {

// Up to kDecodeMaxRows rows of x a call is "decode": each thread streams its slab of W rows once.
// A micro tile holds up to kDecodeRows of them in registers; more run as two halves that share
// every weight tile (the second half reads it from L1).
constexpr int64_t kDecodeRows = 8;
constexpr int64_t kDecodeMaxRows = 2 * kDecodeRows;

// y[i, n] = sum_k x[i, k] * W[n, k] for i < m and n in [n0, n1).
struct MatmulBlock {
  const float* x;  // [m, w.cols], row stride ldx
  int64_t ldx;
  int64_t m;
  int64_t n0, n1;  // weight rows this block produces
  float* y;        // [m, w.rows], row stride ldy
  int64_t ldy;
};

// Decode: m ≤ kDecodeMaxRows. Every weight element is loaded from memory once and meets all m rows.
void matmul_decode_scalar(const WeightMatrix& w, const MatmulBlock& b);
void matmul_decode_avx2(const WeightMatrix& w, const MatmulBlock& b);
void matmul_decode_avx512(const WeightMatrix& w, const MatmulBlock& b);

// Prefill tile: any m up to kPrefillRows, n1 - n0 up to kPrefillWeightRows. Weight panels are
// widened to FP32 once into a per-thread buffer and reused by every row of x in the tile.
constexpr int64_t kPrefillRows = 128;
constexpr int64_t kPrefillWeightRows = 96;
void matmul_prefill_scalar(const WeightMatrix& w, const MatmulBlock& b);
void matmul_prefill_avx2(const WeightMatrix& w, const MatmulBlock& b);
void matmul_prefill_avx512(const WeightMatrix& w, const MatmulBlock& b);

}  // namespace latentserve::kernels::cpu::detail
