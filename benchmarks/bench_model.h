// What the engine benchmarks share: the model they run (the folder given with --model, or the
// `lite` preset, DeepSeek-V2-Lite layer shapes, made once in the temp folder and named after its
// layers and dtype), the --device option, the executor its engines share, random requests, and
// engine counters over one window.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/device_executor.h"
#include "engine/engine.h"
#include "models/deepseek_v3/executor.h"
#include "models/deepseek_v3/model.h"
#include "models/make_model.h"

namespace latentserve::bench {

// Loads `dir`, or (when empty) the lite preset with `num_layers` (0: the preset's) and optional
// FP8 weights, making it first if absent; `dir` is set to the folder used. `copy_weights`: read
// the weights onto huge pages instead of mapping the files (the server's --no-mmap). Prints what
// went wrong and returns null on failure.
inline std::unique_ptr<models::deepseek_v3::Model> load_bench_model(std::string& dir, int num_layers = 0,
                                                                   bool fp8 = false,
                                                                   bool copy_weights = false) {
  if (dir.empty()) {
    std::string name = "latentserve-bench-lite";
    if (num_layers > 0) name += "-" + std::to_string(num_layers) + "l";
    if (fp8) name += "-fp8";
    dir = (std::filesystem::temp_directory_path() / name).string();
    if (!std::filesystem::exists(dir + "/config.json")) {
      std::fprintf(stderr, "making the lite preset in %s ...\n", dir.c_str());
      models::MakeModelOptions m;
      m.preset = "lite";
      m.out_dir = dir;
      m.num_layers = num_layers;
      m.fp8 = fp8;
      if (Status s = models::make_model(m); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.error().message.c_str());
        return nullptr;
      }
    }
  }
  models::deepseek_v3::ModelOptions options;
  options.weight_load = copy_weights ? models::WeightLoad::kCopy : models::WeightLoad::kMmap;
  auto model = models::deepseek_v3::Model::load(dir, options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s: %s\n", dir.c_str(), model.error().message.c_str());
    return nullptr;
  }
  return std::move(model).value();
}

// The executor a benchmark's engines share in turn (the weights go to the device once); prints the
// error and exits when it cannot be made.
inline std::shared_ptr<models::deepseek_v3::ModelExecutor> make_bench_executor(
    const models::deepseek_v3::Model& model, const models::deepseek_v3::ExecutorConfig& config) {
  auto executor = engine::make_executor(model, config);
  if (!executor.ok()) {
    std::fprintf(stderr, "%s\n", executor.error().message.c_str());
    std::exit(1);
  }
  return std::move(executor).value();
}

// --device: "cpu", "cuda" or "auto" (a GPU when this build has CUDA and one is present). Auto is
// resolved here, before any engine exists, so a benchmark knows which machine it prices.
inline std::optional<models::deepseek_v3::Device> parse_bench_device(const std::string& name) {
  auto d = models::deepseek_v3::parse_device(name);
  if (!d.ok()) {
    std::fprintf(stderr, "--device: %s\n", d.error().message.c_str());
    return std::nullopt;
  }
  if (*d == models::deepseek_v3::Device::kAuto) {
    return engine::cuda_device_present() ? models::deepseek_v3::Device::kCuda : models::deepseek_v3::Device::kCpu;
  }
  return *d;
}

// The options both engine benchmarks share: which model, how its weights are loaded, where it
// runs and how many warm-up tokens each batch gets before it is timed.
struct ModelRunOptions {
  std::string model;     // --model DIR; empty: the lite preset (made on first use)
  int num_layers = 0;    // --num-layers N for the preset (0: the preset's)
  bool fp8 = false;      // --fp8 1: the preset with FP8 weights
  bool no_mmap = false;  // --no-mmap 1: weights copied onto huge pages
  int warmup = -1;       // --warmup N; -1: 2 on CUDA (graph capture, GEMM plans), 0 on the CPU
  models::deepseek_v3::Device device = models::deepseek_v3::Device::kCpu;  // --device; auto resolved

  // Takes `key value` when the key is one of the options above (exiting with 2 on a bad device);
  // false for any other key.
  bool parse_option(const std::string& key, const char* value) {
    if (key == "--model") model = value;
    else if (key == "--num-layers") num_layers = std::atoi(value);
    else if (key == "--fp8") fp8 = std::atoi(value) != 0;
    else if (key == "--no-mmap") no_mmap = std::atoi(value) != 0;
    else if (key == "--warmup") warmup = std::atoi(value);
    else if (key == "--device") {
      const auto d = parse_bench_device(value);
      if (!d) std::exit(2);
      device = *d;
    } else {
      return false;
    }
    return true;
  }
  // After parsing: the warm-up default for the device.
  void finish() {
    if (warmup < 0) warmup = device == models::deepseek_v3::Device::kCuda ? 2 : 0;
  }
};

// `count` greedy requests of `prompt_len` random tokens each, generating exactly `max_tokens`.
inline std::vector<engine::Request> random_requests(int count, int prompt_len, int max_tokens, int64_t vocab,
                                                    std::mt19937& rng) {
  std::vector<engine::Request> requests;
  for (int i = 0; i < count; ++i) {
    engine::Request r;
    for (int t = 0; t < prompt_len; ++t) r.prompt_token_ids.push_back(int32_t(rng() % uint32_t(vocab)));
    r.params.temperature = 0.0f;
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

// The engine's cumulative counters over a window (`now` minus `before`), so that one engine can
// warm up (CUDA graph capture, GEMM plans) or serve several measurements and each is read alone.
inline engine::EngineStats stats_since(const engine::EngineStats& now, const engine::EngineStats& before) {
  engine::EngineStats d = now;
  d.num_steps -= before.num_steps;
  d.num_preemptions -= before.num_preemptions;
  d.prompt_tokens -= before.prompt_tokens;
  d.generated_tokens -= before.generated_tokens;
  d.forward_seconds -= before.forward_seconds;
  d.overhead_seconds -= before.overhead_seconds;
  d.spec_drafted_tokens -= before.spec_drafted_tokens;
  d.spec_accepted_tokens -= before.spec_accepted_tokens;
  d.spec_verify_steps -= before.spec_verify_steps;
  d.spec_emitted_tokens -= before.spec_emitted_tokens;
  for (size_t i = 0; i < d.spec_drafted_per_position.size() && i < before.spec_drafted_per_position.size(); ++i) {
    d.spec_drafted_per_position[i] -= before.spec_drafted_per_position[i];
    d.spec_accepted_per_position[i] -= before.spec_accepted_per_position[i];
  }
  return d;
}

}  // namespace latentserve::bench
