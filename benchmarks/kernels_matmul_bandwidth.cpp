// Decode-sized matmul against the machine's own memory bandwidth, measured in the same run.
// Decode (m = 1..8 rows of x) is memory-bound: all of W streams from DRAM once per call, so the
// figure that matters is weight bytes per second as a fraction of what a plain parallel copy
// achieves. Weights are several matrices far larger than the last-level cache, cycled so nothing
// stays cached between calls. A prefill-sized product is timed too, to show it is compute-bound,
// and each BF16 decode size once more with its weights in L2, to show where decode stops being
// bound by memory and starts being bound by arithmetic.
//
// Weights live in 4 KiB pages or in transparent huge pages (madvise), the page kind a table names:
// on a virtual machine every TLB miss walks two page tables, so the page size is part of the result.
// Usage: bench_kernels_matmul_bandwidth [--pages small|huge|both] (default both).
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined is self-initialised on purpose).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
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

enum class Pages { Small, Huge };
const char* pages_name(Pages p) { return p == Pages::Huge ? "2M" : "4K"; }

// Anonymous memory with the page kind asked for; pages are first touched by fill_random.
class Buffer {
 public:
  Buffer(size_t bytes, Pages pages) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "mmap of %zu bytes failed\n", bytes);
      std::exit(1);
    }
    ::madvise(p, bytes, pages == Pages::Huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    data_ = static_cast<uint8_t*>(p);
  }
  ~Buffer() { ::munmap(data_, bytes_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  uint8_t* data_;
  size_t bytes_;
};

// MiB of this process's anonymous memory in huge pages (to confirm madvise took effect).
long huge_mib() {
  std::ifstream f("/proc/self/smaps_rollup");
  std::string key;
  long kb = 0;
  while (f >> key) {
    if (key == "AnonHugePages:") {
      f >> kb;
      return kb / 1024;
    }
  }
  return -1;
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

// One thread's streaming read of [p, p + bytes) as `streams` equal sub-ranges read side by side,
// four 64-byte loads per stream per step: one load per cache line, so the out-of-order window holds
// many lines in flight (a loop of 8-byte loads is limited by its instruction count instead).
__attribute__((target("avx512f"))) uint64_t read_range_avx512(const uint8_t* p, size_t bytes, int streams) {
  const size_t per = bytes / size_t(streams) / 256 * 256;
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t off = 0; off < per; off += 256) {
    for (int s = 0; s < streams; ++s) {
      const uint8_t* q = p + size_t(s) * per + off;
      a0 = _mm512_xor_si512(a0, _mm512_load_si512(q));
      a1 = _mm512_xor_si512(a1, _mm512_load_si512(q + 64));
      a2 = _mm512_xor_si512(a2, _mm512_load_si512(q + 128));
      a3 = _mm512_xor_si512(a3, _mm512_load_si512(q + 192));
    }
  }
  return uint64_t(_mm512_reduce_add_epi64(_mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3))));
}

__attribute__((target("avx2"))) uint64_t read_range_avx2(const uint8_t* p, size_t bytes, int streams) {
  const size_t per = bytes / size_t(streams) / 128 * 128;
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t off = 0; off < per; off += 128) {
    for (int s = 0; s < streams; ++s) {
      const __m256i* q = reinterpret_cast<const __m256i*>(p + size_t(s) * per + off);
      a0 = _mm256_xor_si256(a0, _mm256_load_si256(q));
      a1 = _mm256_xor_si256(a1, _mm256_load_si256(q + 1));
      a2 = _mm256_xor_si256(a2, _mm256_load_si256(q + 2));
      a3 = _mm256_xor_si256(a3, _mm256_load_si256(q + 3));
    }
  }
  const __m256i r = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return uint64_t(_mm256_extract_epi64(r, 0) ^ _mm256_extract_epi64(r, 3));
}

