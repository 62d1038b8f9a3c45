// MLA decode speed at DeepSeek-V3 shapes (128 heads, latent 512 + rope 64, BF16 cache in blocks of
// 64): cache bytes read per second as a fraction of the device-to-device copy bandwidth (bytes read
// + written per second) measured in the same run. Usage:
//   mla_decode_bench [--batch 64] [--context 4096] [--heads 128] [--iters 20] [--tiles-per-split 0]
// The copy ceiling comes from LATENTSERVE_CEILING_COPY_BYTES_PER_S when set (benchmarks/gpu/check.sh),
// else is measured here. Prints a human line, then a "| metric | measured | reference | ratio |
// target |" row for the check script's table.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/mla_decode.h"
#include "kernels/cuda/mla_plan.h"

namespace {

using latentserve::Status;
namespace cuda = latentserve::kernels::cuda;

struct Options {
  int batch = 64, context = 4096, heads = 128, iters = 20, tiles_per_split = 0;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--batch") o.batch = v;
    else if (k == "--context") o.context = v;
    else if (k == "--heads") o.heads = v;
    else if (k == "--iters") o.iters = v;
    else if (k == "--tiles-per-split") o.tiles_per_split = v;
    else return false;
  }
  return (argc % 2 == 1) && o.batch > 0 && o.context > 0 && o.heads > 0 && o.iters > 0;
}

bool ok(const Status& st) {
  if (!st.ok()) std::fprintf(stderr, "mla_decode_bench: %s\n", st.error().message.c_str());
  return st.ok();
}

// Owns a cudaMalloc'd buffer for the benchmark's lifetime.
struct Buffer {
  void* ptr = nullptr;
  ~Buffer() { cudaFree(ptr); }
  bool alloc(size_t bytes, const char* what) {
    const Status st = LS_CUDA_CHECK(cudaMalloc(&ptr, bytes));
    if (!st.ok()) std::fprintf(stderr, "allocating %s (%zu bytes): ", what, bytes);
    return ok(st);
  }
};

// Milliseconds per call of `fn` on `stream`, after two warm-up calls.
template <class Fn>
bool time_ms(cudaStream_t stream, int iters, Fn fn, double& ms) {
  cudaEvent_t start, stop;
  if (!ok(LS_CUDA_CHECK(cudaEventCreate(&start))) || !ok(LS_CUDA_CHECK(cudaEventCreate(&stop)))) {
    return false;
  }
  bool good = fn() && fn();
  good = good && ok(LS_CUDA_CHECK(cudaEventRecord(start, stream)));
  for (int i = 0; good && i < iters; ++i) good = fn();
  good = good && ok(LS_CUDA_CHECK(cudaEventRecord(stop, stream))) &&
         ok(LS_CUDA_CHECK(cudaEventSynchronize(stop)));
  float total = 0.0f;
  good = good && ok(LS_CUDA_CHECK(cudaEventElapsedTime(&total, start, stop)));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  ms = double(total) / iters;
  return good;
}

// Device-to-device copy of 1 GiB: (read + written bytes) / second.
bool copy_bandwidth(cudaStream_t stream, double& bytes_per_s) {
  const size_t bytes = size_t(1) << 30;
  Buffer a, b;
  if (!a.alloc(bytes, "copy source") || !b.alloc(bytes, "copy destination")) return false;
  if (!ok(LS_CUDA_CHECK(cudaMemset(a.ptr, 1, bytes)))) return false;
  double ms = 0.0;
  auto fn = [&] {
    return ok(LS_CUDA_CHECK(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice, stream)));
  };
  if (!time_ms(stream, 10, fn, ms)) return false;
  bytes_per_s = 2.0 * double(bytes) / (ms * 1e-3);
  return true;
}

// Random BF16 values in [-1, 1) from a fixed LCG: the speed does not depend on them, the softmax
// should still see varied scores.
std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::vector<uint16_t> v(n);
  uint32_t s = seed;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = latentserve::float_to_bf16(float(int32_t(s >> 8) - (1 << 23)) / float(1 << 23));
  }
  return v;
}

bool upload(Buffer& b, const void* host, size_t bytes, const char* what) {
  return b.alloc(bytes, what) && ok(LS_CUDA_CHECK(cudaMemcpy(b.ptr, host, bytes, cudaMemcpyHostToDevice)));
}

