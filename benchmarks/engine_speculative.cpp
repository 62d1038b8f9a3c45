// Decode throughput with and without MTP speculative decoding at batch sizes 1, 8 and 64 (or
// --batches), on the `lite` preset (DeepSeek-V2-Lite layer shapes; 4 layers, or --num-layers N for
// a realistic proportion of MTP module to main model; --fp8 for FP8 weights) unless --model is
// given, on the CPU (the default, comparable with benchmarks/RESULTS.md) or --device cuda|auto.
// Drafts are forced to agree with the main model at a known rate a (the engine's test hook, fed
// with the greedy outputs of the run without speculation), so acceptance is not left to the
// random weights. One engine per setting (off, each a, off again) runs every batch in turn, all on
// one executor made at the start (the weights go to the device once); each batch is timed alone, after --warmup tokens of same-sized requests in that engine (default 2 on
// CUDA, where the first steps of a batch size capture CUDA graphs and choose GEMM plans; 0 on the
// CPU, after paging every weight in). Prints tokens per step and the throughput ratio for each a,
// against the mean of the two runs without speculation.
// Beside each row, a roofline (speculative_roofline.h): the weight bytes and FLOPs of the step,
// priced with the machine's bandwidth and FLOP rate. On the CPU: the routing the run took and this
// machine measured in the same run. On CUDA: uniform routing (the CUDA executor logs none) and the
// GPU's ceilings from LATENTSERVE_CEILING_COPY_BYTES_PER_S / _FP8_TFLOPS (benchmarks/gpu/check.sh
// exports them; without them the roofline is left out). Then the same for DeepSeek-V3's real
// shapes, the anatomy of one batch-1 step on the device (main forward, MTP forward, verification,
// the engine's own work), and the key ratios as "| metric | measured | reference | ratio | target |"
// rows, which check.sh copies into its final table.
//
//   bench_engine_speculative [--model DIR | --num-layers N --fp8 1] [--no-mmap 1] [--device cpu|cuda|auto]
//                            [--tokens 16] [--prompt-len 4] [--k 1] [--batches 1,8,64]
//                            [--anatomy 5] [--warmup N]
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
#include "benchmarks/bench_model.h"
#include "benchmarks/speculative_roofline.h"
#include "engine/device_executor.h"

using namespace latentserve;

namespace {

using models::deepseek_v3::Device;

struct Options : bench::ModelRunOptions {
  int tokens = 16;
  int prompt_len = 4;
  int k = 1;
  int anatomy = 5;  // direct-call repeats for the batch-1 step anatomy (0: none)
  std::vector<int> batches = {1, 8, 64};
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const char* v = argv[i + 1];
    if (o.parse_option(key, v)) continue;
    if (key == "--tokens") o.tokens = std::atoi(v);
    else if (key == "--prompt-len") o.prompt_len = std::atoi(v);
    else if (key == "--k") o.k = std::atoi(v);
    else if (key == "--anatomy") o.anatomy = std::atoi(v);
    else if (key == "--batches") {
      o.batches.clear();
      std::stringstream ss(v);
      for (std::string b; std::getline(ss, b, ',');) o.batches.push_back(std::atoi(b.c_str()));
    } else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      std::exit(2);
    }
  }
  o.finish();
  return o;
}

struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> outputs;
  engine::EngineStats stats;
  models::deepseek_v3::RoutingLog routing;  // every forward call of the run
};

// Latent-cache blocks for the largest batch: each sequence's prompt, tokens and K lookahead
// slots, plus a block of slack (at least the 512 the CPU runs always had).
int64_t cache_blocks(const Options& o, int64_t block_size) {
  int max_batch = 1;
  for (int b : o.batches) max_batch = std::max(max_batch, b);
  const int64_t per_seq = (o.prompt_len + o.tokens + o.k + 1 + block_size - 1) / block_size + 1;
  return std::max<int64_t>(512, int64_t(max_batch) * per_seq);
}

constexpr int64_t kBlockSize = 16;

// The one executor every engine of the run uses, in turn: the weights on the device and a cache
// for the largest batch, with the MTP layer when the model has one.
std::shared_ptr<models::deepseek_v3::ModelExecutor> shared_executor(const models::deepseek_v3::Model& model,
                                                                    const Options& o) {
  models::deepseek_v3::ExecutorConfig ec;
  ec.device = o.device;
  ec.num_cache_layers = model.num_cache_layers_with_mtp();
  ec.block_size = kBlockSize;
  ec.num_blocks = cache_blocks(o, kBlockSize);
  return bench::make_bench_executor(model, ec);
}