// Bytes read per second by a parallel streaming read, best over repetitions and 1, 2 or 4 streams
// per thread: the ceiling for a kernel that only reads its weights.
double read_bandwidth(const uint8_t* data, size_t bytes) {
  const bool avx512 = isa_supported(CpuIsa::Avx512);
  double best = 1e30;
  uint64_t sink = 0;
  for (int streams : {1, 2, 4}) {
    for (int rep = 0; rep < 3; ++rep) {
      const double t0 = now_s();
#pragma omp parallel reduction(^ : sink)
      {
        const size_t threads = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
        const size_t chunk = bytes / threads / 4096 * 4096;
        sink ^= avx512 ? read_range_avx512(data + t * chunk, chunk, streams)
                       : read_range_avx2(data + t * chunk, chunk, streams);
      }
      best = std::min(best, now_s() - t0);
    }
  }
  if (sink == 0x5eed) std::printf(" ");  // keeps the reads alive
  return double(bytes / size_t(omp_get_max_threads()) / 4096 * 4096 * size_t(omp_get_max_threads())) / best;
}

struct Bandwidth {
  double copy;  // bytes read + written per second
  double read;  // bytes read per second
};

// A parallel copy (bytes read + written per second, the STREAM convention) and a parallel read,
// best of several, on memory of the given page kind.
Bandwidth measure_memory(size_t bytes, Pages pages) {
  Buffer src(bytes, pages), dst(bytes, pages);
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
  return {2.0 * double(bytes) / best, read_bandwidth(src.data(), bytes)};
}

long largest_huge_mib = -1;  // the most huge-page memory seen after filling a weight set

// A set of equally shaped weight matrices in one allocation, used round-robin.
struct WeightSet {
  Buffer bytes;
  std::vector<float> scales;
  std::vector<WeightMatrix> mats;

  WeightSet(DType dtype, int count, int64_t rows, int64_t cols, Pages pages)
      : bytes(size_t(rows * cols) * dtype_size(dtype) * size_t(count), pages) {
    const size_t each = size_t(rows * cols) * dtype_size(dtype);
    if (dtype == DType::BF16) {  // random sign and mantissa, exponent near 1
      fill_random(bytes.data(), bytes.size(), [](uint32_t s) { return uint8_t(s & 0xff); });
      uint16_t* h = reinterpret_cast<uint16_t*>(bytes.data());
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < bytes.size() / 2; ++i) h[i] = uint16_t((h[i] & 0x807f) | (0x3c << 7));
    } else {  // FP8: any code but the NaNs
      fill_random(bytes.data(), bytes.size(), [](uint32_t s) { return uint8_t(s & 0xbf); });
    }
    largest_huge_mib = std::max(largest_huge_mib, huge_mib());
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

// Seconds per matmul call, best pass over the whole set (each pass touches every matrix `repeats`
// times; the best of many, because a neighbour on this shared machine can slow any one pass).
double time_decode(const WeightSet& set, int64_t m, int passes, int repeats = 1) {
  const WeightMatrix& w0 = set.mats[0];
  std::vector<float> x(size_t(m * w0.cols)), y(size_t(m * w0.rows));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 17) * 0.125f - 1.0f;
  for (const WeightMatrix& w : set.mats) matmul(x.data(), m, w, y.data());  // warm-up
  double best = 1e30;
  for (int p = 0; p < passes; ++p) {
    const double t0 = now_s();
    for (int r = 0; r < repeats; ++r) {
      for (const WeightMatrix& w : set.mats) matmul(x.data(), m, w, y.data());
    }
    best = std::min(best, (now_s() - t0) / double(set.mats.size() * size_t(repeats)));
  }
  return best;
}

// One timed product, printed once the whole run is over (see main).
struct Row {
  std::string label;
  Pages pages;
  WeightMatrix w;
  int mats;
  int64_t m;
  double seconds;
};
std::vector<Row> rows;

