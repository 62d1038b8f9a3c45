// Decode throughput with and without MTP speculative decoding at batch sizes 1, 8 and 64, on the
// `lite` preset (DeepSeek-V2-Lite layer shapes; 4 layers, or --num-layers N for a realistic
// proportion of MTP module to main model; --fp8 for FP8 weights) unless --model is given.
// Drafts are forced to agree with the main model at a known rate a (the engine's test hook, fed
// with the greedy outputs of the run without speculation), so acceptance is not left to the
// random weights. Prints tokens per step and the throughput ratio for each a, against the mean of
// two runs without speculation (one before, one after), after paging every weight in.
// Beside each row, a roofline (speculative_roofline.h): the weight bytes and FLOPs of the step
// from the routing the run took, priced with this machine's bandwidth and FLOP rate measured in
// the same run, and the speedup that allows; then the same for DeepSeek-V3's real shapes, and the
// anatomy of one batch-1 step (main forward, MTP forward, verification, the engine's own work).
//
//   bench_engine_speculative [--model DIR | --num-layers N --fp8 1] [--tokens 16] [--prompt-len 4]
//                            [--k 1] [--batches 1,8,64] [--anatomy 5]
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
#include "models/latent_cache.h"

using namespace latentserve;

namespace {

struct Options {
  std::string model;
  int num_layers = 0;  // 0: the preset's
  bool fp8 = false;
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
    if (key == "--model") o.model = v;
    else if (key == "--num-layers") o.num_layers = std::atoi(v);
    else if (key == "--fp8") o.fp8 = std::atoi(v) != 0;
    else if (key == "--tokens") o.tokens = std::atoi(v);
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
  return o;
}

struct Run {
  double seconds = 0;
  int64_t tokens = 0;
  std::vector<std::vector<int32_t>> outputs;
  engine::EngineStats stats;
  models::deepseek_v3::RoutingLog routing;  // every forward call of the run
};

Run run(models::deepseek_v3::Model& model, const std::vector<engine::Request>& requests,
        engine::SpeculativeConfig spec) {
  Run result;
  model.set_routing_log(&result.routing);
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
  for (auto& h : handles) {
    engine::CollectedRequest c = engine::collect_all(h);
    result.tokens += c.usage.completion_tokens;
    result.outputs.push_back(c.completions.empty() ? std::vector<int32_t>{} : c.completions[0].token_ids);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (*engine)->wait_idle();
  result.stats = (*engine)->stats();
  engine->reset();  // no forward runs past here
  model.set_routing_log(nullptr);
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

// The pieces of a batch-1, K = 1 step timed by calling them directly (a 32-token context): the
// main forward over 1 row (no speculation) and 2 rows (verify), the MTP forward over 1 and 2 rows
// (after a rejection / an acceptance), and verification plus the draft choice; against the
// engine's measured step, whose remainder is the engine's own work.
void print_anatomy(const models::deepseek_v3::Model& model, int iterations, const Run& off, const Run& all) {
  using models::append_sequence;
  const auto& c = model.config();
  const int64_t bs = 16;
  auto cache = models::LatentCacheStorage::allocate(c, model.num_cache_layers_with_mtp(), 8, bs);
  if (!cache.ok()) return;
  const std::vector<int32_t> table = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<int32_t> prompt;
  for (int i = 0; i < 32; ++i) prompt.push_back(int32_t((i * 7919 + 13) % c.vocab_size));
  const auto P = int32_t(prompt.size());
  models::Batch pre;
  append_sequence(pre, prompt, 0, table, bs, true);
  auto main_pre = model.forward(pre, *cache);
  if (!main_pre.ok()) return;
  models::Batch mtp_pre;
  append_sequence(mtp_pre, std::vector<int32_t>(prompt.begin() + 1, prompt.end()), 0, table, bs, false);
  std::vector<float> h(main_pre->hidden.begin(), main_pre->hidden.end() - c.hidden_size);
  (void)model.mtp_forward(mtp_pre, h, *cache);

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
    timed(main1s, [&] { (void)model.forward(one, *cache); });
    timed(main2s, [&] { verify = std::move(model.forward(two, *cache)).value(); });
    const std::vector<float> h2(verify.hidden.begin(), verify.hidden.end());
    const std::vector<float> h1(verify.hidden.begin(), verify.hidden.begin() + c.hidden_size);
    timed(mtp1s, [&] { (void)model.mtp_forward(mtp_one, h1, *cache); });
    timed(mtp2s, [&] { draft = std::move(model.mtp_forward(mtp_two, h2, *cache)).value(); });
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
  std::printf("batch-1 step anatomy (medians of %d direct calls, K = 1): main forward 1 row %.1f ms, 2 rows %.1f ms "
              "(x%.2f); MTP forward 1 row %.1f ms, 2 rows %.1f ms; verify + draft choice %.2f ms\n",
              iterations, main1, main2, main2 / main1, mtp1, mtp2, sample);
  std::printf("engine: off %.1f ms/step (forward %.1f, rest %.1f); a = 1 %.1f ms/step (main + MTP forward %.1f, rest "
              "%.1f) vs direct pieces %.1f ms\n",
              per_step(off, off.seconds), per_step(off, off.stats.forward_seconds),
              per_step(off, off.stats.overhead_seconds), per_step(all, all.seconds),
              per_step(all, all.stats.forward_seconds), per_step(all, all.stats.overhead_seconds),
              main2 + mtp2 + sample);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto model = latentserve::bench::load_bench_model(o.model, o.num_layers, o.fp8);
  if (!model) return 1;
  const int64_t vocab = model->config().vocab_size;
  print_shape(*model);
  std::printf("model %s, K = %d, %d prompt + %d generated tokens per request (greedy)\n", o.model.c_str(), o.k,
              o.prompt_len, o.tokens);
  if (o.prompt_len <= o.k + 1) std::printf("note: prompts of <= K + 1 tokens: the roofline counts prefill as decode\n");
  std::mt19937 rng(7);
  page_in(model->weights());
  const bench::Machine machine = bench::measure_machine(model->weights());
  std::printf("machine: read %.1f GB/s; FP8 matmul m = 1 streams %.1f GB/s, BF16 m = 1 %.1f GB/s; FP8 matmul m = 64 "
              "%.1f GFLOP/s\n",
              machine.read_bytes_per_s / 1e9, machine.fp8_bytes_per_s / 1e9, machine.bf16_bytes_per_s / 1e9,
              machine.flops_per_s / 1e9);
  const bench::ModelShape shape = bench::shape_of(model->config(), model->weights());
  {  // warm-up: first-call allocations in the engine and the kernels
    engine::Request r;
    r.prompt_token_ids = {1, 2, 3};
    r.params.temperature = 0.0f;
    r.params.max_tokens = 4;
    engine::SpeculativeConfig spec;
    spec.num_speculative_tokens = o.k;
    (void)run(*model, {r}, spec);
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
    // The baseline runs before and after the speculative runs; ratios are against the mean of
    // the two rates, and the two "off" rows show how much the shared machine drifted meanwhile.
    const Run base = run(*model, requests, {});
    std::vector<std::pair<double, Run>> spec_runs;
    for (double a : {0.0, 0.5, 0.9, 1.0}) {
      engine::SpeculativeConfig spec;
      spec.num_speculative_tokens = o.k;
      spec.forced_acceptance = a;
      spec.oracle = oracle_from(requests, base);
      spec_runs.emplace_back(a, run(*model, requests, spec));
    }
    const Run base_again = run(*model, requests, {});
    const double base_rate = 0.5 * (double(base.tokens) / base.seconds + double(base_again.tokens) / base_again.seconds);
    std::printf("| batch | a    | tokens/step | accepted | seconds | tokens/s | ratio | same output |\n");
    std::printf("|-------|------|-------------|----------|---------|----------|-------|-------------|\n");
    print_row(b, "off", 1.0, "-", base, base_rate, "-");
    for (const auto& [a, r] : spec_runs) {
      char label[8], accepted[16];
      std::snprintf(label, sizeof label, "%.2f", a);
      std::snprintf(accepted, sizeof accepted, "%.1f%%",
                    100.0 * double(r.stats.spec_accepted_tokens) / double(std::max<int64_t>(1, r.stats.spec_drafted_tokens)));
      print_row(b, label, r.stats.spec_mean_tokens_per_step(), accepted, r, base_rate,
                r.outputs == base.outputs ? "yes" : "NO");
    }
    print_row(b, "off", 1.0, "-", base_again, base_rate, base_again.outputs == base.outputs ? "yes" : "NO");

    // The same runs priced by the roofline: per decode step, distinct experts per MoE layer of the
    // main pass, MTP rows, weight GB and GFLOP, then ms/step and speedup measured vs allowed.
    const int64_t decode_rows = o.k + 1;
    const StepCost off = step_cost(shape, base, 1, machine);
    std::printf("roofline (per decode step; 'kernels' prices bytes at the m = 1 kernel rates):\n");
    print_roofline_header();
    print_roofline_row(b, "off", 1.0, off, base, off, double(base.tokens) / base.seconds / base_rate);
    for (const auto& [a, r] : spec_runs) {
      char label[8];
      std::snprintf(label, sizeof label, "%.2f", a);
      const double rate = double(r.tokens) / r.seconds;
      print_roofline_row(b, label, r.stats.spec_mean_tokens_per_step(), step_cost(shape, r, decode_rows, machine), r,
                         off, rate / base_rate);
    }
    if (b == 1 && o.k == 1 && o.anatomy > 0) print_anatomy(*model, o.anatomy, base, spec_runs.back().second);
    std::fflush(stdout);
  }
  bench::Machine h200;  // spec-sheet figures of an H200-class GPU: a memory-bound device at batch 1
  h200.read_bytes_per_s = h200.fp8_bytes_per_s = h200.bf16_bytes_per_s = 4.8e12;
  h200.flops_per_s = 1979e12;
  print_deepseek_v3(h200, "one H200-class GPU (spec sheet)");
  return 0;
}
