// A whole DeepSeekMoE layer on the GPU: router GEMM and routing, permutation by expert, each
// expert's stacked gate/up GEMM, SiLU-gated product and down GEMM (BF16 or FP8 block-scaled
// weights), shared experts, and the weighted combine back to token order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/dtype.h"
#include "common/result.h"
#include "kernels/cpu/moe_router.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/matmul.h"

namespace latentserve::kernels::cuda {

// One expert with gate_proj and up_proj stacked into one matrix, so one GEMM makes both:
// gate_up rows [0, width) are gate_proj, rows [width, 2·width) are up_proj. For FP8 the block
// scales stack the same way, which keeps each 128-row block inside one of the two only when
// width is a multiple of 128 (true of every DeepSeek checkpoint).
struct MoeExpertWeights {
  const void* gate_up = nullptr;          // [2 * width, hidden] BF16 or E4M3
  const float* gate_up_scales = nullptr;  // FP8: [ceil(2·width/128), weight_scale_ld(hidden)]
  const void* down = nullptr;             // [hidden, width] BF16 or E4M3
  const float* down_scales = nullptr;     // FP8: [ceil(hidden/128), weight_scale_ld(width)]
};

struct MoeLayerWeights {
  DType dtype = DType::BF16;  // of every expert matrix: BF16 or F8_E4M3
  int64_t hidden = 0;
  int64_t width = 0;                // moe_intermediate_size
  const void* router = nullptr;     // [num_experts, hidden] BF16
  const float* bias = nullptr;      // [num_experts] e_score_correction_bias, or null
  std::vector<MoeExpertWeights> experts;  // num_experts, in expert-index order
  // The same table in device memory, or null; the grouped path (moe_grouped.h) reads it.
  const MoeExpertWeights* device_experts = nullptr;
  std::optional<MoeExpertWeights> shared;  // all shared experts as one MLP of shared_width
  int64_t shared_width = 0;
};

// How the routed experts are computed.
enum class MoeExpertPath {
  // With device_experts set: kGrouped when tokens·top_k ≤ kMoeGroupedAutoMaxRows, else
  // kGroupedGemm. Without it: kPerExpertGemm.
  kAuto,
  kPerExpertGemm,  // one cuBLASLt GEMM per non-empty expert; reads the row counts on the host
  kGrouped,        // moe_grouped.h's GEMV kernels: no host wait, so a CUDA graph can capture it
  kGroupedGemm,    // moe_grouped_gemm.h's one-launch tensor-core GEMMs: no host wait either
};
inline constexpr int64_t kMoeGroupedAutoMaxRows = 256;

struct MoeLayerParams {
  const void* x = nullptr;  // [tokens, hidden] BF16, row stride ldx elements
  int64_t ldx = 0;
  void* out = nullptr;  // [tokens, hidden] out_dtype (BF16 or F32), row stride ld_out elements
  DType out_dtype = DType::F32;
  int64_t ld_out = 0;
  int64_t tokens = 0;
  MoeExpertPath path = MoeExpertPath::kAuto;
};

// Owns the scratch and the cuBLASLt contexts of the layer. The experts' GEMMs run on `lanes`
// streams at once (each with its own MatmulContext, so their workspaces never collide): one
// expert's GEMM at DeepSeek-V3 sizes fills only part of a Hopper GPU. Not thread-safe.
//
// cuBLASLt (CUDA 13.0) has no grouped GEMM with per-group sizes, and the block-scaled FP8 modes
// exist only in cuBLASLt, so on the per-expert path each non-empty expert is one GEMM call: the
// host reads the per-expert row counts back once per layer (one small copy and a wait on
// `stream`), which a CUDA graph cannot capture. The grouped paths keep the routing on the device:
// GEMV kernels for few tokens (memory-bound anyway), one tensor-core GEMM launch for gate/up (with
// the SiLU-gated product in its epilogue and the gather of the inputs in its loads) and one for
// down otherwise. With them forward() waits on nothing and, once a call of the same token count
// has grown the scratch, allocates nothing, so it can be captured.
class MoeLayerRunner {
 public:
  static Result<std::unique_ptr<MoeLayerRunner>> create(int lanes = 4);
  ~MoeLayerRunner();
  MoeLayerRunner(const MoeLayerRunner&) = delete;
  MoeLayerRunner& operator=(const MoeLayerRunner&) = delete;