void print_row(const Row& r, double copy, double read) {
  const WeightMatrix& w = r.w;
  const double bw = double(w.rows * w.cols) * double(dtype_size(w.dtype)) / r.seconds;
  std::printf("| %-16s | %s | %5lld x %5lld x %d | %3lld | %8.2f | %6.2f | %7.1f | %8.2f | %8.2f |\n", r.label.c_str(),
              pages_name(r.pages), (long long)w.rows, (long long)w.cols, r.mats, (long long)r.m, r.seconds * 1e3,
              bw / 1e9, 2.0 * double(r.m) * double(w.rows * w.cols) / r.seconds / 1e9, bw / copy, bw / read);
}

void decode_table(const char* label, const WeightSet& set, Pages pages, std::initializer_list<int64_t> ms) {
  for (int64_t m : ms) rows.push_back({label, pages, set.mats[0], int(set.mats.size()), m, time_decode(set, m, 10)});
}

// The same decode with weights that stay in the cores' L2 caches: the kernel's compute roof. A row
// streamed from memory close to its roof is bound by the arithmetic, not by the memory system.
// Shorter rows than the streamed matrices, so x (packed once per call, m × cols floats) stays
// small next to the weights; x's traffic per weight byte inside the kernel does not depend on the
// row length.
struct RoofRow {
  int64_t m;
  double in_cache;  // weight bytes per second, weights resident in L2
};
std::vector<RoofRow> roofs;

void roof_table(std::initializer_list<int64_t> ms) {
  // 1.5 MiB of weights per thread, inside its L2 with x (64 KiB at m = 8) and its packed copy.
  constexpr int64_t cols = 2048;
  const int64_t weight_rows = 384 * int64_t(omp_get_max_threads());
  const WeightSet cached(DType::BF16, 1, weight_rows, cols, Pages::Small);
  const double bytes = double(weight_rows * cols) * double(dtype_size(DType::BF16));
  for (int64_t m : ms) roofs.push_back({m, bytes / time_decode(cached, m, 10, 30)});
}

// Each BF16 decode row of `pages` beside its roof.
void print_roofs(Pages pages) {
  std::printf("\n| BF16 decode, %s pages | in L2 GB/s | from memory GB/s | memory / L2 |\n", pages_name(pages));
  std::printf("|------------------------|------------|------------------|-------------|\n");
  for (const RoofRow& roof : roofs) {
    for (const Row& r : rows) {
      if (r.label != "BF16" || r.pages != pages || r.m != roof.m) continue;
      const double bw = double(r.w.rows * r.w.cols) * double(dtype_size(r.w.dtype)) / r.seconds;
      std::printf("| m = %-18lld | %10.2f | %16.2f | %11.2f |\n", (long long)r.m, roof.in_cache / 1e9, bw / 1e9,
                  bw / roof.in_cache);
    }
  }
}

// The first `rows` rows of w against m rows of x, best of three calls after a warm-up.
void prefill_rows(const char* label, WeightMatrix w, int64_t weight_rows, Pages pages,
                  std::initializer_list<int64_t> ms) {
  w.rows = weight_rows;
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
    rows.push_back({label, pages, w, 1, m, s});
  }
}

void set_isa(CpuIsa isa) { setenv("LATENTSERVE_CPU_ISA", std::string(isa_name(isa)).c_str(), 1); }

