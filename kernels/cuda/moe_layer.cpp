// The MoE layer as a recipe: route (router GEMM, top-k, permutation), then the grouped GEMV
// kernels (few tokens, no host wait), the two grouped GEMM launches (more tokens, no host wait)
// or, per expert, gather and counts to the host and the experts in two phases spread over the
// lanes (gate/up GEMMs; one SiLU-gated product over all permuted rows; down GEMMs); the shared
// experts on a lane of their own from the start, and the combine. Lanes fork from and join back
// into the caller's stream through events.
#include "kernels/cuda/moe_layer.h"

#include <algorithm>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/moe_combine.h"
#include "kernels/cuda/moe_grouped.h"
#include "kernels/cuda/moe_grouped_gemm.h"
#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/moe_router.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int kMaxLanes = 16;

const char* at(const void* base, int64_t row, int64_t ld, size_t es) {
  return static_cast<const char*>(base) + size_t(row) * size_t(ld) * es;
}
char* at(void* base, int64_t row, int64_t ld, size_t es) {
  return static_cast<char*>(base) + size_t(row) * size_t(ld) * es;
}

Status check(const MoeLayerWeights& w, const cpu::RouterParams& router, const MoeLayerParams& p) {
  const std::string where = "cuda moe layer: ";
  if (w.dtype != DType::BF16 && w.dtype != DType::F8_E4M3) {
    return make_error(where + "expert dtype " + std::string(dtype_name(w.dtype)) +
                      " is not supported (BF16 or F8_E4M3)");
  }
  if (w.hidden < 1 || w.width < 1 || (w.shared && w.shared_width < 1)) {
    return make_error(where + "hidden=" + std::to_string(w.hidden) + " width=" +
                      std::to_string(w.width) + " shared_width=" + std::to_string(w.shared_width) +
                      " must be positive");
  }
  if (int64_t(w.experts.size()) != router.num_experts) {
    return make_error(where + std::to_string(w.experts.size()) + " experts' weights for " +
                      std::to_string(router.num_experts) + " router experts");
  }
  if (p.out_dtype != DType::BF16 && p.out_dtype != DType::F32) {
    return make_error(where + "out_dtype " + std::string(dtype_name(p.out_dtype)) +
                      " is not supported (BF16 or F32)");
  }
  if (p.tokens < 0 || p.ldx < w.hidden || p.ld_out < w.hidden) {
    return make_error(where + "tokens=" + std::to_string(p.tokens) + " ldx=" +
                      std::to_string(p.ldx) + " ld_out=" + std::to_string(p.ld_out) +
                      " (strides must be at least hidden=" + std::to_string(w.hidden) + ")");
  }
  if (p.tokens > 0 && (!p.x || !p.out || !w.router)) {
    return make_error(where + "x, out and the router weight must be device pointers, got null");
  }
  for (size_t e = 0; e < w.experts.size(); ++e) {
    if (!w.experts[e].gate_up || !w.experts[e].down) {
      return make_error(where + "expert " + std::to_string(e) + " has no gate_up or down weight");
    }
  }
  return ok_status();
}

// The path a forward takes: kAuto resolved by the row count and the device table.
MoeExpertPath resolve(MoeExpertPath path, const MoeLayerWeights& w, int64_t rows) {
  if (path != MoeExpertPath::kAuto) return path;
  if (w.device_experts == nullptr) return MoeExpertPath::kPerExpertGemm;
  return rows <= kMoeGroupedAutoMaxRows ? MoeExpertPath::kGrouped : MoeExpertPath::kGroupedGemm;
}

}  // namespace

Result<std::unique_ptr<MoeLayerRunner>> MoeLayerRunner::create(int lanes) {
  if (lanes < 1 || lanes > kMaxLanes) {
    return make_error("cuda moe layer: lanes=" + std::to_string(lanes) + " is outside [1, " +
                      std::to_string(kMaxLanes) + "]");
  }
  std::unique_ptr<MoeLayerRunner> r(new MoeLayerRunner());
  LS_ASSIGN_OR_RETURN(r->router_ctx_, MatmulContext::create());
  // One more lane than asked: the shared experts' own.
  r->lanes_.resize(size_t(lanes) + 1);
  for (Lane& lane : r->lanes_) {
    LS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&lane.stream, cudaStreamNonBlocking));
    LS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&lane.done, cudaEventDisableTiming));
    LS_ASSIGN_OR_RETURN(lane.ctx, MatmulContext::create());
  }
  LS_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&r->fork_, cudaEventDisableTiming));
  LS_CUDA_RETURN_IF_ERROR(cudaMallocHost(reinterpret_cast<void**>(&r->offsets_pinned_),
                                         size_t(kMoeMaxExperts + 1) * sizeof(int32_t)));
  return r;
}

