// Host side of graph-replayed decode steps: bucket choice, padding, and capture with its error
// handling (a failed capture is ended and discarded, so the stream is usable again).
#include "models/cuda/decode_graph.h"

#include <cstdlib>
#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::models::cuda {

DecodeGraphOptions decode_graph_options_from_env() {
  DecodeGraphOptions o;
  const char* v = std::getenv("LATENTSERVE_CUDA_GRAPHS");
  if (v != nullptr && std::string(v) == "0") o.enabled = false;
  return o;
}

Status check_decode_graph_options(const DecodeGraphOptions& options) {
  for (size_t i = 0; i < options.buckets.size(); ++i) {
    if (options.buckets[i] < 1 || (i > 0 && options.buckets[i] <= options.buckets[i - 1])) {
      return make_error("CUDA graph buckets must be positive and strictly ascending (bucket " +
                        std::to_string(i) + " is " + std::to_string(options.buckets[i]) + ")");
    }
  }
  return ok_status();
}

bool is_plain_decode(const Batch& batch) {
  if (batch.sequences.empty()) return false;
  // A graph step has one logits row per bucket slot; a batch asking for more (repeated rows are
  // valid) runs eagerly.
  if (batch.logit_rows.size() > batch.sequences.size()) return false;
  for (const BatchSequence& s : batch.sequences) {
    if (s.query_len != 1) return false;
  }
  return true;
}

int64_t decode_bucket(const std::vector<int64_t>& buckets, int64_t sequences) {
  for (int64_t b : buckets) {
    if (b >= sequences) return b;
  }
  return 0;
}

Batch pad_decode_batch(const Batch& batch, int64_t bucket, int32_t scratch_block, int64_t block_size) {
  Batch p = batch;
  for (int64_t s = int64_t(batch.sequences.size()); s < bucket; ++s) {
    BatchSequence d;
    d.query_start = int32_t(s);
    d.query_len = 1;
    d.context_len = 1;
    d.block_table = {scratch_block};
    p.sequences.push_back(std::move(d));
    p.token_ids.push_back(0);
    p.positions.push_back(0);
    p.slot_mapping.push_back(int64_t(scratch_block) * block_size);
  }
  for (int64_t r = int64_t(batch.logit_rows.size()); r < bucket; ++r) {
    const int64_t row = int64_t(batch.sequences.size()) + (r - int64_t(batch.logit_rows.size()));
    p.logit_rows.push_back(int32_t(row < bucket ? row : 0));
  }
  return p;
}

int64_t graph_table_stride(int64_t needed) {
  int64_t s = 16;
  while (s < needed) s *= 2;
  return s;
}

DecodeGraph::~DecodeGraph() { reset(); }

void DecodeGraph::reset() {
  // Nothing to tell a destructor's caller; the error is cleared so later calls start clean.
  if (exec != nullptr && cudaGraphExecDestroy(exec) != cudaSuccess) cudaGetLastError();
  exec = nullptr;
}

bool same_step_layout(const StepView& a, const StepView& b) {
  return a.tokens == b.tokens && a.sequences == b.sequences && a.logit_rows == b.logit_rows &&
         a.token_ids == b.token_ids && a.positions == b.positions && a.slots == b.slots &&
         a.token_sequence == b.token_sequence && a.logit_index == b.logit_index &&
         a.block_tables == b.block_tables && a.table_stride == b.table_stride;
}

Status begin_capture(cudaStream_t stream) {
  // Thread-local: other threads' CUDA calls (none are expected) cannot invalidate the capture.
  LS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  return ok_status();
}

Result<cudaGraphExec_t> end_capture(cudaStream_t stream, const Status& enqueued) {
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  if (!enqueued.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();  // an invalidated capture also reports on end; the enqueue error says why
    return enqueued.error().with_context("capturing a decode step");
  }
  LS_CUDA_RETURN_IF_ERROR(ended);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  const cudaError_t destroyed = cudaGraphDestroy(graph);
  LS_CUDA_RETURN_IF_ERROR(made);
  if (destroyed != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    LS_CUDA_RETURN_IF_ERROR(destroyed);
  }
  return exec;
}

}  // namespace latentserve::models::cuda
