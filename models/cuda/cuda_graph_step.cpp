// The CUDA executor's graph-replayed decode steps: pad the batch to its bucket, size the graph
// resources once with an uncaptured run of the largest bucket, then per bucket one uncaptured run,
// a capture, and replays. Inputs are copied into the bucket's fixed buffers before each launch.
#include <algorithm>
#include <string>

#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_fixed_plan.h"
#include "models/cuda/executor_state.h"

namespace latentserve::models::cuda {

namespace dsv3 = deepseek_v3;

namespace {

// Points the layer functions at the graph resources for one step, and back when it ends.
class GraphStepScope {
 public:
  GraphStepScope(StepResources*& res, kc::MoeExpertPath& path, StepResources& graph)
      : res_(res), path_(path), saved_res_(res), saved_path_(path) {
    res = &graph;
    path = kc::MoeExpertPath::kGrouped;
  }
  ~GraphStepScope() {
    res_ = saved_res_;
    path_ = saved_path_;
  }
  GraphStepScope(const GraphStepScope&) = delete;
  GraphStepScope& operator=(const GraphStepScope&) = delete;

 private:
  StepResources*& res_;
  kc::MoeExpertPath& path_;
  StepResources* saved_res_;
  kc::MoeExpertPath saved_path_;
};

}  // namespace

int64_t CudaExecutor::graph_replays() const {
  int64_t n = 0;
  for (const auto& g : graphs_) n += g->replays;
  return n;
}

Result<dsv3::ForwardOutput> CudaExecutor::forward_graph(const Batch& batch, int64_t bucket) {
  LS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
  GraphStepScope scope(res_, moe_path_, graph_);
  if (!graphs_sized_) {
    // Every buffer the graphs read grows here, before any capture: all later runs are smaller.
    DecodeGraph& largest = *graphs_.back();
    LS_RETURN_IF_ERROR(graph_step(largest, pad_decode_batch(Batch{}, largest.bucket, scratch_block_, block_size_)));
    graphs_sized_ = true;
  }
  DecodeGraph* g = nullptr;
  for (const auto& candidate : graphs_) {
    if (candidate->bucket == bucket) g = candidate.get();
  }
  if (g == nullptr) return make_error("no CUDA graph bucket of " + std::to_string(bucket) + " sequences");
  Status st = graph_step(*g, pad_decode_batch(batch, bucket, scratch_block_, block_size_));
  if (!st.ok()) return st.error().with_context("decode step in the CUDA graph of bucket " + std::to_string(bucket));
  // The padded rows come after the batch's rows, and its logit rows come first.
  return finish(batch.num_tokens(), int64_t(batch.logit_rows.size()));
}

Status CudaExecutor::graph_step(DecodeGraph& g, const Batch& padded) {
  cudaStream_t s = stream_.get();
  int64_t needed = 1;
  for (const BatchSequence& seq : padded.sequences) needed = std::max<int64_t>(needed, int64_t(seq.block_table.size()));
  if (needed > g.table_stride) {
    g.reset();
    g.table_stride = graph_table_stride(needed);
  }
  LS_ASSIGN_OR_RETURN(step_, g.inputs.upload(padded, block_size_, /*mtp_shift=*/false, s, g.table_stride));
  if (fast_mla_) {
    kc::MlaFixedPlanShape shape;
    shape.num_sequences = int32_t(g.bucket);
    shape.heads = config_->num_attention_heads;
    shape.splits = g.mla_splits;
    const size_t bytes = kc::mla_fixed_plan_workspace_bytes(shape);
    if (g.plan_workspace.size() < bytes) {
      g.reset();  // the first step of the bucket: nothing captured reads the workspace yet
      LS_RETURN_IF_ERROR(g.plan_workspace.reserve(bytes, "fixed MLA plan workspace"));
    }
  }
  if (g.exec != nullptr && !same_step_layout(step_, g.captured)) g.reset();

  struct Current {
    DecodeGraph*& slot;
    ~Current() { slot = nullptr; }
  } current{graph_step_};
  graph_step_ = &g;
  if (g.exec == nullptr && g.uncaptured_runs == 0) {
    ++g.uncaptured_runs;
    return enqueue_forward();
  }
  if (g.exec == nullptr) {
    auto exec = capture_graph(s, [&] { return enqueue_forward(); });
    if (!exec.ok()) {
      // Nothing captured has run, so the step can still run eagerly; graphs stay off from now on.
      capture_error_ = exec.error().message;
      return exec.error();
    }
    g.exec = *exec;
    g.captured = step_;
  }
  LS_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(g.exec, s));
  ++g.replays;
  return ok_status();
}

}  // namespace latentserve::models::cuda