// One engine on `executor` with the speculative setting `spec` runs each request set in turn;
// each run is timed alone (after `o.warmup` tokens of as many fresh requests, when asked) and gets
// its own counters and routing log. `description` receives the executor's.
std::vector<Run> run_sets(models::deepseek_v3::Model& model, std::shared_ptr<models::deepseek_v3::ModelExecutor> executor,
                          const std::vector<std::vector<engine::Request>>& sets, engine::SpeculativeConfig spec,
                          const Options& o, std::string* description) {
  engine::EngineConfig config;
  config.log_startup = false;
  config.block_size = kBlockSize;
  config.speculative = std::move(spec);
  auto engine = engine::Engine::create(model, std::move(executor), config);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.error().message.c_str());
    std::exit(1);
  }
  std::mt19937 warm_rng(11);
  std::vector<Run> runs;
  for (const auto& requests : sets) {
    if (o.warmup > 0) {
      auto warm = bench::random_requests(int(requests.size()), o.prompt_len, o.warmup, model.config().vocab_size,
                                         warm_rng);
      std::vector<engine::RequestHandle> handles;
      for (auto& r : warm) handles.push_back(std::move((*engine)->submit(std::move(r))).value());
      for (auto& h : handles) (void)engine::collect_all(h);
    }
    (*engine)->wait_idle();
    const engine::EngineStats before = (*engine)->stats();
    Run result;
    model.set_routing_log(&result.routing);  // the engine is idle: no forward runs meanwhile
    const auto start = std::chrono::steady_clock::now();
    std::vector<engine::RequestHandle> handles;
    for (const auto& r : requests) handles.push_back(std::move((*engine)->submit(r)).value());
    for (auto& h : handles) {
      engine::CollectedRequest c = engine::collect_all(h);
      result.tokens += c.usage.completion_tokens;
      result.outputs.push_back(c.completions.empty() ? std::vector<int32_t>{} : c.completions[0].token_ids);
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    (*engine)->wait_idle();
    model.set_routing_log(nullptr);
    result.stats = bench::stats_since((*engine)->stats(), before);
    runs.push_back(std::move(result));
  }
  if (description != nullptr) *description = (*engine)->stats().device;
  return runs;
}

// Every set's prompts mapped to the outputs of the run without speculation.
engine::DraftOracle oracle_from(const std::vector<std::vector<engine::Request>>& sets, const std::vector<Run>& reference) {
  auto table = std::make_shared<std::map<std::vector<int32_t>, std::vector<int32_t>>>();
  for (size_t s = 0; s < sets.size(); ++s) {
    for (size_t i = 0; i < sets[s].size(); ++i) (*table)[sets[s][i].prompt_token_ids] = reference[s].outputs[i];
  }
  return [table](std::span<const int32_t> prompt, std::span<const int32_t> out) -> std::optional<int32_t> {
    auto it = table->find(std::vector<int32_t>(prompt.begin(), prompt.end()));
    if (it == table->end() || out.size() >= it->second.size()) return std::nullopt;
    return it->second[out.size()];
  };
}

// Weight bytes, in total and read per token (attention, dense and shared parts, the router, and
// num_experts_per_tok of the routed experts); what a memory-bound decode step streams.
struct Bytes {
  double total = 0, per_token = 0;
  void add(const kernels::cpu::WeightMatrix& w, double share = 1.0) {
    if (w.empty()) return;
    double b = double(w.rows) * double(w.cols) * double(dtype_size(w.dtype));
    if (w.scale_inv != nullptr) {
      b += double((w.rows + w.block_rows - 1) / w.block_rows) * double((w.cols + w.block_cols - 1) / w.block_cols) * 4;
    }
    total += b;
    per_token += b * share;
  }
  void add(const models::deepseek_v3::MlpWeights& m, double share = 1.0) {
    add(m.gate_proj, share);
    add(m.up_proj, share);
    add(m.down_proj, share);
  }
  void add(const models::deepseek_v3::DecoderLayerWeights& l, const models::ModelConfig& c) {
    for (const auto* w : {&l.attn.q_a_proj, &l.attn.q_b_proj, &l.attn.q_proj, &l.attn.kv_a_proj_with_mqa,
                          &l.attn.kv_b_proj, &l.attn.o_proj}) {
      add(*w);
    }
    if (l.mlp) add(*l.mlp);
    if (l.moe) {
      add(l.moe->gate);
      for (const auto& e : l.moe->experts) add(e, double(c.num_experts_per_tok) / double(c.n_routed_experts));
      if (l.moe->shared_experts) add(*l.moe->shared_experts);
    }
  }
};