  // Enqueues the layer on `stream` and returns once the experts are enqueued (on the per-expert
  // path it waits for routing to finish on the way). Work on `stream` before the call is seen by the layer and work
  // after it sees the layer's output.
  Status forward(const MoeLayerWeights& w, const cpu::RouterParams& router,
                 const MoeLayerParams& p, cudaStream_t stream);

  // The last forward's routing, on the device: [tokens, top_k] each, valid until the next call.
  const int32_t* expert_ids() const { return ids_.as<int32_t>(); }
  const float* expert_weights() const { return weights_.as<float>(); }
  // Rows per expert of the last per-expert-path forward, as read back by the host (offsets,
  // num_experts + 1).
  const std::vector<int32_t>& expert_offsets() const { return offsets_host_; }

 private:
  struct Lane {
    cudaStream_t stream = nullptr;
    cudaEvent_t done = nullptr;
    std::unique_ptr<MatmulContext> ctx;
  };
  MoeLayerRunner() = default;

  Status reserve(const MoeLayerWeights& w, int64_t tokens, int64_t top_k, MoeExpertPath path);
  // Router GEMM, top-k and permutation, all on the device.
  Status route(const MoeLayerWeights& w, const cpu::RouterParams& router,
               const MoeLayerParams& p, cudaStream_t stream);
  // The per-expert path's gather of the permuted inputs and the host's read of the row counts.
  Status gather_and_count(const MoeLayerWeights& w, const MoeLayerParams& p, int64_t experts,
                          int64_t rows, cudaStream_t stream);
  Status run_grouped(const MoeLayerWeights& w, const MoeLayerParams& p, int64_t top_k,
                     cudaStream_t stream);
  // The kGroupedGemm path: h = silu(x·W_gateᵀ)·(x·W_upᵀ) and y = h·W_downᵀ, two launches.
  Status run_grouped_gemm(const MoeLayerWeights& w, const MoeLayerParams& p, int64_t rows,
                          cudaStream_t stream);
  Status run_shared(const MoeLayerWeights& w, const MoeLayerParams& p, Lane& lane);
  // One GEMM y[m, n] = x[m, k] · Wᵀ on the lane, BF16 x, W in the layer's dtype ([n, k], with
  // its block scales when FP8).
  Status gemm(const MoeLayerWeights& w, Lane& lane, const void* x, int64_t ldx, const void* wt,
              const float* scales, int64_t n, int64_t k, void* y, DType y_dtype, int64_t ldy,
              int64_t m);
  Status run_experts(const MoeLayerWeights& w, int64_t rows, cudaStream_t stream);
  Status fork(cudaStream_t from, size_t count);
  Status join(cudaStream_t into, size_t count);

  std::unique_ptr<MatmulContext> router_ctx_;
  std::vector<Lane> lanes_;
  cudaEvent_t fork_ = nullptr;
  int32_t* offsets_pinned_ = nullptr;  // page-locked copy of offsets for the host
  std::vector<int32_t> offsets_host_;
  DeviceBuffer logits_, ids_, weights_, offsets_, source_, permuted_row_, scratch_;
  DeviceBuffer xp_, gate_up_, h_, y_;  // permuted rows: x, gate|up, silu·up, expert out (BF16)
  DeviceBuffer shared_gate_up_, shared_h_, shared_y_;
  DeviceBuffer active_, grouped_y_;  // grouped path: non-empty experts, F32 expert outputs
};

}  // namespace latentserve::kernels::cuda
