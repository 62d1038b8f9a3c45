// Decode-sized matmul against the machine's own memory bandwidth, measured in the same run.
// Decode (m = 1..8 rows of x) is memory-bound: all of W streams from DRAM once per call, so the
// figure that matters is weight bytes per second as a fraction of what a plain parallel copy
// achieves. Weights are several matrices far larger than the last-level cache, cycled so nothing
// stays cached between calls. A prefill-sized product is timed too, to show it is compute-bound.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"

using namespace latentserve;
using namespace latentserve::kernels::cpu;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Page memory in (first touch from the threads that will use it) with cheap pseudo-random bytes.
void fill_random(uint8_t* p, size_t n, uint8_t (*shape)(uint32_t)) {
#pragma omp parallel
  {
    uint32_t s = 0x9e3779b9u * uint32_t(omp_get_thread_num() + 1);
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      s ^= s << 13, s ^= s >> 17, s ^= s << 5;
      p[i] = shape(s);
    }
  }
}

// Bytes read per second by a parallel streaming read (xor of 64-bit words), best of several: the
// ceiling for a kernel that only reads its weights.
double read_bandwidth(const uint8_t* data, size_t bytes) {
  const uint64_t* words = reinterpret_cast<const uint64_t*>(data);
  const size_t n = bytes / 32 * 4;
  double best = 1e30;
  uint64_t sink = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(^ : total)
    for (size_t i = 0; i < n; i += 4) total ^= words[i] ^ words[i + 1] ^ words[i + 2] ^ words[i + 3];
    best = std::min(best, now_s() - t0);
    sink ^= total;
  }
  if (sink == 0x5eed) std::printf(" ");  // keeps the reads alive
  return double(n * 8) / best;
}

// Bytes read plus bytes written per second by a parallel copy, best of several.
double copy_bandwidth(size_t bytes, double* read_bw) {
  std::vector<uint8_t> src(bytes), dst(bytes);
  fill_random(src.data(), bytes, [](uint32_t s) { return uint8_t(s); });
  fill_random(dst.data(), bytes, [](uint32_t s) { return uint8_t(s >> 8); });
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
#pragma omp parallel
    {
      const size_t threads = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
      const size_t chunk = (bytes + threads - 1) / threads;
      const size_t begin = std::min(bytes, t * chunk), end = std::min(bytes, begin + chunk);
      std::memcpy(dst.data() + begin, src.data() + begin, end - begin);
    }
    best = std::min(best, now_s() - t0);
  }
  *read_bw = read_bandwidth(src.data(), bytes);
  return 2.0 * double(bytes) / best;
}

// A set of equally shaped weight matrices in one allocation, used round-robin.
struct WeightSet {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  std::vector<WeightMatrix> mats;

  WeightSet(DType dtype, int count, int64_t rows, int64_t cols) {
    const size_t each = size_t(rows * cols) * dtype_size(dtype);
    bytes.resize(each * size_t(count));
    if (dtype == DType::BF16) {  // random sign and mantissa, exponent near 1
      fill_random(bytes.data(), bytes.size(), [](uint32_t s) { return uint8_t(s & 0xff); });
      uint16_t* h = reinterpret_cast<uint16_t*>(bytes.data());
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < bytes.size() / 2; ++i) h[i] = uint16_t((h[i] & 0x807f) | (0x3c << 7));
    } else {  // FP8: any code but the NaNs
      fill_random(bytes.data(), bytes.size(), [](uint32_t s) { return uint8_t(s & 0xbf); });
    }
    scales.assign(size_t(((rows + 127) / 128) * ((cols + 127) / 128)), 0.01f);
    for (int i = 0; i < count; ++i) {
      WeightMatrix w;
      w.dtype = dtype;
      w.data = bytes.data() + each * size_t(i);
      w.rows = rows;
      w.cols = cols;
      if (dtype == DType::F8_E4M3) w.scale_inv = scales.data();
      mats.push_back(w);
    }
  }
};

// Seconds per matmul call, best pass over the whole set (each pass touches every matrix once).
double time_decode(const WeightSet& set, int64_t m, int passes) {
  const WeightMatrix& w0 = set.mats[0];
  std::vector<float> x(size_t(m * w0.cols)), y(size_t(m * w0.rows));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 17) * 0.125f - 1.0f;
  for (const WeightMatrix& w : set.mats) matmul(x.data(), m, w, y.data());  // warm-up
  double best = 1e30;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_s();
    for (const WeightMatrix& w : set.mats) matmul(x.data(), m, w, y.data());
    best = std::min(best, (now_s() - t0) / double(set.mats.size()));
  }
  return best;
}