// Touches every page of every weight matrix, so that no measured run pays for reading the mapped
// checkpoint from disk (a short warm-up request reaches only the experts it routes to).
void page_in(const models::deepseek_v3::DeepseekV3Weights& w) {
  volatile uint8_t sink = 0;
  auto touch = [&](const kernels::cpu::WeightMatrix& m) {
    if (m.empty()) return;
    const auto* p = static_cast<const uint8_t*>(m.data);
    const size_t n = size_t(m.rows) * size_t(m.cols) * dtype_size(m.dtype);
    for (size_t i = 0; i < n; i += 4096) sink = sink + p[i];
    if (m.scale_inv != nullptr) sink = sink + static_cast<const uint8_t*>(static_cast<const void*>(m.scale_inv))[0];
  };
  auto mlp = [&](const models::deepseek_v3::MlpWeights& m) {
    touch(m.gate_proj);
    touch(m.up_proj);
    touch(m.down_proj);
  };
  auto layer = [&](const models::deepseek_v3::DecoderLayerWeights& l) {
    for (const auto* m : {&l.attn.q_a_proj, &l.attn.q_b_proj, &l.attn.q_proj, &l.attn.kv_a_proj_with_mqa,
                          &l.attn.kv_b_proj, &l.attn.o_proj}) {
      touch(*m);
    }
    if (l.mlp) mlp(*l.mlp);
    if (l.moe) {
      touch(l.moe->gate);
      for (const auto& e : l.moe->experts) mlp(e);
      if (l.moe->shared_experts) mlp(*l.moe->shared_experts);
    }
  };
  touch(w.embed_tokens);
  for (const auto& l : w.layers) layer(l);
  touch(w.lm_head);
  for (const auto& m : w.mtp) {
    touch(m.eh_proj);
    layer(m.block);
    touch(m.shared_head_head);
    touch(m.embed_tokens);
  }
}

void print_row(int batch, const char* a, double tokens_per_step, const std::string& accepted, const Run& r,
               double base_rate, const char* same) {
  const double rate = double(r.tokens) / r.seconds;
  std::printf("| %5d | %-4s | %11.2f | %8s | %7.2f | %8.1f | %5.2f | %11s |\n", batch, a, tokens_per_step,
              accepted.c_str(), r.seconds, rate, rate / base_rate, same);
}

void print_shape(const models::deepseek_v3::Model& model) {
  const auto& c = model.config();
  const auto& w = model.weights();
  int64_t moe = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) moe += c.is_moe_layer(l) ? 1 : 0;
  Bytes main, mtp;
  main.add(w.embed_tokens, 1.0 / double(c.vocab_size));
  for (const auto& l : w.layers) main.add(l, c);
  main.add(w.lm_head);
  bool shared = false;
  for (const auto& m : w.mtp) {
    mtp.add(m.eh_proj);
    mtp.add(m.block, c);
    // A shared head takes no memory of its own but is still streamed once more per draft step.
    shared = m.shared_head_head.data == w.lm_head.data;
    const double before = mtp.total;
    mtp.add(m.shared_head_head);
    if (shared) mtp.total = before;
    if (m.embed_tokens.data != w.embed_tokens.data) mtp.add(m.embed_tokens, 1.0 / double(c.vocab_size));
  }
  std::printf("shape: %lld layers (%lld dense, %lld MoE) + %zu MTP layer(s), hidden %lld, %lld experts (top %lld, "
              "%lld shared, width %lld), vocab %lld, %s\n",
              (long long)c.num_hidden_layers, (long long)(c.num_hidden_layers - moe), (long long)moe, w.mtp.size(),
              (long long)c.hidden_size, (long long)c.n_routed_experts, (long long)c.num_experts_per_tok,
              (long long)c.n_shared_experts, (long long)c.moe_intermediate_size, (long long)c.vocab_size,
              c.quantization ? "FP8 linear layers (embedding and heads BF16)" : "BF16");
  std::printf("weights: main %.2f GB (%.2f GB read per token), MTP module %.2f GB of its own (%.2f GB read per "
              "draft, head %s) -> MTP/main read per token %.2f\n",
              main.total / 1e9, main.per_token / 1e9, mtp.total / 1e9, mtp.per_token / 1e9,
              shared ? "shared with lm_head" : "its own copy", mtp.per_token / main.per_token);
}

