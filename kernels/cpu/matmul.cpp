// matmul: validates the weight description, picks the instruction-set variant, and splits the work
// across OpenMP threads. The per-thread loops live in matmul_{scalar,avx2,avx512}.cpp.
#include "kernels/cpu/matmul.h"

#include <omp.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul_internal.h"

namespace latentserve::kernels::cpu {
namespace {

using BlockFn = void (*)(const WeightMatrix&, const detail::MatmulBlock&);

struct Kernels {
  BlockFn decode, prefill;
};

Kernels kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512: return {detail::matmul_decode_avx512, detail::matmul_prefill_avx512};
    case CpuIsa::Avx2: return {detail::matmul_decode_avx2, detail::matmul_prefill_avx2};
    case CpuIsa::Scalar: return {detail::matmul_decode_scalar, detail::matmul_prefill_scalar};
  }
  return {detail::matmul_decode_scalar, detail::matmul_prefill_scalar};
}

bool well_formed(const WeightMatrix& w) {
  switch (w.dtype) {
    case DType::F32:
    case DType::BF16:
    case DType::F16: return w.data != nullptr;
    case DType::F8_E4M3:
      return w.data != nullptr && w.scale_inv != nullptr && w.block_rows > 0 && w.block_cols > 0;
    default: return false;
  }
}

// Up to kDecodeMaxRows rows of x, every thread takes its own contiguous slab of W rows and all of x:
// W streams from memory exactly once, in long sequential runs the prefetchers follow. Beyond it,
// tasks are (x rows × W rows) tiles: each W row a task widens is reused by kRowTile rows of x, so the
// kernel becomes compute-bound. Either way each output element is computed whole by one thread in
// the same order (matmul_internal.h), so results do not depend on m or the thread count.
constexpr int64_t kDecodeMaxRows = detail::kDecodeMaxRows;
constexpr int64_t kRowTile = detail::kPrefillRows;
constexpr int64_t kWeightTile = detail::kPrefillWeightRows;
// Below this many multiply-adds, starting threads costs more than it saves.
constexpr double kMinParallelWork = 1 << 16;

void decode(BlockFn fn, const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
            int64_t ldy, bool parallel) {
#pragma omp parallel if (parallel)
  {
    const int64_t threads = omp_get_num_threads();
    const int64_t per = (w.rows + threads - 1) / threads;
    const int64_t slab = (per + 23) / 24 * 24;  // whole micro tiles (of 3, 4, 6 or 8 rows) per thread
    const int64_t n0 = std::min(w.rows, omp_get_thread_num() * slab);
    const int64_t n1 = std::min(w.rows, n0 + slab);
    if (n0 < n1) fn(w, detail::MatmulBlock{x, ldx, m, n0, n1, y, ldy});
  }
}

void prefill(BlockFn fn, const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
             int64_t ldy, bool parallel) {
  const int64_t row_tiles = (m + kRowTile - 1) / kRowTile;
  const int64_t weight_tiles = (w.rows + kWeightTile - 1) / kWeightTile;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t it = 0; it < row_tiles; ++it) {
    for (int64_t jt = 0; jt < weight_tiles; ++jt) {
      const int64_t i0 = it * kRowTile;
      const int64_t n0 = jt * kWeightTile;
      fn(w, detail::MatmulBlock{x + i0 * ldx, ldx, std::min(kRowTile, m - i0), n0,
                                std::min(w.rows, n0 + kWeightTile), y + i0 * ldy, ldy});
    }
  }
}

double work(int64_t m, const WeightMatrix& w) { return double(m) * double(w.rows) * double(w.cols); }

// One product; `parallel` false keeps it on the calling thread (same bits either way).
void run(const Kernels& fn, const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y,
         int64_t ldy, bool parallel) {
  if (m <= 0 || w.rows <= 0) return;
  if (!well_formed(w)) {  // no status to return here: make the misuse impossible to miss
    for (int64_t i = 0; i < m; ++i)
      std::fill(y + i * ldy, y + i * ldy + w.rows, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  parallel = parallel && work(m, w) >= kMinParallelWork;
  if (m <= kDecodeMaxRows) {
    decode(fn.decode, x, ldx, m, w, y, ldy, parallel);
  } else {
    prefill(fn.prefill, x, ldx, m, w, y, ldy, parallel);
  }
}

}  // namespace

void matmul(const float* x, int64_t ldx, int64_t m, const WeightMatrix& w, float* y, int64_t ldy) {
  run(kernels_for(selected_isa()), x, ldx, m, w, y, ldy, /*parallel=*/true);
}

void matmul_each(const MatmulTask* tasks, int64_t count) {
  if (count <= 0) return;
  const Kernels fn = kernels_for(selected_isa());
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  double total = 0;
  for (int64_t i = 0; i < count; ++i) total += work(tasks[i].m, tasks[i].w);
  // Whole tasks per thread for the largest multiple of the thread count; dynamic, because tasks
  // may differ in size (experts with different token counts).
  const int64_t shared = threads > 1 && total >= kMinParallelWork ? count / threads * threads : 0;
#pragma omp parallel for schedule(dynamic, 1) if (shared > 0)
  for (int64_t i = 0; i < shared; ++i) {
    const MatmulTask& t = tasks[i];
    run(fn, t.x, t.ldx, t.m, t.w, t.y, t.ldy, /*parallel=*/false);
  }
  for (int64_t i = shared; i < count; ++i) {
    const MatmulTask& t = tasks[i];
    run(fn, t.x, t.ldx, t.m, t.w, t.y, t.ldy, /*parallel=*/true);
  }
}

}  // namespace latentserve::kernels::cpu