struct Bandwidth {
  double copy;  // bytes read + written per second
  double read;  // bytes read per second
};

void decode_table(const char* label, const WeightSet& set, Bandwidth mem, std::initializer_list<int64_t> ms) {
  const WeightMatrix& w = set.mats[0];
  const double weight_bytes = double(w.rows * w.cols) * double(dtype_size(w.dtype));
  for (int64_t m : ms) {
    const double s = time_decode(set, m, 3);
    const double bw = weight_bytes / s;
    std::printf("| %-16s | %5lld x %5lld x %d | %3lld | %8.2f | %6.2f | %7.1f | %8.2f | %8.2f |\n", label,
                (long long)w.rows, (long long)w.cols, int(set.mats.size()), (long long)m, s * 1e3,
                bw / 1e9, 2.0 * double(m) * double(w.rows * w.cols) / s / 1e9, bw / mem.copy, bw / mem.read);
  }
}

// The first `rows` rows of w against m rows of x, best of three calls after a warm-up.
void prefill_rows(const char* label, WeightMatrix w, int64_t rows, Bandwidth mem, std::initializer_list<int64_t> ms) {
  w.rows = rows;
  const double bytes = double(w.rows * w.cols) * double(dtype_size(w.dtype));
  for (int64_t m : ms) {
    std::vector<float> x(size_t(m * w.cols)), y(size_t(m * w.rows));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 13) * 0.125f - 0.75f;
    matmul(x.data(), m, w, y.data());
    double s = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = now_s();
      matmul(x.data(), m, w, y.data());
      s = std::min(s, now_s() - t0);
    }
    std::printf("| %-16s | %5lld x %5lld x 1 | %3lld | %8.2f | %6.2f | %7.1f | %8.2f | %8.2f |\n", label,
                (long long)w.rows, (long long)w.cols, (long long)m, s * 1e3, bytes / s / 1e9,
                2.0 * double(m * w.rows * w.cols) / s / 1e9, bytes / s / mem.copy, bytes / s / mem.read);
  }
}

void set_isa(CpuIsa isa) { setenv("LATENTSERVE_CPU_ISA", std::string(isa_name(isa)).c_str(), 1); }

}  // namespace

int main() {
  const CpuIsa best = detected_isa();
  std::printf("threads %d, isa %s\n", omp_get_max_threads(), std::string(isa_name(best)).c_str());

  const size_t copy_bytes = size_t(1) << 29;  // 512 MiB each way, 1 GiB moved per copy
  Bandwidth mem{};
  mem.copy = copy_bandwidth(copy_bytes, &mem.read);
  std::printf("parallel copy of %zu MiB: %.2f GB/s (read + written); parallel read: %.2f GB/s\n\n",
              copy_bytes >> 20, mem.copy / 1e9, mem.read / 1e9);

  std::printf("| weights (isa)    | rows x cols x mats   |   m | ms/call  | W GB/s | GFLOP/s | W / copy | W / read |\n");
  std::printf("|------------------|----------------------|-----|----------|--------|---------|----------|----------|\n");
  {
    const WeightSet bf16(DType::BF16, 4, 8192, 16384);  // 4 × 256 MiB
    set_isa(best);
    decode_table("BF16", bf16, mem, {1, 2, 4, 8, 16});
    if (best != CpuIsa::Avx2 && isa_supported(CpuIsa::Avx2)) {
      set_isa(CpuIsa::Avx2);
      decode_table("BF16 (avx2)", bf16, mem, {1, 8});
    }
    set_isa(best);

    // Prefill: many rows of x reuse every weight row, so the product becomes compute-bound.
    prefill_rows("BF16 prefill", bf16.mats[0], 4096, mem, {64, 128});
  }
  {
    const WeightSet fp8(DType::F8_E4M3, 4, 16384, 16384);  // 4 × 256 MiB, 128×128 block scales
    decode_table("FP8 E4M3", fp8, mem, {1, 2, 4, 8});
    prefill_rows("FP8 prefill", fp8.mats[0], 4096, mem, {128});
    if (best != CpuIsa::Avx2 && isa_supported(CpuIsa::Avx2)) {
      set_isa(CpuIsa::Avx2);
      decode_table("FP8 E4M3 (avx2)", fp8, mem, {1, 8});
      set_isa(best);
    }
  }
  return 0;
}
