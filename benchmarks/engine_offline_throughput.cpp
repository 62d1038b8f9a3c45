// Offline throughput of the engine: N requests submitted at once against the same requests run
// one at a time (max_num_seqs = 1), in one run, on the realistic `lite` preset (DeepSeek-V2-Lite
// layer shapes; --num-layers N and --fp8 1 as in bench_engine_speculative, whose model it then
// reuses) unless --model is given, on the CPU (the default, comparable with
// benchmarks/RESULTS.md) or --device cuda|auto. Also reports the engine's own time per step
// (everything but the forward pass) as a share of the step, and the key ratios as
// "| metric | measured | reference | ratio | target |" rows for benchmarks/gpu/check.sh. The two
// runs' engines share one executor, made once (the weights go to the device once).
//
//   bench_engine_offline_throughput [--model DIR | --num-layers N --fp8 1] [--no-mmap 1] [--device cpu|cuda|auto]
//                                   [--requests 256] [--prompt-len 8] [--max-tokens 8]
//                                   [--sequential 16] [--warmup N]
//
// --sequential N runs only the first N requests one at a time (throughput is a rate, so a subset
// measures it; pass the full count to run them all). --warmup N: each engine first generates N
// tokens for as many fresh requests as it will time (default 2 on CUDA, where the first steps of a
// batch size capture CUDA graphs and choose GEMM plans; 0 on the CPU).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "benchmarks/bench_model.h"
#include "engine/collected.h"
#include "engine/device_executor.h"
#include "engine/engine.h"

using namespace latentserve;

namespace {

using models::deepseek_v3::Device;

struct Options : bench::ModelRunOptions {
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
    if (o.parse_option(k, v)) continue;
    if (k == "--requests") o.requests = std::atoi(v);
    else if (k == "--prompt-len") o.prompt_len = std::atoi(v);
    else if (k == "--max-tokens") o.max_tokens = std::atoi(v);
    else if (k == "--sequential") o.sequential = std::atoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      std::exit(2);
    }
  }
  o.finish();
  return o;
}

struct RunResult {
  double seconds = 0;
  int64_t tokens = 0;
  engine::EngineStats stats;  // the timed requests only
};

constexpr int64_t kBlockSize = 64;

// The executor both runs use, one after the other, so the weights go to the device once. No
// speculation here: the main layers' cache only.
std::shared_ptr<models::deepseek_v3::ModelExecutor> shared_executor(const models::deepseek_v3::Model& model,
                                                                    const Options& o) {
  models::deepseek_v3::ExecutorConfig ec;
  ec.device = o.device;
  ec.num_cache_layers = model.num_cache_layers();
  ec.block_size = kBlockSize;
  ec.num_blocks = 2048;
  return bench::make_bench_executor(model, ec);
}

// One engine on `executor` running `requests` with at most `max_num_seqs` at a time, timed after
// the warm-up.
RunResult run(const models::deepseek_v3::Model& model, std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
              const std::vector<engine::Request>& requests, int64_t max_num_seqs, const Options& o) {
  engine::EngineConfig config;
  config.log_startup = false;
  config.block_size = kBlockSize;
  config.scheduler.max_num_seqs = max_num_seqs;
  auto engine = engine::Engine::create(model, std::move(executor), config);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.error().message.c_str());
    std::exit(1);
  }
  if (o.warmup > 0) {
    std::mt19937 warm_rng(11);
    std::vector<engine::RequestHandle> handles;
    for (auto& r : bench::random_requests(int(requests.size()), o.prompt_len, o.warmup, model.config().vocab_size,
                                          warm_rng)) {
      handles.push_back(std::move((*engine)->submit(std::move(r))).value());
    }
    for (auto& h : handles) (void)engine::collect_all(h);
  }
  (*engine)->wait_idle();
  const engine::EngineStats before = (*engine)->stats();
  const auto start = std::chrono::steady_clock::now();
  std::vector<engine::RequestHandle> handles;
  for (const auto& r : requests) handles.push_back(std::move((*engine)->submit(r)).value());
  RunResult result;
  for (auto& h : handles) result.tokens += engine::collect_all(h).usage.completion_tokens;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*engine)->wait_idle();
  result.stats = bench::stats_since((*engine)->stats(), before);
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
  auto model = latentserve::bench::load_bench_model(o.model, o.num_layers, o.fp8, o.no_mmap);
  if (!model) return 1;
  std::mt19937 rng(1);
  const std::vector<engine::Request> requests =
      bench::random_requests(o.requests, o.prompt_len, o.max_tokens, model->config().vocab_size, rng);
  const int sequential = std::min(o.sequential, o.requests);
  std::vector<engine::Request> subset(requests.begin(), requests.begin() + sequential);

  std::printf("model %s, %d requests x (%d prompt + %d generated tokens), device %s, warm-up %d tokens\n",
              o.model.c_str(), o.requests, o.prompt_len, o.max_tokens, models::deepseek_v3::device_name(o.device),
              o.warmup);
  const auto executor = shared_executor(*model, o);
  const RunResult batched = run(*model, executor, requests, 256, o);
  std::printf("executor: %s\n", batched.stats.device.c_str());
  const RunResult alone = run(*model, executor, subset, 1, o);
  std::printf("| %-12s | %8s | %8s | %9s | %10s | %6s | %10s | %9s |\n", "run", "", "tokens", "seconds",
              "tokens/s", "steps", "ms/step", "overhead");
  std::printf("|--------------|----------|----------|-----------|------------|--------|------------|-----------|\n");
  report("all at once", batched);
  report("one at a time", alone);
  const double rate = batched.tokens / batched.seconds, alone_rate = alone.tokens / alone.seconds;
  const double overhead = 100.0 * batched.stats.overhead_seconds /
                          std::max(batched.stats.forward_seconds + batched.stats.overhead_seconds, 1e-9);
  std::printf("throughput ratio (all at once / one at a time): %.2f\n", rate / alone_rate);
  std::printf("engine overhead per step (all at once): %.2f%% of the step (target < 5%%)\n", overhead);
  const char* device = models::deepseek_v3::device_name(o.device);
  std::printf("| offline tokens/s, %d requests at once vs one at a time (%s) | %.1f | %.1f | %.2f | - |\n", o.requests,
              device, rate, alone_rate, rate / alone_rate);
  std::printf("| engine overhead per step, %d requests at once (%s) | %.2f%% | | | < 5%% |\n", o.requests, device,
              overhead);
  return 0;
}
