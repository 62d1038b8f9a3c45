#include "server/engine_options.h"


namespace latentserve::server {

std::vector<OptionSpec> engine_option_specs() {
  return {
      {"device", true, "where the model runs: cpu, cuda or auto (default: a GPU when this build has "
                       "CUDA and one is present, else the CPU)"},
      {"block-size", true, "tokens per latent-cache block (default 64)"},
      {"num-kv-blocks", true, "latent-cache blocks (overrides --kv-cache-memory)"},
      {"kv-cache-memory", true, "latent-cache bytes (default on the CPU: a fifth of available memory, "
                                "at most 8 GiB; on a GPU: the CUDA executor's default)"},
      {"max-num-seqs", true, "sequences per step (default 256)"},
      {"max-num-batched-tokens", true, "new tokens per step (default 2048)"},
      {"no-prefix-cache", false, "do not reuse cached prompt prefixes"},
      {"speculative", true, "speculative decoding method: mtp (drafts from the checkpoint's MTP layer)"},
      {"num-speculative-tokens", true, "drafts per sequence and step with --speculative (default 1)"},
      {"no-mmap", false, "copy the weights into memory, on 2 MiB huge pages where the kernel allows "
                         "(CPU decode reads them a little faster); costs RAM equal to the checkpoint's "
                         "size and a whole read at start"},
      {"mmap", false, "map the checkpoint files (the default)"},
  };
}

Result<engine::EngineConfig> engine_config_from(const ParsedOptions& options) {
  engine::EngineConfig config;
  if (options.has("device")) {
    auto device = models::deepseek_v3::parse_device(options.get_or("device", ""));
    if (!device.ok()) return device.error().with_context("--device");
    config.device = *device;
  }
  auto positive = [&](const char* name, int64_t fallback) -> Result<int64_t> {
    LS_ASSIGN_OR_RETURN(int64_t v, options.get_int(name, fallback));
    if (v < 1) return make_error(std::string("--") + name + " must be at least 1");
    return v;
  };
  LS_ASSIGN_OR_RETURN(config.block_size, positive("block-size", 64));
  LS_ASSIGN_OR_RETURN(config.scheduler.max_num_seqs, positive("max-num-seqs", 256));
  LS_ASSIGN_OR_RETURN(config.scheduler.max_num_batched_tokens, positive("max-num-batched-tokens", 2048));
  if (options.has("num-kv-blocks")) {
    LS_ASSIGN_OR_RETURN(int64_t blocks, positive("num-kv-blocks", 1));
    config.num_kv_blocks = blocks;
  }
  if (options.has("kv-cache-memory")) {
    LS_ASSIGN_OR_RETURN(int64_t bytes, positive("kv-cache-memory", 1));
    config.kv_cache_memory = bytes;
  }
  config.enable_prefix_cache = !options.has("no-prefix-cache");
  if (options.has("speculative")) {
    const std::string method = options.get_or("speculative", "");
    if (method != "mtp") {
      return make_error("--speculative: unknown method '" + method + "' (supported: mtp)");
    }
    LS_ASSIGN_OR_RETURN(int64_t k, positive("num-speculative-tokens", 1));
    if (k > 16) return make_error("--num-speculative-tokens must be at most 16, got " + std::to_string(k));
    config.speculative.num_speculative_tokens = int32_t(k);
  } else if (options.has("num-speculative-tokens")) {
    return make_error("--num-speculative-tokens needs --speculative mtp");
  }
  return config;
}

// Mapped files by default, as llama.cpp does: start-up reads only what is touched and the pages
// are shared with the page cache. A copy on huge pages made CPU decode only about 5% faster
// (benchmarks/RESULTS.md, weight loading), too little to double the memory by default.
Result<models::deepseek_v3::ModelOptions> model_options_from(const ParsedOptions& options) {
  if (options.has("mmap") && options.has("no-mmap")) return make_error("--mmap and --no-mmap contradict each other");
  models::deepseek_v3::ModelOptions model;
  model.weight_load = options.has("no-mmap") ? models::WeightLoad::kCopy : models::WeightLoad::kMmap;
  return model;
}

}  // namespace latentserve::server
