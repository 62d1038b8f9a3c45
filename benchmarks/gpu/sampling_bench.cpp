// Where to sample at batch 256 × vocab 129,280: (a) copy the F32 logits to the host and run the
// engine's CPU sampler (engine/sampler.h, OpenMP over rows), against (b) the GPU sampler
// (kernels/cuda/sampling.h) on the logits where the model left them, both doing temperature, top_k
// and top_p with the same uniform per row. Prints a human line per configuration and
// "| metric | measured | reference | ratio | target |" rows, the ratio being host time / GPU time;
// fails when the two pick different tokens on more than 1% of rows. Usage:
//   sampling_bench [--batch 256] [--vocab 129280] [--iters 10]
#include <cuda_runtime_api.h>

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/sampler.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/sampling.h"

namespace {

using latentserve::Status;
namespace cuda = latentserve::kernels::cuda;
namespace engine = latentserve::engine;

struct Options {
  int batch = 256, vocab = 129280, iters = 10;
};

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (k == "--batch") o.batch = v;
    else if (k == "--vocab") o.vocab = v;
    else if (k == "--iters") o.iters = v;
    else return false;
  }
  return argc % 2 == 1 && o.batch > 0 && o.vocab > 1 && o.iters > 0;
}

bool ok(const Status& st, const char* what) {
  if (!st.ok()) std::fprintf(stderr, "sampling_bench: %s: %s\n", what, st.error().message.c_str());
  return st.ok();
}

template <class T>
bool ok(const latentserve::Result<T>& r, const char* what) {
  if (!r.ok()) std::fprintf(stderr, "sampling_bench: %s: %s\n", what, r.error().message.c_str());
  return r.ok();
}

// Logits like a language model's: N(0, 3²)-ish from a counter hash (sum of four uniforms), so a
// few dozen tokens hold most of the mass after temperature 0.7.
std::vector<float> make_logits(int64_t rows, int64_t vocab) {
  std::vector<float> v(static_cast<size_t>(rows * vocab));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows * vocab; ++i) {
    uint64_t x = uint64_t(i) * 0x9e3779b97f4a7c15ull + 12345;
    float s = 0;
    for (int k = 0; k < 4; ++k) {
      x ^= x >> 31;
      x *= 0xbf58476d1ce4e5b9ull;
      x ^= x >> 29;
      s += float(x >> 40) / float(1 << 24);
    }
    v[size_t(i)] = (s - 2.0f) * 5.2f;
  }
  return v;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Config {
  const char* name;
  float temperature;
  int32_t top_k;
  float top_p;
};

struct Buffers {
  cuda::DeviceBuffer logits, params, uniforms, tokens;
  float* pinned = nullptr;
  ~Buffers() { cudaFreeHost(pinned); }
};

