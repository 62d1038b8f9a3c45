// What one forward step reads besides weights and cache, moved to the GPU in one copy: token ids,
// positions, cache slots, block tables, logit rows, and for the MTP layer the gather list of its
// shifted cache. The device buffer grows (outside any layer's work) and is then reused.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "common/result.h"
#include "kernels/cuda/device_buffer.h"
#include "models/batch.h"

namespace latentserve::models::cuda {

// Device pointers into StepInputs' buffer, valid until its next upload.
struct StepView {
  int64_t tokens = 0;
  int64_t sequences = 0;
  int64_t logit_rows = 0;
  const int32_t* token_ids = nullptr;       // [tokens]
  const int32_t* positions = nullptr;       // [tokens]
  const int64_t* slots = nullptr;           // [tokens] where each token's latent is written
  const int32_t* token_sequence = nullptr;  // [tokens] the sequence (row of the tables) of each token
  const int32_t* logit_index = nullptr;     // [logit_rows]
  const int32_t* block_tables = nullptr;    // [sequences, table_stride]; padding entries are 0
  int64_t table_stride = 0;
  // MTP only: the layer's context copied into a scratch cache where sequence s owns the
  // contiguous blocks of local_tables row s; scratch row r comes from cache slot gather_slots[r]
  // (-1: padding, zero-filled).
  const int64_t* gather_slots = nullptr;  // [local_blocks * block_size]
  const int32_t* local_tables = nullptr;  // [sequences, local_stride]
  int64_t local_stride = 0;
  int64_t local_blocks = 0;
};

class StepInputs {
 public:
  // The main layers: slots are batch.slot_mapping. With `mtp_shift`, the MTP layout of mtp.h:
  // each token's latent goes to the slot of position + 1, and the gather list is built. The batch
  // must have been validated (and, for MTP, its tables checked to cover context_len + 1). Block
  // tables are padded to at least `min_table_stride` entries: with a fixed stride (and batch
  // sizes), every upload has the same layout and the device buffer stays where it is.
  Result<StepView> upload(const Batch& batch, int64_t block_size, bool mtp_shift, cudaStream_t stream,
                          int64_t min_table_stride = 1);

 private:
  std::vector<char> host_;
  kernels::cuda::DeviceBuffer device_;
};

}  // namespace latentserve::models::cuda
