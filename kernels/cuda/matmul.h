// Linear layers on the GPU through cuBLASLt: y[m, n] = x[m, k] · W[n, k]ᵀ with FP32 accumulation,
// for BF16 weights and for FP8 E4M3 weights with DeepSeek-V3's 128×128 block scales (activations
// quantized per token in 1×128 groups). The CPU twin is kernels/cpu/matmul.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common/dtype.h"
#include "common/result.h"
#include "kernels/cuda/cublaslt.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/quantize.h"

namespace latentserve::kernels::cuda {

struct MatmulBf16Params {
  const void* x = nullptr;  // [m, k] BF16, row stride ldx elements
  const void* w = nullptr;  // [n, k] BF16, PyTorch Linear layout, contiguous
  void* y = nullptr;        // [m, n] y_dtype (BF16 or F32), row stride ldy elements
  DType y_dtype = DType::BF16;
  int64_t m = 0, n = 0, k = 0;
  int64_t ldx = 0;  // ≥ k
  int64_t ldy = 0;  // ≥ n
};

struct MatmulFp8Params {
  const void* x = nullptr;  // [m, w.cols] x_dtype (BF16 or F32), row stride ldx elements
  DType x_dtype = DType::BF16;
  Fp8BlockWeight w;   // n = w.rows, k = w.cols
  void* y = nullptr;  // [m, w.rows] y_dtype (BF16 or F32), row stride ldy elements
  DType y_dtype = DType::BF16;
  int64_t m = 0;
  int64_t ldx = 0;  // ≥ w.cols
  int64_t ldy = 0;  // ≥ w.rows
};

// How an FP8 product was computed.
enum class Fp8Path {
  kBlockScaled,     // FP8 tensor cores, cuBLASLt VEC128_32F × BLK128x128_32F scale modes
  kDequantizedBf16  // weights dequantized to BF16, BF16 GEMM (GPUs or shapes without the modes)
};
const char* fp8_path_name(Fp8Path path);

// One cuBLASLt handle, one workspace and the scratch the FP8 paths need, plus a cache of the
// algorithm chosen for each (shape, strides, dtypes, pointer alignment). Belongs to the device
// that was current at creation; not thread-safe (device work is issued from one thread).
class MatmulContext {
 public:
  static constexpr size_t kDefaultWorkspaceBytes = size_t(32) << 20;  // cuBLAS's advice for Hopper

  static Result<std::unique_ptr<MatmulContext>> create(
      size_t workspace_bytes = kDefaultWorkspaceBytes);

  // Enqueue on `stream`; they check the parameters, plan selection and the launches, not
  // completion.
  Status bf16(const MatmulBf16Params& p, cudaStream_t stream);
  Status fp8(const MatmulFp8Params& p, cudaStream_t stream);

  // Grows the scratch for FP8 products up to m × n × k now, so that later calls allocate nothing
  // (needed before capturing them in a CUDA graph).
  Status reserve_fp8_scratch(int64_t max_m, int64_t max_n, int64_t max_k);

  // Off: fp8() always takes the dequantized BF16 path (to test or measure it on Hopper).
  void allow_block_scaled_fp8(bool allow) { allow_block_scaled_ = allow; }
  // The path the last successful fp8() call took.
  Fp8Path last_fp8_path() const { return last_fp8_path_; }
  // Whether the device has FP8 tensor cores (compute capability ≥ 8.9); even then the block-scale
  // modes exist only where cuBLASLt offers an algorithm for them, which is asked per shape.
  bool device_has_fp8() const { return cc_major_ * 10 + cc_minor_ >= 89; }
  int device() const { return device_; }
  int compute_capability() const { return cc_major_ * 10 + cc_minor_; }
  size_t cached_plans() const { return plans_.size(); }

 private:
  enum PlanKind : int { kPlanBf16 = 0, kPlanFp8BlockScaled = 1 };
  struct PlanKey {
    int kind;  // PlanKind
    int64_t m, n, k, lda, ldb, ldd;
    int b_type, d_type;
    int align_a, align_b, align_d;
    auto tie() const {
      return std::tie(kind, m, n, k, lda, ldb, ldd, b_type, d_type, align_a, align_b, align_d);
    }
    bool operator<(const PlanKey& o) const { return tie() < o.tie(); }
  };
  struct Plan {
    bool supported = false;  // false: cuBLASLt offered no algorithm (remembered, not re-asked)
    LtMatmulDesc desc;
    LtLayout a, b, d;
    cublasLtMatmulAlgo_t algo{};
  };

  MatmulContext() = default;
  // FP8 plans take the scale pointers of the call that creates them: the heuristic sees a complete
  // descriptor (each call sets its own pointers again before launching).
  Result<Plan*> plan(const PlanKey& key, const void* a_scale = nullptr,
                     const void* b_scale = nullptr);
  Result<Plan> make_plan(const PlanKey& key, const void* a_scale, const void* b_scale);
  cublasStatus_t launch(Plan& plan, const void* a, const void* b, void* d, cudaStream_t stream);
  Status check_device() const;
  // Rows [row0, row0 + rows) of p (rows ≤ padded, a multiple of 4) as one block-scaled product of
  // `padded` token columns into d (row stride ldd). Ok(false) when cuBLASLt offers or accepts no
  // algorithm (a plan refused at launch is then marked).
  Result<bool> fp8_block_scaled(const MatmulFp8Params& p, int64_t row0, int64_t rows,
                                int64_t padded, void* d, int64_t ldd, cudaStream_t stream);
  Status fp8_dequantized(const MatmulFp8Params& p, cudaStream_t stream);

  LtHandle handle_;
  DeviceBuffer workspace_;
  DeviceBuffer act_q_, act_scales_;  // FP8 path: quantized activations and their scales
  DeviceBuffer tail_y_;              // FP8 path: the last m % 4 rows, computed as 4
  DeviceBuffer w_bf16_, x_bf16_;     // fallback path: dequantized weights, BF16 activations
  std::map<PlanKey, Plan> plans_;
  int device_ = 0, cc_major_ = 0, cc_minor_ = 0;
  Fp8Path last_fp8_path_ = Fp8Path::kDequantizedBf16;
  bool allow_block_scaled_ = true;
};

}  // namespace latentserve::kernels::cuda