// The roofline price of a run's average decode step: its decoding forward calls (those whose
// sequences carry at most `max_query_len` rows: not the prefill) over its main decode steps.
struct StepCost {
  bench::PassCost cost;
  double experts = 0;   // distinct routed experts per MoE layer in a main step
  double mtp_rows = 0;  // MTP rows per step
};

StepCost step_cost(const bench::ModelShape& shape, const Run& r, int64_t max_query_len, const bench::Machine& m) {
  StepCost s;
  int64_t steps = 0;
  for (const auto& rec : r.routing) {
    if (rec.max_query_len > max_query_len) continue;
    const double experts = rec.moe_layers ? double(rec.distinct_experts) / double(rec.moe_layers) : 0;
    const bench::PassCost c =
        bench::price(rec.mtp ? shape.mtp : shape.main, double(rec.tokens), double(rec.logit_rows), experts, m);
    s.cost.bytes += c.bytes;
    s.cost.flops += c.flops;
    s.cost.seconds += c.seconds;
    s.cost.kernel_seconds += c.kernel_seconds;
    if (rec.mtp) {
      s.mtp_rows += double(rec.tokens);
    } else {
      s.experts += experts;
      ++steps;
    }
  }
  const double n = double(std::max<int64_t>(1, steps));
  s.cost.bytes /= n;
  s.cost.flops /= n;
  s.cost.seconds /= n;
  s.cost.kernel_seconds /= n;
  s.experts /= n;
  s.mtp_rows /= n;
  return s;
}

// The same price under uniform routing, for executors that log no routing (CUDA): the main pass
// over (1 + K) rows per sequence, all through the head (1 row without drafts); with drafts, the
// MTP over the tokens_per_step newly verified rows per sequence (logits for one), then K - 1
// chained MTP passes of one row per sequence.
StepCost uniform_step_cost(const bench::ModelShape& shape, const models::ModelConfig& c, double batch, int k,
                           double tokens_per_step, const bench::Machine& m) {
  const double experts = double(c.n_routed_experts), top_k = double(c.num_experts_per_tok);
  auto add = [](StepCost& s, const bench::PassCost& p) {
    s.cost.bytes += p.bytes;
    s.cost.flops += p.flops;
    s.cost.seconds += p.seconds;
    s.cost.kernel_seconds += p.kernel_seconds;
  };
  StepCost s;
  const double rows = batch * double(1 + k);
  s.experts = bench::uniform_distinct(experts, top_k, rows);
  add(s, bench::price(shape.main, rows, rows, s.experts, m));
  if (k == 0) return s;
  const double verified = batch * tokens_per_step;
  add(s, bench::price(shape.mtp, verified, batch, bench::uniform_distinct(experts, top_k, verified), m));
  for (int i = 1; i < k; ++i) add(s, bench::price(shape.mtp, batch, batch, bench::uniform_distinct(experts, top_k, batch), m));
  s.mtp_rows = verified + batch * double(k - 1);
  return s;
}

void print_roofline_row(int batch, const char* a, double tokens_per_step, const StepCost& s, const Run& r,
                        const StepCost& off, double measured_ratio) {
  const double measured_ms = 1e3 * r.seconds / double(std::max<int64_t>(1, r.stats.num_steps));
  std::printf("| %5d | %-4s | %11.2f | %7.1f | %8.1f | %6.2f | %7.1f | %8.0f | %8.0f | %7.0f | %8.2f | %8.2f | %7.2f |\n",
              batch, a, tokens_per_step, s.experts, s.mtp_rows, s.cost.bytes / 1e9, s.cost.flops / 1e9,
              measured_ms, 1e3 * s.cost.seconds, 1e3 * s.cost.kernel_seconds, measured_ratio,
              tokens_per_step * off.cost.seconds / s.cost.seconds,
              tokens_per_step * off.cost.kernel_seconds / s.cost.kernel_seconds);
}

void print_roofline_header() {
  std::printf("| batch | a    | tokens/step | experts | MTP rows | GB     | GFLOP   | ms/step  | roofline | kernels |"
              " measured | roofline | kernels |\n");
  std::printf("|-------|------|-------------|---------|----------|--------|---------|----------|----------|---------|"
              "----------|----------|---------|\n");
}

