#include "models/batch.h"

#include <string>

namespace latentserve::models {

namespace {
std::string at_row(int64_t row) { return "batch row " + std::to_string(row); }
}  // namespace

Status Batch::validate(int64_t vocab_size, int64_t num_blocks, int64_t block_size) const {
  const int64_t n = num_tokens();
  if (static_cast<int64_t>(positions.size()) != n || static_cast<int64_t>(slot_mapping.size()) != n) {
    return make_error("batch: token_ids, positions and slot_mapping must have the same length (" +
                      std::to_string(n) + ", " + std::to_string(positions.size()) + ", " +
                      std::to_string(slot_mapping.size()) + ")");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (token_ids[i] < 0 || token_ids[i] >= vocab_size) {
      return make_error(at_row(i) + ": token id " + std::to_string(token_ids[i]) +
                        " outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
  int64_t expected_start = 0;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const BatchSequence& seq = sequences[s];
    const std::string where = "batch sequence " + std::to_string(s);
    if (seq.query_start != expected_start || seq.query_len < 1 || seq.query_len > seq.context_len) {
      return make_error(where + ": query rows must tile the batch in order and 1 <= query_len <= "
                                "context_len");
    }
    const int64_t blocks_needed = (seq.context_len + block_size - 1) / block_size;
    if (static_cast<int64_t>(seq.block_table.size()) < blocks_needed) {
      return make_error(where + ": block table has " + std::to_string(seq.block_table.size()) +
                        " blocks, context of " + std::to_string(seq.context_len) + " needs " +
                        std::to_string(blocks_needed));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      if (seq.block_table[b] < 0 || seq.block_table[b] >= num_blocks) {
        return make_error(where + ": block id " + std::to_string(seq.block_table[b]) +
                          " outside the cache [0, " + std::to_string(num_blocks) + ")");
      }
    }
    for (int32_t i = 0; i < seq.query_len; ++i) {
      const int64_t row = seq.query_start + i;
      const int64_t pos = seq.context_len - seq.query_len + i;
      const int64_t slot = int64_t(seq.block_table[pos / block_size]) * block_size + pos % block_size;
      if (positions[row] != pos) {
        return make_error(at_row(row) + ": position " + std::to_string(positions[row]) +
                          " but the sequence layout puts it at " + std::to_string(pos));
      }
      if (slot_mapping[row] != slot) {
        return make_error(at_row(row) + ": slot " + std::to_string(slot_mapping[row]) +
                          " does not match the block table (expected " + std::to_string(slot) + ")");
      }
    }
    expected_start += seq.query_len;
  }
  if (expected_start != n) {
    return make_error("batch: sequences cover " + std::to_string(expected_start) + " of " +
                      std::to_string(n) + " rows");
  }
  for (int32_t row : logit_rows) {
    if (row < 0 || row >= n) return make_error("batch: logit row " + std::to_string(row) + " out of range");
  }
  return ok_status();
}

void append_sequence(Batch& batch, const std::vector<int32_t>& tokens, int32_t cached,
                     const std::vector<int32_t>& block_table, int64_t block_size,
                     bool want_logits) {
  BatchSequence seq;
  seq.query_start = static_cast<int32_t>(batch.token_ids.size());
  seq.query_len = static_cast<int32_t>(tokens.size());
  seq.context_len = cached + seq.query_len;
  seq.block_table = block_table;
  for (int32_t i = 0; i < seq.query_len; ++i) {
    const int64_t pos = cached + i;
    batch.token_ids.push_back(tokens[i]);
    batch.positions.push_back(static_cast<int32_t>(pos));
    const size_t block = static_cast<size_t>(pos / block_size);
    // A short block table yields slot -1, which Batch::validate reports.
    batch.slot_mapping.push_back(block < block_table.size()
                                     ? int64_t(block_table[block]) * block_size + pos % block_size
                                     : -1);
  }
  if (want_logits) batch.logit_rows.push_back(seq.query_start + seq.query_len - 1);
  batch.sequences.push_back(std::move(seq));
}

}  // namespace latentserve::models
