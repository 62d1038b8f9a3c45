// MoE routing kernel: one warp per token. The warp writes the token's scores and selection scores
// to shared memory, lanes score one group each, and each of the k picks is a warp arg-max in which
// equal values go to the lower index, so the order is that of a stable descending sort, as on the
// CPU. The weights are summed and scaled by one lane in pick order, with the CPU's float operations.
#include "kernels/cuda/moe_router.h"

#include <cfloat>
#include <climits>
#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::kernels::cuda {
namespace {

constexpr int kWarps = 4;
constexpr unsigned kFull = 0xffffffffu;

struct RouteArgs {
  const float* logits;
  int64_t ld;
  const float* bias;
  int32_t* ids;
  float* weights;
  int64_t tokens;
  int experts, top_k, n_group, topk_group;
  bool softmax, use_groups, top2_group_score, normalise, scale;
  float scaling;
};

__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}

// Leaves every lane with the best (value, index) of the warp.
__device__ __forceinline__ void warp_argmax(float& v, int& i) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(kFull, v, off);
    const int oi = __shfl_xor_sync(kFull, i, off);
    if (better(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

__device__ void score(const RouteArgs& a, const float* row, float* scores, float* sel, int lane) {
  const int n = a.experts;
  if (a.softmax) {
    float m = -INFINITY;
    for (int e = lane; e < n; e += 32) m = fmaxf(m, row[e]);
    m = warp_max(m);
    float s = 0.0f;
    for (int e = lane; e < n; e += 32) {
      scores[e] = expf(row[e] - m);
      s += scores[e];
    }
    s = warp_sum(s);
    for (int e = lane; e < n; e += 32) scores[e] = scores[e] / s;
  } else {
    for (int e = lane; e < n; e += 32) scores[e] = 1.0f / (1.0f + expf(-row[e]));
  }
  for (int e = lane; e < n; e += 32) {
    const float v = a.bias ? scores[e] + a.bias[e] : scores[e];
    sel[e] = isnan(v) ? -INFINITY : v;  // a NaN never wins a comparison; rank it last instead
  }
  __syncwarp();
}

// Keeps the topk_group best groups (group score: best member, or sum of the best two) and sets the
// selection score of every expert outside them to -inf. The last group also owns any remainder.
__device__ void limit_groups(const RouteArgs& a, float* sel, int lane) {
  const int size = a.experts / a.n_group;
  float gs = -INFINITY;
  if (lane < a.n_group) {
    float b1 = -INFINITY, b2 = -INFINITY;
    for (int j = 0; j < size; ++j) {
      const float v = sel[lane * size + j];
      if (v > b1) {
        b2 = b1;
        b1 = v;
      } else if (v > b2) {
        b2 = v;
      }
    }
    gs = a.top2_group_score && size >= 2 ? b1 + b2 : b1;
  }
  unsigned keep = 0;
  bool taken = false;
  for (int r = 0; r < a.topk_group; ++r) {
    const bool candidate = lane < a.n_group && !taken;
    float v = candidate ? gs : -INFINITY;
    int i = candidate ? lane : INT_MAX;
    warp_argmax(v, i);
    if (i == lane) taken = true;
    keep |= 1u << i;
  }
  __syncwarp();
  for (int e = lane; e < a.experts; e += 32) {
    const int g = min(e / size, a.n_group - 1);
    if (!((keep >> g) & 1u)) sel[e] = -INFINITY;
  }
  __syncwarp();
}

__global__ void __launch_bounds__(kWarps * 32) route_kernel(RouteArgs a) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t t = int64_t(blockIdx.x) * kWarps + warp;
  if (t >= a.tokens) return;  // whole warps leave together
  float* scores = smem + size_t(warp) * (2 * a.experts + 32);
  float* sel = scores + a.experts;
  int* picked = reinterpret_cast<int*>(sel + a.experts);

  score(a, a.logits + t * a.ld, scores, sel, lane);
  if (a.use_groups) limit_groups(a, sel, lane);

  unsigned used = 0;  // bit j: this lane's expert lane + 32·j is already picked
  for (int r = 0; r < a.top_k; ++r) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int j = 0, e = lane; e < a.experts; ++j, e += 32) {
      if (!((used >> j) & 1u) && better(sel[e], e, bv, bi)) {
        bv = sel[e];
        bi = e;
      }
    }
    warp_argmax(bv, bi);
    if (bi % 32 == lane) used |= 1u << (bi / 32);
    if (lane == 0) picked[r] = bi;
  }
  __syncwarp();

  float sum = 0.0f;
  if (lane == 0) {
    for (int r = 0; r < a.top_k; ++r) sum += scores[picked[r]];
  }
  sum = __shfl_sync(kFull, sum, 0);
  if (lane < a.top_k) {
    const int id = picked[lane];
    float w = scores[id];
    if (a.normalise) w = w / sum;
    if (a.scale) w = w * a.scaling;
    a.ids[t * a.top_k + lane] = id;
    a.weights[t * a.top_k + lane] = w;
  }
}

