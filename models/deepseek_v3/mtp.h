// The Multi-Token-Prediction module (checkpoint layer num_hidden_layers + k): from the main model's
// final-norm hidden state at position i and the token at i + 1 it predicts the token at i + 2.
// The engine uses it as the draft model of speculative decoding.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/moe_router.h"
#include "models/batch.h"
#include "models/config.h"
#include "models/deepseek_v3/mla.h"
#include "models/deepseek_v3/trace.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::models::deepseek_v3 {

// Cache layout of an MTP layer: the latent of MTP position i is stored at the slot of position
// i + 1 in the sequence's block table. A full block then holds only entries that depend on the
// tokens in and before it (position i's entry depends on tokens 0..i+1), so prefix-cache blocks
// are valid for the MTP layer exactly as for the main layers. Slot 0 of the layer is never used.
inline int64_t mtp_slot(const int32_t* block_table, int64_t block_size, int64_t position) {
  const int64_t p = position + 1;
  return int64_t(block_table[p / block_size]) * block_size + p % block_size;
}

// What one MTP layer's forward reads besides its weights; owned by the Model.
struct MtpContext {
  const ModelConfig* config = nullptr;
  const MtpLayerWeights* weights = nullptr;
  const MlaLayer* attention = nullptr;
  const std::vector<float>* rope_inv_freq = nullptr;
  const kernels::cpu::RouterParams* router = nullptr;
  MlaForm form = MlaForm::kAbsorbed;
};

struct MtpForwardOutput {
  std::vector<float> logits;  // [batch.logit_rows.size(), vocab_size]: drafts for position i + 2
  std::vector<float> hidden;  // [num_tokens, hidden]: shared_head.norm output (input of a chained step)
};

// Row r of `batch` is MTP position batch.positions[r] with token_ids[r] = t_{i+1}; `hidden` row r
// is h_i ([num_tokens, hidden]). The batch is laid out as for the main model (context_len counts
// MTP positions); each block table must cover context_len + 1 tokens because of the shifted
// layout. The caller validates the batch.
MtpForwardOutput mtp_forward_layer(const MtpContext& ctx, const Batch& batch, const float* hidden,
                             const kernels::cpu::LatentCache& cache, ForwardTrace* trace);

}  // namespace latentserve::models::deepseek_v3