MoeLayerRunner::~MoeLayerRunner() {
  // Nothing to tell a destructor's caller; errors are cleared so later calls start clean.
  for (Lane& lane : lanes_) {
    if (lane.stream && cudaStreamDestroy(lane.stream) != cudaSuccess) cudaGetLastError();
    if (lane.done && cudaEventDestroy(lane.done) != cudaSuccess) cudaGetLastError();
  }
  if (fork_ && cudaEventDestroy(fork_) != cudaSuccess) cudaGetLastError();
  if (offsets_pinned_ && cudaFreeHost(offsets_pinned_) != cudaSuccess) cudaGetLastError();
}

Status MoeLayerRunner::reserve(const MoeLayerWeights& w, int64_t tokens, int64_t top_k,
                               MoeExpertPath path) {
  const int64_t experts = int64_t(w.experts.size()), rows = tokens * top_k;
  const size_t i4 = sizeof(int32_t);
  LS_RETURN_IF_ERROR(logits_.reserve(size_t(tokens * experts) * 4, "MoE router logits"));
  LS_RETURN_IF_ERROR(ids_.reserve(size_t(rows) * i4, "MoE expert ids"));
  LS_RETURN_IF_ERROR(weights_.reserve(size_t(rows) * 4, "MoE expert weights"));
  LS_RETURN_IF_ERROR(offsets_.reserve(size_t(experts + 1) * i4, "MoE expert offsets"));
  LS_RETURN_IF_ERROR(source_.reserve(size_t(rows) * i4, "MoE source tokens"));
  LS_RETURN_IF_ERROR(permuted_row_.reserve(size_t(rows) * i4, "MoE permuted rows"));
  LS_RETURN_IF_ERROR(scratch_.reserve(moe_permute_scratch_bytes(tokens, top_k, experts),
                                      "MoE permutation scratch"));
  LS_RETURN_IF_ERROR(h_.reserve(size_t(rows * w.width) * 2, "MoE gated activations"));
  if (path == MoeExpertPath::kGrouped) {
    LS_RETURN_IF_ERROR(active_.reserve(size_t(experts + 1) * i4, "MoE active experts"));
    LS_RETURN_IF_ERROR(grouped_y_.reserve(size_t(rows * w.hidden) * 4, "MoE expert outputs"));
  } else {
    LS_RETURN_IF_ERROR(y_.reserve(size_t(rows * w.hidden) * 2, "MoE expert outputs"));
  }
  if (path == MoeExpertPath::kPerExpertGemm) {
    LS_RETURN_IF_ERROR(xp_.reserve(size_t(rows * w.hidden) * 2, "MoE permuted input"));
    LS_RETURN_IF_ERROR(gate_up_.reserve(size_t(rows * 2 * w.width) * 2, "MoE gate/up output"));
  }
  if (w.shared) {
    LS_RETURN_IF_ERROR(shared_gate_up_.reserve(size_t(tokens * 2 * w.shared_width) * 2,
                                               "shared expert gate/up output"));
    LS_RETURN_IF_ERROR(
        shared_h_.reserve(size_t(tokens * w.shared_width) * 2, "shared expert activations"));
    LS_RETURN_IF_ERROR(shared_y_.reserve(size_t(tokens * w.hidden) * 4, "shared expert output"));
  }
  return ok_status();
}

