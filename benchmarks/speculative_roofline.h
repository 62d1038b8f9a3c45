// What the hardware allows a speculative decoding step: the weight bytes and FLOPs of a main pass
// over 1 + K rows per sequence and of the MTP passes, from the model's shapes and the routing
// observed (distinct experts per MoE layer) or assumed uniform, priced with the bandwidth and FLOP
// rate measured on this machine (or a GPU's, from benchmarks/gpu/check.sh); and the same for
// DeepSeek-V3's real shapes with uniform routing.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "kernels/cpu/matmul.h"
#include "models/config.h"
#include "models/deepseek_v3/weights.h"

namespace latentserve::bench {

// Bytes/s and FLOP/s one pass is priced with.
struct Machine {
  double read_bytes_per_s = 0;   // streaming read of a large buffer, all threads
  double flops_per_s = 0;        // FP8 matmul at m = 64 (compute-bound)
  double fp8_bytes_per_s = 0;    // FP8 matmul at m = 1: what the kernel streams
  double bf16_bytes_per_s = 0;   // BF16 matmul at m = 1
};

// A weight matrix as the roofline sees it.
struct Matrix {
  double bytes = 0;
  double params = 0;  // multiply-adds per row
  bool fp8 = false;
};

inline Matrix matrix_of(const kernels::cpu::WeightMatrix& w) {
  Matrix m;
  if (w.empty()) return m;
  m.params = double(w.rows) * double(w.cols);
  m.bytes = m.params * double(dtype_size(w.dtype));
  m.fp8 = w.dtype == DType::F8_E4M3;
  if (w.scale_inv != nullptr) {
    m.bytes += double((w.rows + w.block_rows - 1) / w.block_rows) * double((w.cols + w.block_cols - 1) / w.block_cols) * 4;
  }
  return m;
}

inline Matrix sum(const std::vector<Matrix>& parts) {
  Matrix s;
  for (const Matrix& m : parts) {
    s.bytes += m.bytes;
    s.params += m.params;
    s.fp8 = s.fp8 || m.fp8;
  }
  return s;
}

// One forward pass's weights: those every row multiplies (attention, dense MLPs, shared experts,
// routers, eh_proj), one routed expert, the head (logit rows only) and an embedding row.
struct PassShape {
  std::vector<Matrix> dense;
  int64_t moe_layers = 0;
  int64_t top_k = 0;
  Matrix expert;
  Matrix head;
  double embed_row_bytes = 0;
};

struct PassCost {
  double bytes = 0, flops = 0;
  double seconds = 0;         // roofline: each matrix max(bytes / read rate, flops / FLOP rate)
  double kernel_seconds = 0;  // the same with the kernels' measured m = 1 streaming rates
};

// A pass over `rows` rows, `logit_rows` of them through the head, touching `experts` distinct
// routed experts per MoE layer (each expert's rows: rows * top_k / experts).
inline PassCost price(const PassShape& s, double rows, double logit_rows, double experts, const Machine& m) {
  PassCost c;
  auto add = [&](const Matrix& w, double r, double count) {
    if (count <= 0 || w.params == 0) return;
    const double f = 2 * r * w.params;
    const double stream = w.fp8 ? m.fp8_bytes_per_s : m.bf16_bytes_per_s;
    c.bytes += count * w.bytes;
    c.flops += count * f;
    c.seconds += count * std::max(w.bytes / m.read_bytes_per_s, f / m.flops_per_s);
    c.kernel_seconds += count * std::max(w.bytes / stream, f / m.flops_per_s);
  };
  for (const Matrix& w : s.dense) add(w, rows, 1);
  if (experts > 0) add(s.expert, rows * double(s.top_k) / experts, double(s.moe_layers) * experts);
  add(s.head, logit_rows, 1);
  c.bytes += rows * s.embed_row_bytes;
  c.seconds += rows * s.embed_row_bytes / m.read_bytes_per_s;
  c.kernel_seconds += rows * s.embed_row_bytes / m.read_bytes_per_s;
  return c;
}

inline void add_layer(PassShape& s, const models::deepseek_v3::DecoderLayerWeights& l) {
  for (const auto* w : {&l.attn.q_a_proj, &l.attn.q_b_proj, &l.attn.q_proj, &l.attn.kv_a_proj_with_mqa,
                        &l.attn.kv_b_proj, &l.attn.o_proj}) {
    if (!w->empty()) s.dense.push_back(matrix_of(*w));
  }
  auto mlp = [](const models::deepseek_v3::MlpWeights& m) {
    return std::vector<Matrix>{matrix_of(m.gate_proj), matrix_of(m.up_proj), matrix_of(m.down_proj)};
  };
  if (l.mlp) {
    for (const Matrix& w : mlp(*l.mlp)) s.dense.push_back(w);
  }
  if (l.moe) {
    s.dense.push_back(matrix_of(l.moe->gate));
    if (l.moe->shared_experts) {
      for (const Matrix& w : mlp(*l.moe->shared_experts)) s.dense.push_back(w);
    }
    s.expert = sum(mlp(l.moe->experts[0]));
    s.moe_layers += 1;
  }
}

// The main pass and the MTP pass of a loaded model.
struct ModelShape {
  PassShape main, mtp;
};

inline ModelShape shape_of(const models::ModelConfig& c, const models::deepseek_v3::DeepseekV3Weights& w) {
  ModelShape s;
  s.main.top_k = s.mtp.top_k = c.num_experts_per_tok;
  for (const auto& l : w.layers) add_layer(s.main, l);
  s.main.head = matrix_of(w.lm_head);
  s.main.embed_row_bytes = double(w.embed_tokens.cols) * double(dtype_size(w.embed_tokens.dtype));
  if (!w.mtp.empty()) {
    const auto& m = w.mtp[0];
    s.mtp.dense.push_back(matrix_of(m.eh_proj));
    add_layer(s.mtp, m.block);
    s.mtp.head = matrix_of(m.shared_head_head);  // streamed again even when shared with lm_head
    s.mtp.embed_row_bytes = s.main.embed_row_bytes;
  }
  return s;
}

// DeepSeek-V3 (671B) as released: FP8 linear layers with 128x128 block scales, BF16 lm_head and
// eh_proj; 61 layers (3 dense), MLA with q_lora 1536 / kv_lora 512, 128 heads of 128 + 64 rope;
// 256 routed experts (top 8) + 1 shared of width 2048; dense width 18432; vocabulary 129280.
inline ModelShape deepseek_v3_shape() {
  const double H = 7168, heads = 128, vocab = 129280;
  auto fp8 = [](double rows, double cols) {
    return Matrix{rows * cols + std::ceil(rows / 128) * std::ceil(cols / 128) * 4, rows * cols, true};
  };
  auto bf16 = [](double rows, double cols) { return Matrix{rows * cols * 2, rows * cols, false}; };
  auto layer = [&](PassShape& s, bool moe) {
    for (const Matrix& m : {fp8(1536, H), fp8(heads * 192, 1536), fp8(576, H), fp8(heads * 256, 512),
                            fp8(H, heads * 128)}) {
      s.dense.push_back(m);
    }
    const double width = moe ? 2048 : 18432;
    for (const Matrix& m : {fp8(width, H), fp8(width, H), fp8(H, width)}) s.dense.push_back(m);  // dense or shared
    if (moe) {
      s.dense.push_back(Matrix{256 * H * 4, 256 * H, false});  // router, FP32
      s.expert = sum({fp8(2048, H), fp8(2048, H), fp8(H, 2048)});
      s.moe_layers += 1;
    }
  };
  ModelShape s;
  s.main.top_k = s.mtp.top_k = 8;
  for (int l = 0; l < 61; ++l) layer(s.main, l >= 3);
  s.main.head = bf16(vocab, H);
  s.main.embed_row_bytes = H * 2;
  s.mtp.dense.push_back(bf16(H, 2 * H));
  layer(s.mtp, true);
  s.mtp.head = s.main.head;
  s.mtp.embed_row_bytes = s.main.embed_row_bytes;
  return s;
}

// Expected distinct experts that `tokens` independently, uniformly routed tokens touch.
inline double uniform_distinct(double experts, double top_k, double tokens) {
  return experts * (1 - std::pow(1 - top_k / experts, tokens));
}

// --- measuring the machine -------------------------------------------------------------------

template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Streaming read of `bytes` with every hardware thread, each over its own contiguous part.
inline double measure_read_bandwidth(size_t bytes = size_t(1) << 30) {
  std::vector<uint64_t> buf(bytes / 8);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<uint64_t> sums(threads);
  const double s = best_seconds(3, [&] {
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t n0 = buf.size() * t / threads, n1 = buf.size() * (t + 1) / threads;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = n0; i + 4 <= n1; i += 4) {
          a += buf[i];
          b ^= buf[i + 1];
          c += buf[i + 2];
          d ^= buf[i + 3];
        }
        sums[t] = a + b + c + d;
      });
    }
    for (auto& th : pool) th.join();
  });
  volatile uint64_t sink = 0;
  for (uint64_t v : sums) sink = sink + v;
  return double(buf.size() * 8) / s;
}

