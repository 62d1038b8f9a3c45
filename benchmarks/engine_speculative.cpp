// Decode throughput with and without MTP speculative decoding at batch sizes 1, 8 and 64, on the
// realistic `lite` preset (DeepSeek-V2-Lite layer shapes, 4 layers) unless --model is given.
// Drafts are forced to agree with the main model at a known rate a (the engine's test hook, fed
// with the greedy outputs of the run without speculation), so acceptance is not left to the
// random weights. Prints tokens per step and the throughput ratio for each a.
//
//   bench_engine_speculative [--model DIR] [--tokens 16] [--prompt-len 4] [--k 1] [--batches 1,8,64]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/collected.h"
#include "engine/engine.h"
#include "models/make_model.h"

using namespace latentserve;

namespace {

struct Options {
  std::string model;
  int tokens = 16;
  int prompt_len = 4;
  int k = 1;
  std::vector<int> batches = {1, 8, 64};
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const char* v = argv[i + 1];
    if (key == "--model") o.model = v;
    else if (key == "--tokens") o.tokens = std::atoi(v);
    else if (key == "--prompt-len") o.prompt_len = std::atoi(v);
    else if (key == "--k") o.k = std::atoi(v);
    else if (key == "--batches") {
      o.batches.clear();
      std::stringstream ss(v);
      for (std::string b; std::getline(ss, b, ',');) o.batches.push_back(std::atoi(b.c_str()));
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      std::exit(2);
    }
  }
  return o;
}

struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> outputs;
  engine::EngineStats stats;
};

Run run(const models::deepseek_v3::Model& model, const std::vector<engine::Request>& requests,
        engine::SpeculativeConfig spec) {
  engine::EngineConfig config;
  config.log_startup = false;
  config.num_kv_blocks = 512;
  config.block_size = 16;
  config.speculative = std::move(spec);
  auto engine = engine::Engine::create(model, config);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.error().message.c_str());
    std::exit(1);
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) handles.push_back(std::move((*engine)->submit(r)).value());
  Run result;
  for (auto& h : handles) {
    engine::CollectedRequest c = engine::collect_all(h);
    result.tokens += c.usage.completion_tokens;
    result.outputs.push_back(c.completions.empty() ? std::vector<int32_t>{} : c.completions[0].token_ids);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*engine)->wait_idle();
  result.stats = (*engine)->stats();
  return result;
}

engine::DraftOracle oracle_from(const std::vector<engine::Request>& requests, const Run& reference) {
  auto table = std::make_shared<std::map<std::vector<int32_t>, std::vector<int32_t>>>();
  for (size_t i = 0; i < requests.size(); ++i) (*table)[requests[i].prompt_token_ids] = reference.outputs[i];
  return [table](std::span<const int32_t> prompt, std::span<const int32_t> out) -> std::optional<int32_t> {
    auto it = table->find(std::vector<int32_t>(prompt.begin(), prompt.end()));
    if (it == table->end() || out.size() >= it->second.size()) return std::nullopt;
    return it->second[out.size()];
  };
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (o.model.empty()) {
    o.model = (std::filesystem::temp_directory_path() / "latentserve-bench-lite").string();
    if (!std::filesystem::exists(o.model + "/config.json")) {
      std::fprintf(stderr, "making the lite preset in %s ...\n", o.model.c_str());
      models::MakeModelOptions m;
      m.preset = "lite";
      m.out_dir = o.model;
      if (Status s = models::make_model(m); !s.ok()) {
        std::fprintf(stderr, "%s\n", s.error().message.c_str());
        return 1;
      }
    }
  }
  auto model = models::deepseek_v3::Model::load(o.model);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.error().message.c_str());
    return 1;
  }
  const int64_t vocab = (*model)->config().vocab_size;
  std::printf("model %s, K = %d, %d prompt + %d generated tokens per request (greedy)\n", o.model.c_str(), o.k,
              o.prompt_len, o.tokens);
  std::printf("| batch | a    | tokens/step | accepted | seconds | tokens/s | ratio | same output |\n");
  std::printf("|-------|------|-------------|----------|---------|----------|-------|-------------|\n");
  std::mt19937 rng(7);
  {  // warm-up: the first run pages the mapped weights in
    engine::Request r;
    r.prompt_token_ids = {1, 2, 3};
    r.params.temperature = 0.0f;
    r.params.max_tokens = 4;
    engine::SpeculativeConfig spec;
    spec.num_speculative_tokens = o.k;
    (void)run(**model, {r}, spec);
  }
  for (int b : o.batches) {
    std::vector<engine::Request> requests;
    for (int i = 0; i < b; ++i) {
      engine::Request r;
      for (int t = 0; t < o.prompt_len; ++t) r.prompt_token_ids.push_back(int32_t(rng() % vocab));
      r.params.temperature = 0.0f;
      r.params.max_tokens = o.tokens;
      r.params.ignore_eos = true;
      requests.push_back(std::move(r));
    }
    const Run base = run(**model, requests, {});
    const double base_rate = double(base.tokens) / base.seconds;
    std::printf("| %5d | off  | %11.2f | %8s | %7.2f | %8.1f | %5.2f | %11s |\n", b, 1.0, "-", base.seconds,
                base_rate, 1.0, "-");
    std::fflush(stdout);
    for (double a : {0.0, 0.5, 0.9, 1.0}) {
      engine::SpeculativeConfig spec;
      spec.num_speculative_tokens = o.k;
      spec.forced_acceptance = a;
      spec.oracle = oracle_from(requests, base);
      const Run r = run(**model, requests, spec);
      const double rate = double(r.tokens) / r.seconds;
      std::printf("| %5d | %.2f | %11.2f | %7.1f%% | %7.2f | %8.1f | %5.2f | %11s |\n", b, a,
                  r.stats.spec_mean_tokens_per_step(),
                  100.0 * double(r.stats.spec_accepted_tokens) / double(std::max<int64_t>(1, r.stats.spec_drafted_tokens)),
                  r.seconds, rate, rate / base_rate, r.outputs == base.outputs ? "yes" : "NO");
      std::fflush(stdout);
    }
  }
  return 0;
}