Status MoeLayerRunner::gemm(const MoeLayerWeights& w, Lane& lane, const void* x, int64_t ldx,
                            const void* wt, const float* scales, int64_t n, int64_t k, void* y,
                            DType y_dtype, int64_t ldy, int64_t m) {
  if (w.dtype == DType::BF16) {
    MatmulBf16Params g;
    g.x = x;
    g.w = wt;
    g.y = y;
    g.y_dtype = y_dtype;
    g.m = m;
    g.n = n;
    g.k = k;
    g.ldx = ldx;
    g.ldy = ldy;
    return lane.ctx->bf16(g, lane.stream);
  }
  MatmulFp8Params g;
  g.x = x;
  g.x_dtype = DType::BF16;
  g.w.data = static_cast<const uint8_t*>(wt);
  g.w.scales = scales;
  g.w.rows = n;
  g.w.cols = k;
  g.y = y;
  g.y_dtype = y_dtype;
  g.m = m;
  g.ldx = ldx;
  g.ldy = ldy;
  return lane.ctx->fp8(g, lane.stream);
}

Status MoeLayerRunner::route(const MoeLayerWeights& w, const cpu::RouterParams& router,
                             const MoeLayerParams& p, cudaStream_t stream) {
  const int64_t experts = router.num_experts;
  MatmulBf16Params g;  // logits[T, E] = x · W_routerᵀ, in FP32 as the router needs
  g.x = p.x;
  g.ldx = p.ldx;
  g.w = w.router;
  g.y = logits_.data();
  g.y_dtype = DType::F32;
  g.m = p.tokens;
  g.n = experts;
  g.k = w.hidden;
  g.ldy = experts;
  LS_RETURN_IF_ERROR(router_ctx_->bf16(g, stream));

  MoeRouteParams r;
  r.logits = logits_.as<float>();
  r.ld_logits = experts;
  r.bias = w.bias;
  r.expert_ids = ids_.as<int32_t>();
  r.weights = weights_.as<float>();
  r.tokens = p.tokens;
  r.router = router;
  LS_RETURN_IF_ERROR(moe_route(r, stream));

  MoePermuteParams pp;
  pp.expert_ids = ids_.as<int32_t>();
  pp.tokens = p.tokens;
  pp.top_k = router.top_k;
  pp.num_experts = experts;
  pp.offsets = offsets_.as<int32_t>();
  pp.source_token = source_.as<int32_t>();
  pp.permuted_row = permuted_row_.as<int32_t>();
  pp.scratch = scratch_.data();
  pp.scratch_bytes = scratch_.size();
  return moe_permute(pp, stream);
}

Status MoeLayerRunner::gather_and_count(const MoeLayerWeights& w, const MoeLayerParams& p,
                                        int64_t experts, int64_t rows, cudaStream_t stream) {
  MoeGatherParams gp;
  gp.x = p.x;
  gp.ldx = p.ldx;
  gp.dtype = DType::BF16;
  gp.source_token = source_.as<int32_t>();
  gp.row_count = offsets_.as<int32_t>() + experts;
  gp.out = xp_.data();
  gp.ldo = w.hidden;
  gp.max_rows = rows;
  gp.hidden = w.hidden;
  LS_RETURN_IF_ERROR(moe_gather(gp, stream));

  // The host plans the per-expert GEMMs from the counts: the one wait of the layer.
  LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(offsets_pinned_, offsets_.data(),
                                          size_t(experts + 1) * sizeof(int32_t),
                                          cudaMemcpyDeviceToHost, stream));
  LS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  offsets_host_.assign(offsets_pinned_, offsets_pinned_ + experts + 1);
  return ok_status();
}

Status MoeLayerRunner::run_shared(const MoeLayerWeights& w, const MoeLayerParams& p, Lane& lane) {
  const int64_t sw = w.shared_width;
  LS_RETURN_IF_ERROR(gemm(w, lane, p.x, p.ldx, w.shared->gate_up, w.shared->gate_up_scales,
                          2 * sw, w.hidden, shared_gate_up_.data(), DType::BF16, 2 * sw,
                          p.tokens));
  MoeSiluMulParams s;
  s.gate_up = shared_gate_up_.data();
  s.ld_in = 2 * sw;
  s.out = shared_h_.data();
  s.ld_out = sw;
  s.rows = p.tokens;
  s.width = sw;
  LS_RETURN_IF_ERROR(moe_silu_mul(s, lane.stream));
  return gemm(w, lane, shared_h_.data(), sw, w.shared->down, w.shared->down_scales, w.hidden, sw,
              shared_y_.data(), DType::F32, w.hidden, p.tokens);
}

