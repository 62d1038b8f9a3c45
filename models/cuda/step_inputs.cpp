// Packs a step's host arrays into one staging vector at 256-byte aligned offsets and copies it to
// the device with one cudaMemcpyAsync. A copy from pageable memory returns once the bytes are
// staged, so the vector can be refilled by the next step without waiting.
#include "models/cuda/step_inputs.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/cuda/device.h"

namespace latentserve::models::cuda {

namespace {

constexpr size_t kAlign = 256;

// Appends arrays to the staging vector and remembers where each went.
class Packer {
 public:
  explicit Packer(std::vector<char>& host) : host_(host) { host_.clear(); }
  template <class T>
  size_t add(const T* data, size_t count) {
    const size_t at = (host_.size() + kAlign - 1) / kAlign * kAlign;
    host_.resize(at + std::max<size_t>(count, 1) * sizeof(T), 0);
    if (count > 0) std::memcpy(host_.data() + at, data, count * sizeof(T));
    return at;
  }

 private:
  std::vector<char>& host_;
};

int64_t shifted_slot(const BatchSequence& s, int64_t block_size, int64_t position) {
  const int64_t p = position + 1;
  return int64_t(s.block_table[size_t(p / block_size)]) * block_size + p % block_size;
}

}  // namespace

Result<StepView> StepInputs::upload(const Batch& batch, int64_t block_size, bool mtp_shift,
                                    cudaStream_t stream, int64_t min_table_stride) {
  const int64_t T = batch.num_tokens();
  const int64_t S = int64_t(batch.sequences.size());
  std::vector<int32_t> token_sequence(size_t(T), 0);
  std::vector<int64_t> slots = batch.slot_mapping;
  int64_t stride = std::max<int64_t>(min_table_stride, 1);
  for (const BatchSequence& s : batch.sequences) stride = std::max<int64_t>(stride, int64_t(s.block_table.size()));
  std::vector<int32_t> tables(size_t(S * stride), 0);
  std::vector<int64_t> gather;
  int64_t local_stride = 1, local_blocks = 0;
  for (int64_t q = 0; q < S; ++q) {
    const BatchSequence& s = batch.sequences[size_t(q)];
    std::copy(s.block_table.begin(), s.block_table.end(), tables.begin() + q * stride);
    for (int32_t i = 0; i < s.query_len; ++i) {
      token_sequence[size_t(s.query_start + i)] = int32_t(q);
      if (mtp_shift) {
        slots[size_t(s.query_start + i)] = shifted_slot(s, block_size, s.context_len - s.query_len + i);
      }
    }
    local_stride = std::max<int64_t>(local_stride, (s.context_len + block_size - 1) / block_size);
  }
  std::vector<int32_t> local_tables;
  if (mtp_shift) {
    local_tables.assign(size_t(S * local_stride), 0);
    for (int64_t q = 0; q < S; ++q) {
      const BatchSequence& s = batch.sequences[size_t(q)];
      const int64_t blocks = (s.context_len + block_size - 1) / block_size;
      for (int64_t b = 0; b < blocks; ++b) local_tables[size_t(q * local_stride + b)] = int32_t(local_blocks + b);
      for (int64_t pos = 0; pos < blocks * block_size; ++pos) {
        gather.push_back(pos < s.context_len ? shifted_slot(s, block_size, pos) : -1);
      }
      local_blocks += blocks;
    }
  }

  Packer pack(host_);
  const size_t o_ids = pack.add(batch.token_ids.data(), size_t(T));
  const size_t o_pos = pack.add(batch.positions.data(), size_t(T));
  const size_t o_slots = pack.add(slots.data(), slots.size());
  const size_t o_seq = pack.add(token_sequence.data(), token_sequence.size());
  const size_t o_logits = pack.add(batch.logit_rows.data(), batch.logit_rows.size());
  const size_t o_tables = pack.add(tables.data(), tables.size());
  const size_t o_gather = pack.add(gather.data(), gather.size());
  const size_t o_local = pack.add(local_tables.data(), local_tables.size());
  LS_RETURN_IF_ERROR(device_.reserve(host_.size(), "step inputs"));
  LS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(device_.data(), host_.data(), host_.size(),
                                          cudaMemcpyHostToDevice, stream));
  const char* base = static_cast<const char*>(device_.data());
  StepView v;
  v.tokens = T;
  v.sequences = S;
  v.logit_rows = int64_t(batch.logit_rows.size());
  v.token_ids = reinterpret_cast<const int32_t*>(base + o_ids);
  v.positions = reinterpret_cast<const int32_t*>(base + o_pos);
  v.slots = reinterpret_cast<const int64_t*>(base + o_slots);
  v.token_sequence = reinterpret_cast<const int32_t*>(base + o_seq);
  v.logit_index = reinterpret_cast<const int32_t*>(base + o_logits);
  v.block_tables = reinterpret_cast<const int32_t*>(base + o_tables);
  v.table_stride = stride;
  if (mtp_shift) {
    v.gather_slots = reinterpret_cast<const int64_t*>(base + o_gather);
    v.local_tables = reinterpret_cast<const int32_t*>(base + o_local);
    v.local_stride = local_stride;
    v.local_blocks = local_blocks;
  }
  return v;
}

}  // namespace latentserve::models::cuda