// DeepSeek-V3's shapes at batch `batch`, uniform routing, K = 1, on a device of the given rates:
// tokens per step 1 + a; the main pass verifies 2 rows per sequence, the MTP runs over the 1 + a
// newly verified rows (expected) and drafts from one.
void print_deepseek_v3(const bench::Machine& device, const char* device_name) {
  const bench::ModelShape v3 = bench::deepseek_v3_shape();
  const bench::PassCost one = bench::price(v3.main, 1, 1, 8, device);
  const bench::PassCost mtp = bench::price(v3.mtp, 1, 1, 8, device);
  std::printf("DeepSeek-V3 shapes on %s (%.1f TB/s, %.0f TFLOP/s), uniform routing, K = 1: a token reads %.1f GB "
              "(main) + %.2f GB (MTP draft) -> MTP/main %.3f\n",
              device_name, device.read_bytes_per_s / 1e12, device.flops_per_s / 1e12, one.bytes / 1e9,
              mtp.bytes / 1e9, mtp.bytes / one.bytes);
  std::printf("| batch | a    | tokens/step | experts off | experts verify | step cost | speedup |\n");
  std::printf("|-------|------|-------------|-------------|----------------|-----------|---------|\n");
  for (int batch : {1, 8, 64, 256}) {
    for (double a : {0.0, 0.5, 0.9, 1.0}) {
      if (batch > 1 && a != 0.9) continue;
      const double b = batch;
      const double e_off = bench::uniform_distinct(256, 8, b), e_ver = bench::uniform_distinct(256, 8, 2 * b);
      const double off = bench::price(v3.main, b, b, e_off, device).seconds;
      const double ver = bench::price(v3.main, 2 * b, 2 * b, e_ver, device).seconds;
      // The MTP pass's rows: each sequence 1 or 2 (accepted) rows, independently.
      double draft = 0;
      if (batch == 1) {
        draft = (1 - a) * bench::price(v3.mtp, 1, 1, 8, device).seconds +
                a * bench::price(v3.mtp, 2, 1, bench::uniform_distinct(256, 8, 2), device).seconds;
      } else {
        const double rows = b * (1 + a);
        draft = bench::price(v3.mtp, rows, b, bench::uniform_distinct(256, 8, rows), device).seconds;
      }
      const double cost = (ver + draft) / off;
      std::printf("| %5d | %.2f | %11.2f | %11.1f | %14.1f | %8.2fx | %6.2fx |\n", batch, a, 1 + a, e_off, e_ver,
                  cost, (1 + a) / cost);
    }
  }
}