// Bytes/s the matmul kernel streams through `weights` at m rows, and its FLOP/s.
inline std::pair<double, double> measure_matmul(const std::vector<kernels::cpu::WeightMatrix>& weights, int64_t m) {
  int64_t cols = 0, rows = 0;
  double bytes = 0, flops = 0;
  for (const auto& w : weights) {
    cols = std::max(cols, w.cols);
    rows = std::max(rows, w.rows);
    const Matrix x = matrix_of(w);
    bytes += x.bytes;
    flops += 2.0 * double(m) * x.params;
  }
  std::vector<float> x(size_t(m * cols)), y(size_t(m * rows));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 7919) % 1000) / 1000.0f - 0.5f;
  const double s = best_seconds(3, [&] {
    for (const auto& w : weights) kernels::cpu::matmul(x.data(), m, w, y.data());
  });
  return {bytes / s, flops / s};
}

// The machine as this model's kernels see it: raw read bandwidth, the FP8 kernel's streaming rate
// (all routed experts of the first MoE layer, m = 1) and FLOP rate (16 of them, m = 64), and the
// BF16 kernel's streaming rate (the lm_head, m = 1).
inline Machine measure_machine(const models::deepseek_v3::DeepseekV3Weights& w) {
  Machine m;
  m.read_bytes_per_s = measure_read_bandwidth();
  std::vector<kernels::cpu::WeightMatrix> experts;
  for (const auto& l : w.layers) {
    if (!l.moe) continue;
    for (const auto& e : l.moe->experts) {
      for (const auto* x : {&e.gate_proj, &e.up_proj, &e.down_proj}) experts.push_back(*x);
    }
    break;
  }
  if (!experts.empty()) {
    m.fp8_bytes_per_s = measure_matmul(experts, 1).first;
    experts.resize(std::min<size_t>(experts.size(), 48));
    m.flops_per_s = measure_matmul(experts, 64).second;
  }
  m.bf16_bytes_per_s = measure_matmul({w.lm_head}, 1).first;
  if (m.flops_per_s == 0) m.flops_per_s = measure_matmul({w.lm_head}, 64).second;
  if (m.fp8_bytes_per_s == 0) m.fp8_bytes_per_s = m.bf16_bytes_per_s;
  return m;
}

// A GPU as benchmarks/gpu/check.sh measured it (bench_gpu_ceilings, exported to the environment):
// LATENTSERVE_CEILING_COPY_BYTES_PER_S (device copy, bytes read + written per second) prices every
// byte, kernels included; LATENTSERVE_CEILING_FP8_TFLOPS (or _BF16_TFLOPS) the FLOPs. Empty when
// either is missing or not a positive number: a GPU is never priced with this CPU's figures.
inline std::optional<Machine> machine_from_ceilings() {
  auto number = [](const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? 0.0 : std::strtod(v, nullptr);
  };
  const double copy = number("LATENTSERVE_CEILING_COPY_BYTES_PER_S");
  double tflops = number("LATENTSERVE_CEILING_FP8_TFLOPS");
  if (!(tflops > 0)) tflops = number("LATENTSERVE_CEILING_BF16_TFLOPS");
  if (!(copy > 0) || !(tflops > 0)) return std::nullopt;
  Machine m;
  m.read_bytes_per_s = m.fp8_bytes_per_s = m.bf16_bytes_per_s = copy;
  m.flops_per_s = tflops * 1e12;
  return m;
}

}  // namespace latentserve::bench
