// The DeepSeek-V3 forward pass on the CPU: embedding, decoder layers (MLA + dense MLP or MoE),
// final norm and lm_head, over a Batch of sequences of different lengths with a paged latent cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "models/batch.h"
#include "models/checkpoint.h"
#include "models/config.h"
#include "kernels/cpu/moe_router.h"
#include "models/deepseek_v3/mla.h"
#include "models/deepseek_v3/mtp.h"
#include "models/deepseek_v3/trace.h"
#include "models/deepseek_v3/weights.h"
#include "models/latent_cache.h"

namespace latentserve::models::deepseek_v3 {

struct ModelOptions {
  MlaForm mla_form = MlaForm::kAbsorbed;
  // How the checkpoint's bytes come into memory. kCopy costs RAM equal to the checkpoint (the
  // page cache holding the files may then be dropped) and gives the CPU forward pass weights
  // on huge pages; see benchmarks/RESULTS.md (weight_load) for what that buys.
  WeightLoad weight_load = WeightLoad::kMmap;
};

// Benchmarks only: one record per forward call (main model or MTP layer) with the routed
// experts its MoE layers touched, so a memory-bound step's weight reads can be counted from the
// routing actually taken. Appended by the thread running the forward; read it while none runs.
struct RoutingRecord {
  bool mtp = false;
  int64_t tokens = 0;            // batch rows
  int64_t logit_rows = 0;
  int64_t max_query_len = 0;     // longest sequence in the call (tells prefill from decode)
  int64_t moe_layers = 0;        // MoE layers run
  int64_t distinct_experts = 0;  // summed over those layers: routed experts with at least one row
};
using RoutingLog = std::vector<RoutingRecord>;

struct ForwardOutput {
  std::vector<float> logits;  // [batch.logit_rows.size(), vocab_size]
  std::vector<float> hidden;  // [num_tokens, hidden_size]: final-norm output (the MTP input)
};

class Model {
 public:
  // Reads DIR/config.json and the checkpoint, validates every tensor, precomputes what the
  // forward pass reuses (RoPE frequencies, absorbed attention matrices).
  static Result<std::unique_ptr<Model>> load(const std::string& model_dir,
                                             const ModelOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const DeepseekV3Weights& weights() const { return weights_; }
  void set_mla_form(MlaForm form) { options_.mla_form = form; }
  // Benchmarks only: appends a record of each forward call to `log` (null: off, the default).
  void set_routing_log(RoutingLog* log) { routing_log_ = log; }

  // Number of cache layers forward() uses (the main layers; MTP layers come after them).
  int64_t num_cache_layers() const { return config_.num_hidden_layers; }
  // MTP layers the checkpoint carries (0 when it has none), and the cache layers forward() and
  // mtp_forward() use together: MTP layer k is cache layer num_hidden_layers + k.
  int64_t num_mtp_layers() const { return int64_t(weights_.mtp.size()); }
  int64_t num_cache_layers_with_mtp() const { return num_cache_layers() + num_mtp_layers(); }

  // Runs the batch. Invalid batches (see Batch::validate) return an error and leave the cache
  // untouched. `trace`, when given, records named intermediates.
  Result<ForwardOutput> forward(const Batch& batch, const LatentCacheStorage& cache,
                                ForwardTrace* trace = nullptr) const;

  // Runs MTP layer `mtp_layer` (see mtp.h for the inputs and the cache layout): row r is MTP
  // position batch.positions[r] with token t_{i+1} = batch.token_ids[r] and hidden row r = h_i
  // ([num_tokens, hidden]: the main model's final-norm output, or a previous MTP step's
  // `hidden` when chaining). Invalid input returns an error and leaves the cache untouched.
  Result<MtpForwardOutput> mtp_forward(const Batch& batch, const std::vector<float>& hidden,
                                       const LatentCacheStorage& cache, int64_t mtp_layer = 0,
                                       ForwardTrace* trace = nullptr) const;

 private:
  Model() = default;

  ModelConfig config_;
  ModelOptions options_;
  Checkpoint checkpoint_;
  DeepseekV3Weights weights_;
  std::vector<MlaLayer> attention_;
  std::vector<MlaLayer> mtp_attention_;
  std::vector<float> rope_inv_freq_;
  kernels::cpu::RouterParams router_;
  RoutingLog* routing_log_ = nullptr;
};

}  // namespace latentserve::models::deepseek_v3