// One configuration: both paths timed, tokens compared. False on a failure.
bool run(const Options& o, const Config& c, Buffers& b, cudaStream_t stream) {
  const int64_t rows = o.batch, vocab = o.vocab;
  engine::SamplingParams sp;
  sp.temperature = c.temperature;
  sp.top_k = c.top_k;
  sp.top_p = c.top_p;
  sp.seed = 20240607;
  std::vector<engine::SamplerState> states;
  for (int64_t r = 0; r < rows; ++r) states.push_back(engine::SamplerState::create(sp, uint32_t(r), {}));
  std::vector<engine::SampleRow> sample_rows(static_cast<size_t>(rows));
  std::vector<double> uniforms(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    sample_rows[size_t(r)] = {&sp, &states[size_t(r)], 0};
    uniforms[size_t(r)] = engine::sampling_uniform(states[size_t(r)], 0);
  }
  const std::vector<cuda::SamplingRowParams> gpu_params(size_t(rows), {c.temperature, c.top_k, c.top_p, 0.0f});
  if (!ok(cuda::copy_to_device(b.params.data(), gpu_params.data(), gpu_params.size() * sizeof(gpu_params[0])), "params") ||
      !ok(cuda::copy_to_device(b.uniforms.data(), uniforms.data(), uniforms.size() * sizeof(double)), "uniforms")) {
    return false;
  }

  // (a) logits to the host (page-locked, the best case), then the engine's sampler.
  std::vector<engine::SampleResult> host_results(static_cast<size_t>(rows));
  std::vector<float> pageable(static_cast<size_t>(rows * vocab));
  double copy_ms = 1e30, pageable_ms = 1e30, sample_ms = 1e30;
  for (int it = 0; it < o.iters; ++it) {
    double t0 = now_ms();
    if (!ok(LS_CUDA_CHECK(cudaMemcpyAsync(b.pinned, b.logits.data(), size_t(rows * vocab) * 4, cudaMemcpyDeviceToHost, stream)), "copy") ||
        !ok(LS_CUDA_CHECK(cudaStreamSynchronize(stream)), "copy")) {
      return false;
    }
    double t1 = now_ms();
    if (!ok(engine::sample_batch(b.pinned, vocab, sample_rows, {}, host_results), "sample_batch")) return false;
    double t2 = now_ms();
    copy_ms = std::min(copy_ms, t1 - t0);
    sample_ms = std::min(sample_ms, t2 - t1);
    t0 = now_ms();
    if (!ok(cuda::copy_to_host(pageable.data(), b.logits.data(), pageable.size() * 4), "pageable copy")) return false;
    pageable_ms = std::min(pageable_ms, now_ms() - t0);
  }

  // (b) the GPU sampler, then the 256 token ids to the host.
  cuda::SampleRowsParams p;
  p.logits = b.logits.as<float>();
  p.ld = vocab;
  p.rows = rows;
  p.vocab = vocab;
  p.row_params = b.params.as<cuda::SamplingRowParams>();
  p.uniforms = b.uniforms.as<double>();
  p.tokens = b.tokens.as<int32_t>();
  std::vector<int32_t> tokens(static_cast<size_t>(rows));
  double gpu_ms = 1e30;
  for (int it = 0; it < o.iters + 1; ++it) {
    const double t0 = now_ms();
    if (!ok(cuda::sample_rows(p, stream), "sample_rows") ||
        !ok(LS_CUDA_CHECK(cudaMemcpyAsync(tokens.data(), p.tokens, tokens.size() * 4, cudaMemcpyDeviceToHost, stream)), "tokens") ||
        !ok(LS_CUDA_CHECK(cudaStreamSynchronize(stream)), "sample_rows")) {
      return false;
    }
    if (it > 0) gpu_ms = std::min(gpu_ms, now_ms() - t0);  // the first call is a warm-up
  }
  int64_t agree = 0;
  for (int64_t r = 0; r < rows; ++r) agree += tokens[size_t(r)] == host_results[size_t(r)].token ? 1 : 0;

  const double host_ms = copy_ms + sample_ms;
  std::printf("sampling %s batch=%lld vocab=%lld: host path %.3f ms (copy %.3f ms page-locked, %.3f ms pageable; "
              "CPU sampler %.3f ms on %d threads), GPU %.3f ms; same token on %lld/%lld rows\n",
              c.name, (long long)rows, (long long)vocab, host_ms, copy_ms, pageable_ms, sample_ms,
              omp_get_max_threads(), gpu_ms, (long long)agree, (long long)rows);
  std::printf("| sampling %s b=%lld V=%lld: GPU kernel vs logits to host + CPU sampler | %.3f ms | host %.3f ms | %.1f | > 1 (GPU faster) |\n",
              c.name, (long long)rows, (long long)vocab, gpu_ms, host_ms, host_ms / gpu_ms);
  if (agree * 100 < rows * 99) {
    std::fprintf(stderr, "sampling_bench: the GPU and CPU samplers disagree on %lld of %lld rows\n",
                 (long long)(rows - agree), (long long)rows);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::fprintf(stderr, "usage: sampling_bench [--batch 256] [--vocab 129280] [--iters 10]\n");
    return 2;
  }
  if (cuda::device_count() == 0) {
    std::printf("sampling_bench: no CUDA GPU present, nothing measured\n");
    return 77;
  }
  const int64_t n = int64_t(o.batch) * o.vocab;
  Buffers b;
  auto logits = cuda::DeviceBuffer::allocate(size_t(n) * 4, "logits");
  auto params = cuda::DeviceBuffer::allocate(size_t(o.batch) * sizeof(cuda::SamplingRowParams), "row parameters");
  auto uniforms = cuda::DeviceBuffer::allocate(size_t(o.batch) * sizeof(double), "uniforms");
  auto tokens = cuda::DeviceBuffer::allocate(size_t(o.batch) * sizeof(int32_t), "tokens");
  auto stream = cuda::DeviceStream::create();
  if (!ok(logits, "logits") || !ok(params, "params") || !ok(uniforms, "uniforms") || !ok(tokens, "tokens") ||
      !ok(stream, "stream")) {
    return 1;
  }
  b.logits = std::move(*logits);
  b.params = std::move(*params);
  b.uniforms = std::move(*uniforms);
  b.tokens = std::move(*tokens);
  if (!ok(LS_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&b.pinned), size_t(n) * 4)), "page-locked logits")) return 1;
  const std::vector<float> host = make_logits(o.batch, o.vocab);
  if (!ok(cuda::copy_to_device(b.logits.data(), host.data(), host.size() * 4), "logits")) return 1;

  const Config configs[] = {{"T=0.7 top_k=50 top_p=0.9", 0.7f, 50, 0.9f}, {"T=1 top_p=0.95", 1.0f, 0, 0.95f}};
  bool good = true;
  for (const Config& c : configs) good = run(o, c, b, stream->get()) && good;
  return good ? 0 : 1;
}