// Every table for weights in one page kind.
void run_tables(Pages pages, bool with_prefill) {
  const CpuIsa best = detected_isa();
  const bool avx2_too = best != CpuIsa::Avx2 && isa_supported(CpuIsa::Avx2);
  {
    const WeightSet bf16(DType::BF16, 4, 8192, 16384, pages);  // 4 × 256 MiB
    set_isa(best);
    decode_table("BF16", bf16, pages, {1, 2, 4, 8, 12, 16});
    if (roofs.empty()) roof_table({1, 2, 4, 8});
    if (avx2_too) {
      set_isa(CpuIsa::Avx2);
      decode_table("BF16 (avx2)", bf16, pages, {1, 8});
      set_isa(best);
    }
    // Prefill: many rows of x reuse every weight row, so the product becomes compute-bound.
    if (with_prefill) prefill_rows("BF16 prefill", bf16.mats[0], 4096, pages, {64, 128});
  }
  {
    const WeightSet fp8(DType::F8_E4M3, 4, 16384, 16384, pages);  // 4 × 256 MiB, 128×128 block scales
    decode_table("FP8 E4M3", fp8, pages, {1, 2, 4, 8});
    if (with_prefill) prefill_rows("FP8 prefill", fp8.mats[0], 4096, pages, {128});
    if (avx2_too) {
      set_isa(CpuIsa::Avx2);
      decode_table("FP8 E4M3 (avx2)", fp8, pages, {1, 8});
      set_isa(best);
    }
  }
}

std::string thp_setting() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(f, s);
  return s.empty() ? "unknown" : s;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<Pages> kinds = {Pages::Small, Pages::Huge};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const std::string v = i + 1 < argc ? argv[i + 1] : "";
    if (a == "--pages" && (v == "small" || v == "huge" || v == "both")) {
      kinds = v == "small" ? std::vector<Pages>{Pages::Small}
              : v == "huge" ? std::vector<Pages>{Pages::Huge}
                            : std::vector<Pages>{Pages::Small, Pages::Huge};
      ++i;
    } else {
      std::fprintf(stderr, "usage: %s [--pages small|huge|both]\n", argv[0]);
      return 2;
    }
  }
  std::printf("threads %d, isa %s, transparent huge pages: %s\n", omp_get_max_threads(),
              std::string(isa_name(detected_isa())).c_str(), thp_setting().c_str());

  // Memory is measured before and after the matmuls and the better of the two is the ceiling: on a
  // shared machine a neighbour's burst can depress one measurement, and a low ceiling would flatter
  // every ratio. The tables are printed at the end, against the final ceilings.
  const size_t copy_bytes = size_t(1) << 29;  // 512 MiB each way, 1 GiB moved per copy
  std::vector<Bandwidth> before, after;
  for (Pages p : kinds) before.push_back(measure_memory(copy_bytes, p));
  for (size_t i = 0; i < kinds.size(); ++i) run_tables(kinds[i], i + 1 == kinds.size());
  for (Pages p : kinds) after.push_back(measure_memory(copy_bytes, p));
  double copy = 0.0;
  std::vector<double> read(kinds.size());
  for (size_t i = 0; i < kinds.size(); ++i) {
    copy = std::max({copy, before[i].copy, after[i].copy});
    read[i] = std::max(before[i].read, after[i].read);
    std::printf("%s pages: parallel copy of %zu MiB %.2f / %.2f GB/s before / after the matmuls (read + written), "
                "parallel read %.2f / %.2f GB/s\n",
                pages_name(kinds[i]), copy_bytes >> 20, before[i].copy / 1e9, after[i].copy / 1e9,
                before[i].read / 1e9, after[i].read / 1e9);
  }
  std::printf("W / copy is over %.2f GB/s, the best copy; W / read over the better read of the same pages\n\n",
              copy / 1e9);

  std::printf("| weights (isa)    | pg | rows x cols x mats   |   m | ms/call  | W GB/s | GFLOP/s | W / copy | W / read |\n");
  std::printf("|------------------|----|----------------------|-----|----------|--------|---------|----------|----------|\n");
  for (const Row& r : rows) {
    const size_t kind = size_t(std::find(kinds.begin(), kinds.end(), r.pages) - kinds.begin());
    print_row(r, copy, read[kind]);
  }
  for (Pages p : kinds) print_roofs(p);
  if (largest_huge_mib >= 0) std::printf("\nmost anonymous memory in huge pages at once: %ld MiB\n", largest_huge_mib);
  return 0;
}