Status check(const MoeRouteParams& p) {
  const std::string where = "cuda moe_route: ";
  const cpu::RouterParams& r = p.router;
  if (p.tokens < 0) return make_error(where + "negative tokens=" + std::to_string(p.tokens));
  if (r.num_experts < 1 || r.num_experts > kMoeMaxExperts) {
    return make_error(where + "num_experts=" + std::to_string(r.num_experts) + " is outside [1, " +
                      std::to_string(kMoeMaxExperts) + "]");
  }
  if (r.top_k < 1 || r.top_k > kMoeMaxTopK || r.top_k > r.num_experts) {
    return make_error(where + "top_k=" + std::to_string(r.top_k) + " is outside [1, min(" +
                      std::to_string(kMoeMaxTopK) + ", num_experts=" +
                      std::to_string(r.num_experts) + ")]");
  }
  if (r.method != cpu::TopkMethod::kGreedy &&
      (r.n_group < 1 || r.n_group > kMoeMaxGroups || r.n_group > r.num_experts ||
       r.topk_group < 1 || r.topk_group > r.n_group)) {
    return make_error(where + "n_group=" + std::to_string(r.n_group) +
                      " topk_group=" + std::to_string(r.topk_group) +
                      " need 1 ≤ topk_group ≤ n_group ≤ min(32, num_experts=" +
                      std::to_string(r.num_experts) + ")");
  }
  if (p.ld_logits < r.num_experts) {
    return make_error(where + "ld_logits=" + std::to_string(p.ld_logits) +
                      " is less than num_experts=" + std::to_string(r.num_experts));
  }
  if ((p.tokens + kWarps - 1) / kWarps > 0x7fffffff) {
    return make_error(where + "tokens=" + std::to_string(p.tokens) + " exceeds the grid limit");
  }
  if (p.tokens > 0 && (!p.logits || !p.expert_ids || !p.weights)) {
    return make_error(where + "logits, expert_ids and weights must be device pointers, got null");
  }
  return ok_status();
}

}  // namespace

Status moe_route(const MoeRouteParams& p, cudaStream_t stream) {
  LS_RETURN_IF_ERROR(check(p));
  if (p.tokens == 0) return ok_status();
  const cpu::RouterParams& r = p.router;
  RouteArgs a{};
  a.logits = p.logits;
  a.ld = p.ld_logits;
  a.bias = p.bias;
  a.ids = p.expert_ids;
  a.weights = p.weights;
  a.tokens = p.tokens;
  a.experts = int(r.num_experts);
  a.top_k = int(r.top_k);
  a.n_group = int(r.n_group);
  a.topk_group = int(r.topk_group);
  a.softmax = r.scoring == cpu::ScoringFunc::kSoftmax;
  a.use_groups = r.method != cpu::TopkMethod::kGreedy && r.n_group > 1 && r.topk_group < r.n_group;
  a.top2_group_score = r.method == cpu::TopkMethod::kNoauxTc;
  a.normalise = r.norm_topk_prob;
  a.scale = !(r.norm_topk_prob && r.scale_only_unnormalized);
  a.scaling = r.routed_scaling_factor;
  const size_t smem = size_t(kWarps) * size_t(2 * r.num_experts + 32) * sizeof(float);
  const unsigned grid = unsigned((p.tokens + kWarps - 1) / kWarps);
  route_kernel<<<grid, kWarps * 32, smem, stream>>>(a);
  return LS_CUDA_CHECK(cudaGetLastError());
}

}  // namespace latentserve::kernels::cuda
