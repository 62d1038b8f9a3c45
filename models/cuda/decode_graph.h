// Decode steps replayed as CUDA graphs: which steps qualify, the batch-size buckets, a decode batch
// padded to its bucket with dummy rows, and one bucket's captured graph with the fixed buffers it
// reads (inputs, MLA plan workspace). The executor's forward decides when to capture and replay.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/mla_plan.h"
#include "models/batch.h"
#include "models/cuda/step_inputs.h"

namespace latentserve::models::cuda {

struct DecodeGraphOptions {
  bool enabled = true;
  std::vector<int64_t> buckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};  // ascending batch sizes
};

// The defaults, with graphs off when the environment sets LATENTSERVE_CUDA_GRAPHS=0.
DecodeGraphOptions decode_graph_options_from_env();

// Buckets must be positive and strictly ascending.
Status check_decode_graph_options(const DecodeGraphOptions& options);

// Every sequence brings exactly one new token (no prefill chunk, no draft tokens to verify).
bool is_plain_decode(const Batch& batch);

// The smallest bucket holding `sequences`, or 0 when none does.
int64_t decode_bucket(const std::vector<int64_t>& buckets, int64_t sequences);

// `batch` (a valid plain decode) followed by dummy sequences up to `bucket`: each one token (id 0)
// at position 0 written to slot 0 of `scratch_block`, a block the engine never hands out. Logit
// rows are padded with dummy rows (or repeats of row 0) up to `bucket`, so the padded batch's
// sizes depend on the bucket alone; the caller keeps the first batch.logit_rows.size() rows.
Batch pad_decode_batch(const Batch& batch, int64_t bucket, int32_t scratch_block, int64_t block_size);

// The width of block tables a bucket's graph is captured for: a power of two ≥ `needed`, at least
// 16, so a growing context re-captures a bucket only a logarithmic number of times.
int64_t graph_table_stride(int64_t needed);

// One bucket's graph. Its first step runs uncaptured (growing any scratch it needs), the next is
// captured and then replayed; a batch whose block tables outgrow table_stride re-captures it.
struct DecodeGraph {
  DecodeGraph() = default;
  ~DecodeGraph();
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;

  // Drops the captured graph (the buffers stay).
  void reset();

  int64_t bucket = 0;
  int64_t table_stride = 0;
  int64_t uncaptured_runs = 0;
  int64_t replays = 0;
  StepInputs inputs;  // fixed layout for (bucket, table_stride): its device buffer never moves
  StepView captured;  // the inputs the graph reads
  kernels::cuda::DeviceBuffer plan_workspace;
  int32_t mla_splits = 1;
  cudaGraphExec_t exec = nullptr;
};

// Whether `now` has the same pointers and sizes as `captured`: the graph reads exactly these.
bool same_step_layout(const StepView& now, const StepView& captured);

// Captures the work `enqueue` puts on `stream` into a graph and instantiates it.
template <class Enqueue>
Result<cudaGraphExec_t> capture_graph(cudaStream_t stream, Enqueue&& enqueue);

// Non-template part of capture_graph: begins, ends and instantiates (ends the capture on failure).
Status begin_capture(cudaStream_t stream);
Result<cudaGraphExec_t> end_capture(cudaStream_t stream, const Status& enqueued);

template <class Enqueue>
Result<cudaGraphExec_t> capture_graph(cudaStream_t stream, Enqueue&& enqueue) {
  LS_RETURN_IF_ERROR(begin_capture(stream));
  const Status enqueued = enqueue();
  return end_capture(stream, enqueued);
}

}  // namespace latentserve::models::cuda