// The pieces of a batch-1, K = 1 step timed by calling the benchmark's executor directly (a
// 32-token context in its first 8 blocks, while no engine holds it): the main forward over 1 row
// (no speculation) and 2 rows (verify), the MTP forward over 1 and 2 rows (after a rejection / an
// acceptance), and verification plus the draft choice; against the engine's measured step, whose
// remainder is the engine's own work.
void print_anatomy(const models::deepseek_v3::Model& model, models::deepseek_v3::ModelExecutor& exec, int iterations,
                   const Run& off, const Run& all) {
  if (!exec.claim()) {
    std::printf("batch-1 step anatomy: the executor is in use by an engine\n");
    return;
  }
  struct Release {
    models::deepseek_v3::ModelExecutor& e;
    ~Release() { e.release(); }
  } release{exec};
  using models::append_sequence;
  const auto& c = model.config();
  const int64_t bs = exec.block_size();
  const std::vector<int32_t> table = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<int32_t> prompt;
  for (int i = 0; i < 32; ++i) prompt.push_back(int32_t((i * 7919 + 13) % c.vocab_size));
  const auto P = int32_t(prompt.size());
  models::Batch pre;
  append_sequence(pre, prompt, 0, table, bs, true);
  auto main_pre = exec.forward(pre);
  if (!main_pre.ok()) {
    std::printf("batch-1 step anatomy: %s\n", main_pre.error().message.c_str());
    return;
  }
  models::Batch mtp_pre;
  append_sequence(mtp_pre, std::vector<int32_t>(prompt.begin() + 1, prompt.end()), 0, table, bs, false);
  std::vector<float> h(main_pre->hidden.begin(), main_pre->hidden.end() - c.hidden_size);
  (void)exec.mtp_forward(mtp_pre, h, 0);

  models::Batch one, two, mtp_one, mtp_two;
  append_sequence(one, {prompt[1]}, P, table, bs, true);
  append_sequence(two, {prompt[1], prompt[2]}, P, table, bs, false);
  two.logit_rows = {0, 1};
  append_sequence(mtp_one, {prompt[1]}, P - 1, table, bs, true);
  append_sequence(mtp_two, {prompt[1], prompt[2]}, P - 1, table, bs, true);
  engine::SamplingParams params;
  params.temperature = 0.0f;
  const auto state = engine::SamplerState::create(params, 0, prompt);
  const engine::SamplingView view{&params, {}, 0};
  // The pieces run in turn each iteration, so drift on the shared machine hits them alike.
  std::vector<double> main1s, main2s, mtp1s, mtp2s, samples;
  auto timed = [](std::vector<double>& into, auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    into.push_back(1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };
  for (int it = 0; it < iterations; ++it) {
    models::deepseek_v3::ForwardOutput verify;
    models::deepseek_v3::MtpForwardOutput draft;
    Status failed;  // the first error of this iteration
    auto keep = [&](auto result, auto& into) {
      if (result.ok()) into = std::move(result).value();
      else if (failed.ok()) failed = Status(result.error());
    };
    auto stop = [&] {
      if (!failed.ok()) std::printf("batch-1 step anatomy: %s\n", failed.error().message.c_str());
      return !failed.ok();
    };
    timed(main1s, [&] { (void)exec.forward(one); });
    timed(main2s, [&] { keep(exec.forward(two), verify); });
    if (stop()) return;
    const std::vector<float> h2(verify.hidden.begin(), verify.hidden.end());
    const std::vector<float> h1(verify.hidden.begin(), verify.hidden.begin() + c.hidden_size);
    timed(mtp1s, [&] { (void)exec.mtp_forward(mtp_one, h1, 0); });
    timed(mtp2s, [&] { keep(exec.mtp_forward(mtp_two, h2, 0), draft); });
    if (stop()) return;
    timed(samples, [&] {
      const int32_t d = engine::choose_draft(draft.logits.data(), c.vocab_size, view, state, 0, nullptr);
      const std::vector<int32_t> drafts = {d};
      (void)engine::verify_drafts(verify.logits.data(), c.vocab_size, view, state, drafts, {});
    });
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double main1 = median(main1s), main2 = median(main2s), mtp1 = median(mtp1s), mtp2 = median(mtp2s);
  const double sample = median(samples);
  auto per_step = [](const Run& r, double seconds) { return 1e3 * seconds / double(std::max<int64_t>(1, r.stats.num_steps)); };
  std::printf("batch-1 step anatomy (%s; medians of %d direct calls, K = 1): main forward 1 row %.1f ms, 2 rows %.1f ms "
              "(x%.2f); MTP forward 1 row %.1f ms, 2 rows %.1f ms; verify + draft choice %.2f ms\n",
              exec.description().c_str(), iterations, main1, main2, main2 / main1, mtp1, mtp2, sample);
  std::printf("engine: off %.1f ms/step (forward %.1f, rest %.1f); a = 1 %.1f ms/step (main + MTP forward %.1f, rest "
              "%.1f) vs direct pieces %.1f ms\n",
              per_step(off, off.seconds), per_step(off, off.stats.forward_seconds),
              per_step(off, off.stats.overhead_seconds), per_step(all, all.seconds),
              per_step(all, all.stats.forward_seconds), per_step(all, all.stats.overhead_seconds),
              main2 + mtp2 + sample);
}

// The measurements of one batch size: the run without speculation, one per a, and the second
// run without it; `base_rate` is the mean of the two runs without.
struct BatchRuns {
  int batch = 0;
  const Run* off = nullptr;
  std::vector<std::pair<double, const Run*>> spec;
  const Run* off_again = nullptr;
  double base_rate = 0;
};

void print_batch(const BatchRuns& br) {
  std::printf("| batch | a    | tokens/step | accepted | seconds | tokens/s | ratio | same output |\n");
  std::printf("|-------|------|-------------|----------|---------|----------|-------|-------------|\n");
  print_row(br.batch, "off", 1.0, "-", *br.off, br.base_rate, "-");
  for (const auto& [a, r] : br.spec) {
    char label[8], accepted[16];
    std::snprintf(label, sizeof label, "%.2f", a);
    std::snprintf(accepted, sizeof accepted, "%.1f%%",
                  100.0 * double(r->stats.spec_accepted_tokens) / double(std::max<int64_t>(1, r->stats.spec_drafted_tokens)));
    print_row(br.batch, label, r->stats.spec_mean_tokens_per_step(), accepted, *r, br.base_rate,
              r->outputs == br.off->outputs ? "yes" : "NO");
  }
  print_row(br.batch, "off", 1.0, "-", *br.off_again, br.base_rate, br.off_again->outputs == br.off->outputs ? "yes" : "NO");
}

// The same runs priced by the roofline: per decode step, distinct experts per MoE layer of the
// main pass, MTP rows, weight GB and GFLOP, then ms/step and speedup measured vs allowed. Returns
// the speedup allowed for each a (in br.spec's order).
std::vector<double> print_batch_roofline(const BatchRuns& br, const models::ModelConfig& c, const bench::ModelShape& shape,
                                         const bench::Machine& machine, int k, bool observed_routing) {
  auto cost = [&](const Run& r, int drafts) {
    if (observed_routing) return step_cost(shape, r, drafts + 1, machine);
    return uniform_step_cost(shape, c, br.batch, drafts, drafts ? r.stats.spec_mean_tokens_per_step() : 1.0, machine);
  };
  const StepCost off = cost(*br.off, 0);
  std::printf("roofline (per decode step, %s routing; 'kernels' prices bytes at the %s):\n",
              observed_routing ? "observed" : "uniform",
              observed_routing ? "m = 1 kernel rates" : "same copy bandwidth");
  print_roofline_header();
  print_roofline_row(br.batch, "off", 1.0, off, *br.off, off, double(br.off->tokens) / br.off->seconds / br.base_rate);
  std::vector<double> allowed;
  for (const auto& [a, r] : br.spec) {
    char label[8];
    std::snprintf(label, sizeof label, "%.2f", a);
    const double tps = r->stats.spec_mean_tokens_per_step();
    const StepCost s = cost(*r, k);
    print_roofline_row(br.batch, label, tps, s, *r, off, double(r->tokens) / r->seconds / br.base_rate);
    allowed.push_back(tps * off.cost.seconds / s.cost.seconds);
  }
  return allowed;
}

// Rows for benchmarks/gpu/check.sh's final table (metric | measured | reference | ratio | target):
// every a at the smallest and largest batch, a = 0.9 at the others; the reference is the speedup
// the roofline allows (when there is one). Then how many outputs equal the run without MTP.
void print_key_rows(const std::vector<BatchRuns>& batches, const std::vector<std::vector<double>>& allowed, int k,
                    const char* device) {
  int64_t same = 0, total = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    const BatchRuns& br = batches[i];
    const bool edge = i == 0 || i + 1 == batches.size();
    for (size_t j = 0; j < br.spec.size(); ++j) {
      const auto& [a, r] = br.spec[j];
      for (size_t q = 0; q < r->outputs.size(); ++q) same += r->outputs[q] == br.off->outputs[q] ? 1 : 0;
      total += int64_t(r->outputs.size());
      if (!edge && a != 0.9) continue;
      const double measured = double(r->tokens) / r->seconds / br.base_rate;
      char reference[32] = "-", ratio[16] = "-";
      if (!allowed.empty()) {
        std::snprintf(reference, sizeof reference, "roofline %.2fx", allowed[i][j]);
        std::snprintf(ratio, sizeof ratio, "%.2f", measured / allowed[i][j]);
      }
      std::printf("| MTP speedup a=%.2f K=%d batch %d (%s) | %.2fx | %s | %s | %s |\n", a, k, br.batch, device,
                  measured, reference, ratio, a == 0.9 ? "1.8x" : "-");
    }
  }
  std::printf("| MTP greedy outputs equal to those without MTP (%s) | %lld of %lld | | | all |\n", device,
              (long long)same, (long long)total);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto model = latentserve::bench::load_bench_model(o.model, o.num_layers, o.fp8, o.no_mmap);
  if (!model) return 1;
  const bool cuda = o.device == Device::kCuda;
  const int64_t vocab = model->config().vocab_size;
  print_shape(*model);
  std::printf("model %s, K = %d, %d prompt + %d generated tokens per request (greedy), device %s, warm-up %d tokens\n",
              o.model.c_str(), o.k, o.prompt_len, o.tokens, models::deepseek_v3::device_name(o.device), o.warmup);
  if (o.prompt_len <= o.k + 1) std::printf("note: prompts of <= K + 1 tokens: the roofline counts prefill as decode\n");
  std::mt19937 rng(7);
  std::vector<std::vector<engine::Request>> sets;
  for (int b : o.batches) sets.push_back(bench::random_requests(b, o.prompt_len, o.tokens, vocab, rng));

  // The machine the roofline prices: this CPU measured now, or the GPU's measured ceilings.
  std::optional<bench::Machine> machine;
  if (!cuda) {
    page_in(model->weights());
    machine = bench::measure_machine(model->weights());
    std::printf("machine: read %.1f GB/s; FP8 matmul m = 1 streams %.1f GB/s, BF16 m = 1 %.1f GB/s; FP8 matmul m = 64 "
                "%.1f GFLOP/s\n",
                machine->read_bytes_per_s / 1e9, machine->fp8_bytes_per_s / 1e9, machine->bf16_bytes_per_s / 1e9,
                machine->flops_per_s / 1e9);
  } else if ((machine = bench::machine_from_ceilings())) {
    std::printf("GPU ceilings (LATENTSERVE_CEILING_*): copy %.2f TB/s, GEMM %.0f TFLOP/s\n",
                machine->read_bytes_per_s / 1e12, machine->flops_per_s / 1e12);
  } else {
    std::printf("no GPU ceilings in the environment (LATENTSERVE_CEILING_COPY_BYTES_PER_S and _FP8_TFLOPS, which "
                "benchmarks/gpu/check.sh exports): the roofline is left out\n");
  }
  const bench::ModelShape shape = bench::shape_of(model->config(), model->weights());
  const auto executor = shared_executor(*model, o);
  if (o.warmup == 0) {  // one short request: first-call allocations in the engine and the kernels
    engine::SpeculativeConfig spec;
    spec.num_speculative_tokens = o.k;
    Options once = o;
    once.batches = {1};
    std::mt19937 warm_rng(3);
    (void)run_sets(*model, executor, {bench::random_requests(1, 3, 4, vocab, warm_rng)}, spec, once, nullptr);
  }

  // One engine per setting, each running every batch, all on `executor`: off, a = 0, 0.5, 0.9, 1,
  // off again.
  std::string description;
  const std::vector<Run> off = run_sets(*model, executor, sets, {}, o, &description);
  std::printf("executor: %s\n", description.c_str());
  std::vector<std::pair<double, std::vector<Run>>> spec_runs;
  for (double a : {0.0, 0.5, 0.9, 1.0}) {
    engine::SpeculativeConfig spec;
    spec.num_speculative_tokens = o.k;
    spec.forced_acceptance = a;
    spec.oracle = oracle_from(sets, off);
    spec_runs.emplace_back(a, run_sets(*model, executor, sets, spec, o, nullptr));
  }
  const std::vector<Run> off_again = run_sets(*model, executor, sets, {}, o, nullptr);

  std::vector<BatchRuns> batches;
  std::vector<std::vector<double>> allowed;
  for (size_t i = 0; i < sets.size(); ++i) {
    BatchRuns br;
    br.batch = o.batches[i];
    br.off = &off[i];
    br.off_again = &off_again[i];
    for (const auto& [a, runs] : spec_runs) br.spec.emplace_back(a, &runs[i]);
    br.base_rate = 0.5 * (double(off[i].tokens) / off[i].seconds + double(off_again[i].tokens) / off_again[i].seconds);
    print_batch(br);
    if (machine) allowed.push_back(print_batch_roofline(br, model->config(), shape, *machine, o.k, !cuda));
    if (br.batch == 1 && o.k == 1 && o.anatomy > 0) {
      print_anatomy(*model, *executor, o.anatomy, off[i], *br.spec.back().second);
    }
    batches.push_back(std::move(br));
    std::fflush(stdout);
  }
  bench::Machine h200;  // spec-sheet figures of an H200-class GPU: a memory-bound device at batch 1
  h200.read_bytes_per_s = h200.fp8_bytes_per_s = h200.bf16_bytes_per_s = 4.8e12;
  h200.flops_per_s = 1979e12;
  print_deepseek_v3(h200, "one H200-class GPU (spec sheet)");
  if (cuda && machine) print_deepseek_v3(*machine, "this GPU (measured ceilings)");
  print_key_rows(batches, allowed, o.k, models::deepseek_v3::device_name(o.device));
  return 0;
}
