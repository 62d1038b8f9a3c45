// Offline throughput of the engine: N requests submitted at once against the same requests run
// one at a time (max_num_seqs = 1), in one run, on the realistic `lite` preset (DeepSeek-V2-Lite
// layer shapes) unless --model is given. Also reports the engine's own time per step (everything
// but the forward pass) as a share of the step.
//
//   bench_engine_offline_throughput [--model DIR] [--requests 256] [--prompt-len 8]
//                                   [--max-tokens 8] [--sequential 16]
//
// --sequential N runs only the first N requests one at a time (throughput is a rate, so a subset
// measures it; pass the full count to run them all).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/collected.h"
#include "engine/engine.h"
#include "benchmarks/bench_model.h"

using namespace latentserve;

namespace {

struct Options {
  std::string model;
  int requests = 256;
  int prompt_len = 8;
  int max_tokens = 8;
  int sequential = 16;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--model") o.model = v;
    else if (k == "--requests") o.requests = std::atoi(v);
    else if (k == "--prompt-len") o.prompt_len = std::atoi(v);
    else if (k == "--max-tokens") o.max_tokens = std::atoi(v);
    else if (k == "--sequential") o.sequential = std::atoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  return o;
}

struct RunResult {
  double seconds = 0;
  int64_t tokens = 0;
  engine::EngineStats stats;
};

RunResult run(const models::deepseek_v3::Model& model, const std::vector<engine::Request>& requests,
              int64_t max_num_seqs) {
  engine::EngineConfig config;
  config.log_startup = false;
  config.scheduler.max_num_seqs = max_num_seqs;
  config.num_kv_blocks = 2048;
  auto engine = engine::Engine::create(model, config);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.error().message.c_str());
    std::exit(1);
  }
  const auto start = std::chrono::steady_clock::now();
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) handles.push_back(std::move((*engine)->submit(r)).value());
  RunResult result;
  for (auto& h : handles) result.tokens += engine::collect_all(h).usage.completion_tokens;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*engine)->wait_idle();
  result.stats = (*engine)->stats();
  return result;
}

void report(const char* name, const RunResult& r) {
  const double step = r.stats.forward_seconds + r.stats.overhead_seconds;
  std::printf("| %-12s | %8s | %8lld | %9.2f | %10.1f | %6lld | %10.2f | %8.2f%% |\n", name,
              "", (long long)r.tokens, r.seconds, r.tokens / r.seconds,
              (long long)r.stats.num_steps, 1e3 * step / double(std::max<int64_t>(1, r.stats.num_steps)),
              100.0 * r.stats.overhead_seconds / std::max(step, 1e-9));
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto model = latentserve::bench::load_bench_model(o.model);
  if (!model) return 1;
  const int64_t vocab = model->config().vocab_size;
  std::mt19937 rng(1);
  std::vector<engine::Request> requests;
  for (int i = 0; i < o.requests; ++i) {
    engine::Request r;
    for (int t = 0; t < o.prompt_len; ++t) r.prompt_token_ids.push_back(int32_t(rng() % vocab));
    r.params.temperature = 0.0f;
    r.params.max_tokens = o.max_tokens;
    r.params.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  const int sequential = std::min(o.sequential, o.requests);
  std::vector<engine::Request> subset(requests.begin(), requests.begin() + sequential);

  std::printf("model %s, %d requests x (%d prompt + %d generated tokens)\n", o.model.c_str(), o.requests,
              o.prompt_len, o.max_tokens);
  const RunResult batched = run(*model, requests, 256);
  const RunResult alone = run(*model, subset, 1);
  std::printf("| %-12s | %8s | %8s | %9s | %10s | %6s | %10s | %9s |\n", "run", "", "tokens", "seconds",
              "tokens/s", "steps", "ms/step", "overhead");
  std::printf("|--------------|----------|----------|-----------|------------|--------|------------|-----------|\n");
  report("all at once", batched);
  report("one at a time", alone);
  std::printf("throughput ratio (all at once / one at a time): %.2f\n",
              (batched.tokens / batched.seconds) / (alone.tokens / alone.seconds));
  std::printf("engine overhead per step (all at once): %.2f%% of the step (target < 5%%)\n",
              100.0 * batched.stats.overhead_seconds /
                  std::max(batched.stats.forward_seconds + batched.stats.overhead_seconds, 1e-9));
  return 0;
}