int run(const Options& o) {
  if (cuda::device_count() == 0) {
    std::printf("mla_decode_bench: no CUDA GPU present, nothing measured\n");
    return 77;
  }
  cudaStream_t stream;
  if (!ok(LS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)))) return 1;
  // The check script measures the ceiling once and passes it on; alone, measure it here.
  double copy_bps = 0.0;
  if (const char* env = std::getenv("LATENTSERVE_CEILING_COPY_BYTES_PER_S"); env && *env) {
    copy_bps = std::atof(env);
  }
  if (!(copy_bps > 0.0) && !copy_bandwidth(stream, copy_bps)) return 1;

  constexpr int64_t kBlock = 64, kRank = 512, kRope = 64;
  const int64_t blocks_per_seq = (o.context + kBlock - 1) / kBlock;
  const int64_t num_blocks = o.batch * blocks_per_seq;
  std::vector<int32_t> tables(static_cast<size_t>(num_blocks));
  for (int64_t i = 0; i < num_blocks; ++i) tables[size_t(i)] = int32_t((i * 7919) % num_blocks);
  std::vector<cuda::MlaSequence> seqs;
  for (int s = 0; s < o.batch; ++s) seqs.push_back({s, 1, o.context});

  const auto cache = random_bf16(size_t(num_blocks * kBlock * (kRank + kRope)), 1);
  const auto ql = random_bf16(size_t(o.batch * o.heads * kRank), 2);
  const auto qr = random_bf16(size_t(o.batch * o.heads * kRope), 3);
  Buffer d_cache, d_ql, d_qr, d_tables, d_out, d_ws;
  if (!upload(d_cache, cache.data(), cache.size() * 2, "latent cache") ||
      !upload(d_ql, ql.data(), ql.size() * 2, "q_latent") ||
      !upload(d_qr, qr.data(), qr.size() * 2, "q_rope") ||
      !upload(d_tables, tables.data(), tables.size() * 4, "block tables") ||
      !d_out.alloc(size_t(o.batch * o.heads * kRank) * 2, "output")) {
    return 1;
  }
  cuda::MlaPlanOptions popt;
  popt.tiles_per_split = o.tiles_per_split;
  auto plan = cuda::mla_plan(seqs.data(), o.batch, o.heads, popt);
  if (!plan.ok()) return ok(plan.error()), 1;
  if (!d_ws.alloc(plan->workspace_bytes(), "plan workspace")) return 1;
  auto dplan = cuda::mla_plan_upload(*plan, d_ws.ptr, plan->workspace_bytes(), stream);
  if (!dplan.ok()) return ok(dplan.error()), 1;

  cuda::MlaAttentionParams p;
  p.q_latent = d_ql.ptr;
  p.q_rope = d_qr.ptr;
  p.cache = d_cache.ptr;
  p.block_tables = static_cast<const int32_t*>(d_tables.ptr);
  p.out = d_out.ptr;
  p.out_dtype = latentserve::DType::BF16;
  p.num_blocks = num_blocks;
  p.block_size = kBlock;
  p.block_table_stride = blocks_per_seq;
  p.heads = o.heads;
  p.softmax_scale = 0.1147f;
  double ms = 0.0;
  if (!time_ms(stream, o.iters, [&] { return ok(cuda::mla_attention(p, *dplan, stream)); }, ms)) {
    return 1;
  }
  const double cache_bytes = double(o.batch) * o.context * (kRank + kRope) * 2.0;
  const double bps = cache_bytes / (ms * 1e-3);
  const double flops = double(o.batch) * o.context * o.heads * 2.0 * double(2 * kRank + kRope);
  std::printf("mla_decode batch=%d context=%d heads=%d blocks=%zu merges=%zu: %.3f ms, cache read "
              "%.2f TB/s = %.3f of copy bandwidth %.2f TB/s, %.0f TFLOP/s\n",
              o.batch, o.context, o.heads, plan->work.size(), plan->merges.size(), ms, bps * 1e-12,
              bps / copy_bps, copy_bps * 1e-12, flops / (ms * 1e-3) * 1e-12);
  std::printf("| MLA decode b=%d ctx=%d h=%d, cache read | %.2f TB/s | copy %.2f TB/s | %.3f | >= 0.80 |\n",
              o.batch, o.context, o.heads, bps * 1e-12, copy_bps * 1e-12, bps / copy_bps);
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: mla_decode_bench [--batch N] [--context N] [--heads N] [--iters N] "
                 "[--tiles-per-split N]\n");
    return 2;
  }
  return run(o);
}