Status MoeLayerRunner::fork(cudaStream_t from, size_t count) {
  LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(fork_, from));
  for (size_t i = 0; i < count; ++i) {
    LS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(lanes_[i].stream, fork_, 0));
  }
  return ok_status();
}

Status MoeLayerRunner::join(cudaStream_t into, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(lanes_[i].done, lanes_[i].stream));
    LS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(into, lanes_[i].done, 0));
  }
  return ok_status();
}

Status MoeLayerRunner::run_experts(const MoeLayerWeights& w, int64_t rows, cudaStream_t stream) {
  const size_t lanes = lanes_.size() - 1;  // the last lane belongs to the shared experts
  const int64_t experts = int64_t(w.experts.size()), hidden = w.hidden, width = w.width;
  // Each expert goes to the lane with the fewest rows so far: a fixed plan for given counts.
  std::vector<int> lane_of(size_t(experts), 0);
  std::vector<int64_t> load(lanes, 0);
  int64_t max_count = 0;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t count = offsets_host_[size_t(e) + 1] - offsets_host_[size_t(e)];
    const auto lightest = std::min_element(load.begin(), load.end()) - load.begin();
    lane_of[size_t(e)] = int(lightest);
    load[size_t(lightest)] += count;
    max_count = std::max(max_count, count);
  }
  if (w.dtype == DType::F8_E4M3) {  // grow the scratch now, not between in-flight GEMMs
    for (size_t i = 0; i < lanes; ++i) {
      LS_RETURN_IF_ERROR(lanes_[i].ctx->reserve_fp8_scratch(max_count, std::max(2 * width, hidden),
                                                            std::max(width, hidden)));
    }
  }
  const auto each_expert = [&](auto&& fn) -> Status {
    for (int64_t e = 0; e < experts; ++e) {
      const int64_t first = offsets_host_[size_t(e)];
      const int64_t count = offsets_host_[size_t(e) + 1] - first;
      if (count > 0) LS_RETURN_IF_ERROR(fn(e, first, count, lanes_[size_t(lane_of[size_t(e)])]));
    }
    return ok_status();
  };
  LS_RETURN_IF_ERROR(fork(stream, lanes));
  LS_RETURN_IF_ERROR(each_expert([&](int64_t e, int64_t first, int64_t count, Lane& lane) {
    const MoeExpertWeights& ew = w.experts[size_t(e)];
    return gemm(w, lane, at(xp_.data(), first, hidden, 2), hidden, ew.gate_up, ew.gate_up_scales,
                2 * width, hidden, at(gate_up_.data(), first, 2 * width, 2), DType::BF16,
                2 * width, count);
  }));
  LS_RETURN_IF_ERROR(join(stream, lanes));
  MoeSiluMulParams s;
  s.gate_up = gate_up_.data();
  s.ld_in = 2 * width;
  s.out = h_.data();
  s.ld_out = width;
  s.rows = rows;
  s.width = width;
  s.row_count = offsets_.as<int32_t>() + experts;
  LS_RETURN_IF_ERROR(moe_silu_mul(s, stream));
  LS_RETURN_IF_ERROR(fork(stream, lanes));
  LS_RETURN_IF_ERROR(each_expert([&](int64_t e, int64_t first, int64_t count, Lane& lane) {
    const MoeExpertWeights& ew = w.experts[size_t(e)];
    return gemm(w, lane, at(h_.data(), first, width, 2), width, ew.down, ew.down_scales, hidden,
                width, at(y_.data(), first, hidden, 2), DType::BF16, hidden, count);
  }));
  return join(stream, lanes);
}

Status MoeLayerRunner::run_grouped(const MoeLayerWeights& w, const MoeLayerParams& p,
                                  int64_t top_k, cudaStream_t stream) {
  MoeGroupedParams g;
  g.dtype = w.dtype;
  g.experts = w.device_experts;
  g.num_experts = int64_t(w.experts.size());
  g.hidden = w.hidden;
  g.width = w.width;
  g.x = p.x;
  g.ldx = p.ldx;
  g.tokens = p.tokens;
  g.top_k = top_k;
  g.offsets = offsets_.as<int32_t>();
  g.source_token = source_.as<int32_t>();
  g.active = active_.as<int32_t>();
  g.h = h_.data();
  g.y = grouped_y_.as<float>();
  return moe_grouped_experts(g, stream);
}

