// One decode step of a DeepSeek-V3-shaped model through the CUDA executor: 4 layers (all MoE, as
// 58 of V3's 61 are; no dense first layer) of V3's shapes in FP8 with 128×128 block scales, random
// weights made directly in device memory (random_v3_weights.h), batch 1, 8 and 64 with 4096 cached
// tokens per sequence. Per batch and per mode (eager, CUDA graphs): the step time as forward()
// returns (logits on the host included), the bytes the step must read (weights it touches, with
// the routed experts estimated for uniform routing, plus the latent cache) as a fraction of the
// device-to-device copy bandwidth (LATENTSERVE_CEILING_COPY_BYTES_PER_S, bytes read + written per
// second), and the GPU's idle fraction between the step's first and last kernel from CUPTI activity
// records (union of kernel, copy and memset intervals). Usage:
//   decode_step_bench [--layers 4] [--context 4096] [--iters 8] [--max-batch 64]
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "benchmarks/gpu/kernel_timeline.h"
#include "benchmarks/gpu/random_v3_weights.h"
#include "kernels/cuda/device.h"
#include "models/cuda/cuda_executor.h"

namespace {

using namespace latentserve;
namespace dsv3 = models::deepseek_v3;

struct Options {
  int layers = 4, context = 4096, iters = 8, max_batch = 64;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--layers") o.layers = v;
    else if (k == "--context") o.context = v;
    else if (k == "--iters") o.iters = v;
    else if (k == "--max-batch") o.max_batch = v;
    else return false;
  }
  return argc % 2 == 1 && o.layers > 0 && o.context > 0 && o.iters > 0 && o.max_batch > 0;
}

