// Private to the matmul kernels: the block routine every instruction-set variant implements.
// matmul.cpp splits the work across threads and hands each thread blocks of this shape.
#pragma once

#include <cstdint>

#include "kernels/cpu/matmul.h"

namespace latentserve::kernels::cpu::detail {

// One thread's share: y[i, n] = sum_k x[i, k] * W[n, k] for i < m and n in [n0, n1).
struct MatmulBlock {
  const float* x;  // [m, w.cols], row stride ldx
  int64_t ldx;
  int64_t m;
  int64_t n0, n1;  // weight rows this block produces
  float* y;        // [m, w.rows], row stride ldy
  int64_t ldy;
};

void matmul_block_scalar(const WeightMatrix& w, const MatmulBlock& b);
void matmul_block_avx2(const WeightMatrix& w, const MatmulBlock& b);
void matmul_block_avx512(const WeightMatrix& w, const MatmulBlock& b);

}  // namespace latentserve::kernels::cpu::detail
