// Batch: everything the model needs for one forward step and nothing more — the flattened new
// tokens of every sequence, where each goes in the latent cache, and which rows need logits.
#pragma once

#include <cstdint>
#include <vector>

#include "common/result.h"

namespace latentserve::models {

// One sequence's share of the step. Its new tokens are rows [query_start, query_start+query_len)
// of the batch; after the step its cache holds context_len tokens (positions 0..context_len-1),
// so the new tokens sit at positions context_len - query_len ... context_len - 1.
struct BatchSequence {
  int32_t query_start = 0;
  int32_t query_len = 0;
  int32_t context_len = 0;
  std::vector<int32_t> block_table;  // physical block of each block_size-token chunk, in order
};

struct Batch {
  std::vector<int32_t> token_ids;     // [num_tokens]
  std::vector<int32_t> positions;     // [num_tokens]
  std::vector<BatchSequence> sequences;
  std::vector<int64_t> slot_mapping;  // [num_tokens] cache slot (block * block_size + offset)
  std::vector<int32_t> logit_rows;    // rows of the batch whose logits forward() returns, in order

  int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }

  // Checks internal consistency against the model and the cache geometry: sizes agree, ids are in
  // the vocabulary, sequences tile the rows, positions and slots match the block tables.
  Status validate(int64_t vocab_size, int64_t num_blocks, int64_t block_size) const;
};

// Convenience for callers that manage their own blocks: appends `tokens` of one sequence whose
// cache already holds `cached` tokens, deriving positions and slots from `block_table`.
// `want_logits`: request logits for the last new token.
void append_sequence(Batch& batch, const std::vector<int32_t>& tokens, int32_t cached,
                     const std::vector<int32_t>& block_table, int64_t block_size,
                     bool want_logits);

}  // namespace latentserve::models