template <class T>
bool ok(const Result<T>& r, const char* what) {
  if (!r.ok()) std::fprintf(stderr, "decode_step_bench: %s: %s\n", what, r.error().message.c_str());
  return r.ok();
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Bytes one decode step of `batch` sequences must read: every attention matrix, norm and router,
// the shared expert, the distinct routed experts (expected count under uniform routing), the whole
// lm_head, the embedding rows, and each sequence's cached latents in every layer.
struct StepBytes {
  double weights = 0, cache = 0, experts = 0;
};

StepBytes step_bytes(const models::ModelConfig& c, int batch, int context) {
  const double H = double(c.hidden_size), heads = double(c.num_attention_heads);
  const double lora = double(c.kv_lora_rank), rope = double(c.qk_rope_head_dim);
  const double nope = double(c.qk_nope_head_dim), v = double(c.v_head_dim), qlora = double(c.q_lora_rank.value_or(0));
  const double w = double(c.moe_intermediate_size), E = double(c.n_routed_experts), k = double(c.num_experts_per_tok);
  auto fp8 = [](double rows, double cols) {  // bytes plus F32 block scales
    return rows * cols + std::ceil(rows / 128) * std::ceil(cols / 128) * 4;
  };
  const double attn = fp8(qlora, H) + fp8(heads * (nope + rope), qlora) + fp8(lora + rope, H) +
                      heads * (nope + v) * lora * 2 + fp8(H, heads * v);
  const double expert = fp8(2 * w, H) + fp8(H, w);
  StepBytes b;
  b.experts = E * (1.0 - std::pow(1.0 - k / E, double(batch)));
  const double layer = attn + E * H * 2 /* router */ + expert * (1.0 + b.experts) + 4 * H * 4;
  b.weights = double(c.num_hidden_layers) * layer + double(c.vocab_size) * H * 2 + double(batch) * H * 2;
  b.cache = double(c.num_hidden_layers) * batch * (context + 1.0) * (lora + rope) * 2;
  return b;
}

// `batch` sequences each decoding one token after `context` cached ones, in disjoint blocks.
models::Batch decode_batch(int batch, int context, int64_t block_size) {
  const int64_t per_seq = (context + 1 + block_size - 1) / block_size;
  models::Batch b;
  for (int s = 0; s < batch; ++s) {
    std::vector<int32_t> table;
    for (int64_t j = 0; j < per_seq; ++j) table.push_back(int32_t(s * per_seq + j));
    models::append_sequence(b, {int32_t(1000 + s)}, context, table, block_size, true);
  }
  return b;
}

struct Measured {
  double ms = 0, idle_between = -1, idle_wall = -1;
  int64_t graph_kernels = 0;
};

bool measure(dsv3::ModelExecutor& e, const models::Batch& b, const Options& o, Measured& m) {
  for (int i = 0; i < 3; ++i) {  // warm-up: plans, cuBLASLt heuristics, graph capture
    if (!ok(e.forward(b), "warm-up step")) return false;
  }
  double total = 0;
  for (int i = 0; i < o.iters; ++i) {
    const double t0 = now_ms();
    if (!ok(e.forward(b), "step")) return false;
    total += now_ms() - t0;
  }
  m.ms = total / o.iters;
  if (!bench::KernelTimeline::start()) return true;
  std::vector<std::pair<uint64_t, uint64_t>> windows;
  for (int i = 0; i < 4; ++i) {
    const uint64_t t0 = bench::KernelTimeline::now();
    if (!ok(e.forward(b), "traced step")) return false;
    windows.push_back({t0, bench::KernelTimeline::now()});
  }
  const std::vector<bench::Interval> records = bench::KernelTimeline::stop();
  double between = 0, wall = 0;
  for (const auto& [from, to] : windows) {
    const auto [busy, span] = bench::KernelTimeline::busy_and_span(records, from, to);
    between += span > 0 ? 1.0 - busy / span : 0.0;
    wall += 1.0 - busy / double(to - from);
  }
  for (const bench::Interval& r : records) m.graph_kernels += r.graph ? 1 : 0;
  m.idle_between = between / double(windows.size());
  m.idle_wall = wall / double(windows.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: decode_step_bench [--layers 4] [--context 4096] [--iters 8] [--max-batch 64]\n");
    return 2;
  }
  if (kernels::cuda::device_count() == 0) {
    std::printf("decode_step_bench: no CUDA GPU present, nothing measured\n");
    return 77;
  }
  const char* ceiling_env = std::getenv("LATENTSERVE_CEILING_COPY_BYTES_PER_S");
  const double ceiling = ceiling_env != nullptr ? std::atof(ceiling_env) : 0.0;
  auto config = bench::v3_config(o.layers);
  if (!ok(config, "config")) return 1;
  const int64_t block_size = 64;
  std::vector<int> batches;
  for (int b : {1, 8, 64}) {
    if (b <= o.max_batch) batches.push_back(b);
  }
  bool good = true;
  for (const bool graphs : {false, true}) {
    const double t0 = now_ms();
    auto weights = bench::random_v3_weights(*config, 1234);
    if (!ok(weights, "random weights")) return 1;
    const size_t weight_bytes = weights->bytes;
    dsv3::ExecutorConfig ec;
    ec.device = dsv3::Device::kCuda;
    ec.num_cache_layers = o.layers;
    ec.block_size = block_size;
    ec.num_blocks = int64_t(batches.back()) * ((o.context + 1 + block_size - 1) / block_size);
    models::cuda::DecodeGraphOptions go;
    go.enabled = graphs;
    auto exec = models::cuda::make_cuda_executor_on_device_weights(*config, std::move(weights).value(), ec, go);
    if (!ok(exec, "executor")) return 1;
    const char* mode = graphs ? "graphs" : "eager";
    std::printf("decode_step %s: %s, %.1f GB of weights, made in %.1f s\n", mode, (*exec)->description().c_str(),
                double(weight_bytes) / 1e9, (now_ms() - t0) / 1e3);
    for (int batch : batches) {
      Measured m;
      if (!measure(**exec, decode_batch(batch, o.context, block_size), o, m)) {
        good = false;
        continue;
      }
      const StepBytes sb = step_bytes(*config, batch, o.context);
      const double bytes = sb.weights + sb.cache;
      const double achieved = bytes / (m.ms / 1e3);
      std::printf("decode_step %s V3x%d (all MoE, FP8) b=%d ctx=%d: %.3f ms/step; reads %.2f GB weights (%.0f "
                  "routed experts/layer expected) + %.2f GB cache = %.2f TB/s; GPU idle %.1f%% between first and "
                  "last kernel, %.1f%% of the step's wall time; %lld graph kernels traced\n",
                  mode, o.layers, batch, o.context, m.ms, sb.weights / 1e9, sb.experts, sb.cache / 1e9, achieved / 1e12,
                  100 * m.idle_between, 100 * m.idle_wall, (long long)m.graph_kernels);
      const std::string what = std::string("decode step V3x") + std::to_string(o.layers) + " FP8 b=" +
                               std::to_string(batch) + " ctx=" + std::to_string(o.context) + " " + mode;
      if (ceiling > 0) {
        std::printf("| %s, bytes read/time vs copy | %.3f ms (%.2f TB/s) | copy %.2f TB/s | %.3f | >= 0.70 |\n",
                    what.c_str(), m.ms, achieved / 1e12, ceiling / 1e12, achieved / ceiling);
      } else {
        std::printf("| %s, bytes read/time | %.3f ms (%.2f TB/s) | no copy ceiling | | >= 0.70 of copy |\n",
                    what.c_str(), m.ms, achieved / 1e12);
      }
      if (m.idle_between >= 0) {
        std::printf("| %s, GPU idle between kernels (CUPTI) | %.1f%% | %.1f%% of wall | | <= 10%% |\n", what.c_str(),
                    100 * m.idle_between, 100 * m.idle_wall);
      }
    }
  }
  return good ? 0 : 1;
}