Status MoeLayerRunner::run_grouped_gemm(const MoeLayerWeights& w, const MoeLayerParams& p,
                                        int64_t rows, cudaStream_t stream) {
  MoeGroupedGemmParams g;  // h[r] = silu(x[source_token[r]] · W_gateᵀ) · (… · W_upᵀ)
  g.w_dtype = w.dtype;
  g.experts = w.device_experts;
  g.weight = MoeGemmWeight::kGateUp;
  g.num_experts = int64_t(w.experts.size());
  g.offsets = offsets_.as<int32_t>();
  g.max_rows = rows;
  g.a = p.x;
  g.lda = p.ldx;
  g.a_rows = source_.as<int32_t>();
  g.n = 2 * w.width;
  g.k = w.hidden;
  g.epilogue = MoeGemmEpilogue::kSiluMul;
  g.y = h_.data();
  g.y_dtype = DType::BF16;
  g.ldy = w.width;
  LS_RETURN_IF_ERROR(moe_grouped_gemm(g, stream));
  g.weight = MoeGemmWeight::kDown;  // y[r] = h[r] · W_downᵀ
  g.a = h_.data();
  g.lda = w.width;
  g.a_rows = nullptr;
  g.n = w.hidden;
  g.k = w.width;
  g.epilogue = MoeGemmEpilogue::kStore;
  g.y = y_.data();
  g.ldy = w.hidden;
  return moe_grouped_gemm(g, stream);
}

Status MoeLayerRunner::forward(const MoeLayerWeights& w, const cpu::RouterParams& router,
                               const MoeLayerParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(w, router, p));
  if (p.tokens == 0) return ok_status();
  if (p.tokens * router.top_k > 0x7fffffff) {
    return make_error("cuda moe layer: tokens·top_k does not fit the int32 row indices");
  }
  const int64_t rows = p.tokens * router.top_k;
  const MoeExpertPath path = resolve(p.path, w, rows);
  if (path != MoeExpertPath::kPerExpertGemm && w.device_experts == nullptr) {
    return make_error("cuda moe layer: the grouped paths need the experts' table in device memory "
                      "(MoeLayerWeights::device_experts)");
  }
  const bool grouped = path == MoeExpertPath::kGrouped;
  LS_RETURN_IF_ERROR(reserve(w, p.tokens, router.top_k, path));
  Lane& shared_lane = lanes_.back();
  if (w.shared) {
    LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(fork_, stream));
    LS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(shared_lane.stream, fork_, 0));
    LS_RETURN_IF_ERROR(run_shared(w, p, shared_lane));
    LS_CUDA_RETURN_IF_ERROR(cudaEventRecord(shared_lane.done, shared_lane.stream));
  }
  LS_RETURN_IF_ERROR(route(w, router, p, stream));
  if (grouped) {
    LS_RETURN_IF_ERROR(run_grouped(w, p, router.top_k, stream));
  } else if (path == MoeExpertPath::kGroupedGemm) {
    LS_RETURN_IF_ERROR(run_grouped_gemm(w, p, rows, stream));
  } else {
    LS_RETURN_IF_ERROR(gather_and_count(w, p, router.num_experts, rows, stream));
    LS_RETURN_IF_ERROR(run_experts(w, rows, stream));
  }
  if (w.shared) LS_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream, shared_lane.done, 0));

  MoeCombineParams c;
  c.expert_out = grouped ? grouped_y_.data() : y_.data();
  c.y_dtype = grouped ? DType::F32 : DType::BF16;
  c.ld_y = w.hidden;
  c.permuted_row = permuted_row_.as<int32_t>();
  c.weights = weights_.as<float>();
  c.shared = w.shared ? shared_y_.data() : nullptr;
  c.shared_dtype = DType::F32;
  c.ld_shared = w.hidden;
  c.out = p.out;
  c.out_dtype = p.out_dtype;
  c.ld_out = p.ld_out;
  c.tokens = p.tokens;
  c.top_k = router.top_k;
  c.hidden = w.hidden;
  return moe_combine(c, stream);
}

}  // namespace latentserve::kernels::cuda
