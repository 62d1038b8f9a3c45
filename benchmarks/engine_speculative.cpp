// Decode throughput with and without MTP speculative decoding at batch sizes 1, 8 and 64, on the
// `lite` preset (DeepSeek-V2-Lite layer shapes; 4 layers, or --num-layers N for a realistic
// proportion of MTP module to main model; --fp8 for FP8 weights) unless --model is given.
// Drafts are forced to agree with the main model at a known rate a (the engine's test hook, fed
// with the greedy outputs of the run without speculation), so acceptance is not left to the
// random weights. Prints tokens per step and the throughput ratio for each a, against the mean of
// two runs without speculation (one before, one after), after paging every weight in.
//
//   bench_engine_speculative [--model DIR | --num-layers N --fp8 1] [--tokens 16] [--prompt-len 4]
//                            [--k 1] [--batches 1,8,64]
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

using namespace latentserve;

namespace {

struct Options {
  std::string model;
  int num_layers = 0;  // 0: the preset's
  bool fp8 = false;
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
    else if (key == "--num-layers") o.num_layers = std::atoi(v);
    else if (key == "--fp8") o.fp8 = std::atoi(v) != 0;
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

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  auto model = latentserve::bench::load_bench_model(o.model, o.num_layers, o.fp8);
  if (!model) return 1;
  const int64_t vocab = model->config().vocab_size;
  print_shape(*model);
  std::printf("model %s, K = %d, %d prompt + %d generated tokens per request (greedy)\n", o.model.c_str(), o.k,
              o.prompt_len, o.tokens);
  std::printf("| batch | a    | tokens/step | accepted | seconds | tokens/s | ratio | same output |\n");
  std::printf("|-------|------|-------------|----------|---------|----------|-------|-------------|\n");
  std::mt19937 rng(7);
  page_in(model->weights());
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
    std::fflush(stdout);
  }
  return 0;
}
