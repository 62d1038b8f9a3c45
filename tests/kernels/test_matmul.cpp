// matmul against matmul_reference on random inputs of awkward sizes, for every weight dtype and
// every instruction-set path this CPU supports; plus weight_at, dequantize and embedding_lookup.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/matmul.h"

using namespace latentserve;
using namespace latentserve::kernels::cpu;

namespace {

std::mt19937& rng() {
  static std::mt19937 gen(std::random_device{}());
  return gen;
}

float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng()); }

// A weight matrix with its own storage, filled with random values in about [-1, 1].
struct OwnedWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightMatrix w;

  OwnedWeights(DType dtype, int64_t rows, int64_t cols, int64_t block_rows = 128, int64_t block_cols = 128) {
    bytes.resize(size_t(rows * cols) * dtype_size(dtype));
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = uniform(-1.0f, 1.0f);
      switch (dtype) {
        case DType::F32: reinterpret_cast<float*>(bytes.data())[i] = v; break;
        case DType::BF16: reinterpret_cast<uint16_t*>(bytes.data())[i] = float_to_bf16(v); break;
        case DType::F16: reinterpret_cast<uint16_t*>(bytes.data())[i] = float_to_f16(v); break;
        case DType::F8_E4M3: {
          uint8_t code = uint8_t(rng()() & 0xff);  // every code but the two NaNs, subnormals included
          if ((code & 0x7f) == 0x7f) code ^= 0x01;
          bytes[size_t(i)] = code;
          break;
        }
        default: FAIL("unsupported dtype");
      }
    }
    w.dtype = dtype;
    w.data = bytes.data();
    w.rows = rows;
    w.cols = cols;
    if (dtype == DType::F8_E4M3) {
      w.block_rows = block_rows;
      w.block_cols = block_cols;
      scales.resize(size_t(((rows + block_rows - 1) / block_rows) * ((cols + block_cols - 1) / block_cols)));
      for (float& s : scales) s = std::ldexp(uniform(0.5f, 1.0f), int(rng()() % 9) - 12);
      w.scale_inv = scales.data();
    }
  }
};

struct IsaOverride {
  explicit IsaOverride(CpuIsa isa) { setenv("LATENTSERVE_CPU_ISA", std::string(isa_name(isa)).c_str(), 1); }
  ~IsaOverride() { unsetenv("LATENTSERVE_CPU_ISA"); }
};

std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

// Runs matmul with padded strides on every supported path and compares with the reference within
// an FP32-accumulation bound; also checks the padding of y is left alone.
void check_matmul(const WeightMatrix& w, int64_t m) {
  const int64_t ldx = w.cols + int64_t(rng()() % 4);
  const int64_t ldy = w.rows + int64_t(rng()() % 4);
  std::vector<float> x(size_t(m * ldx));
  for (float& v : x) v = uniform(-2.0f, 2.0f);
  std::vector<float> ref(size_t(m * ldy));
  matmul_reference(x.data(), ldx, m, w, ref.data(), ldy);
  std::vector<double> bound(size_t(m * w.rows));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t n = 0; n < w.rows; ++n) {
      double s = 0.0;
      for (int64_t k = 0; k < w.cols; ++k) s += std::fabs(double(x[size_t(i * ldx + k)]) * weight_at(w, n, k));
      bound[size_t(i * w.rows + n)] = 1e-4 * s + 1e-6;
    }
  for (CpuIsa isa : supported_isas()) {
    IsaOverride force(isa);
    INFO("isa " << isa_name(isa) << " dtype " << dtype_name(w.dtype) << " m " << m << " rows " << w.rows
                << " cols " << w.cols << " blocks " << w.block_rows << "x" << w.block_cols);
    REQUIRE(selected_isa() == isa);
    const float sentinel = 12345.0f;
    std::vector<float> y(size_t(m * ldy), sentinel);
    matmul(x.data(), ldx, m, w, y.data(), ldy);
    int bad = 0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t n = 0; n < ldy; ++n) {
        const float got = y[size_t(i * ldy + n)];
        if (n >= w.rows) {
          bad += got != sentinel;
          continue;
        }
        const float want = ref[size_t(i * ldy + n)];
        if (!(std::fabs(double(got) - want) <= bound[size_t(i * w.rows + n)])) {
          if (bad++ < 3) UNSCOPED_INFO("y[" << i << "," << n << "] = " << got << ", reference " << want);
        }
      }
    }
    CHECK(bad == 0);
  }
}

// How many of the m rows of x (row stride ldx) get other bits from a one-row matmul than from the
// m-row one (batch invariance, matmul_internal.h).
int rows_differing_alone(const WeightMatrix& w, const float* x, int64_t ldx, int64_t m) {
  std::vector<float> batched(size_t(m * w.rows)), alone(size_t(w.rows));
  matmul(x, ldx, m, w, batched.data(), w.rows);
  int differing = 0;
  for (int64_t i = 0; i < m; ++i) {
    matmul(x + i * ldx, ldx, 1, w, alone.data(), w.rows);
    differing += std::memcmp(alone.data(), batched.data() + i * w.rows, sizeof(float) * size_t(w.rows)) != 0;
  }
  return differing;
}

}  // namespace

TEST_CASE("matmul matches the reference for every dtype, size and instruction set", "[matmul]") {
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16);
  for (int64_t rows : {1, 7, 130, 257})
    for (int64_t cols : {1, 15, 129, 300}) {
      OwnedWeights weights(dtype, rows, cols);
      for (int64_t m : {1, 2, 3, 7, 8, 17, 64}) check_matmul(weights.w, m);
    }
}

TEST_CASE("FP8 matmul applies block scales, partial edge blocks included", "[matmul]") {
  // Square, non-square, tiny and larger-than-the-matrix blocks; most sizes leave partial blocks.
  const auto block = GENERATE(std::pair<int64_t, int64_t>{128, 128}, std::pair<int64_t, int64_t>{3, 5},
                              std::pair<int64_t, int64_t>{16, 48}, std::pair<int64_t, int64_t>{130, 17},
                              std::pair<int64_t, int64_t>{1, 1});
  for (int64_t rows : {1, 7, 130, 257})
    for (int64_t cols : {1, 15, 129, 300}) {
      OwnedWeights weights(DType::F8_E4M3, rows, cols, block.first, block.second);
      for (int64_t m : {1, 3, 8, 17, 64}) check_matmul(weights.w, m);
    }
}

TEST_CASE("matmul handles decode-sized rows against a wide weight", "[matmul]") {
  // Long rows exercise the vector loop far more than the ragged end does.
  for (DType dtype : {DType::BF16, DType::F8_E4M3}) {
    OwnedWeights weights(dtype, 67, 2048 + 37);
    for (int64_t m : {1, 4, 9}) check_matmul(weights.w, m);
  }
}

TEST_CASE("FP8 NaN codes reach the output on every path", "[matmul]") {
  OwnedWeights weights(DType::F8_E4M3, 5, 40, 2, 16);
  weights.bytes[size_t(3 * 40 + 33)] = 0xff;  // row 3 holds a NaN
  std::vector<float> x(40);
  for (float& v : x) v = uniform(-1.0f, 1.0f);
  for (CpuIsa isa : supported_isas()) {
    IsaOverride force(isa);
    std::vector<float> y(5);
    matmul(x.data(), 1, weights.w, y.data());
    INFO("isa " << isa_name(isa));
    for (int n = 0; n < 5; ++n) CHECK(std::isnan(y[size_t(n)]) == (n == 3));
  }
}

TEST_CASE("LATENTSERVE_CPU_ISA never selects a path the CPU lacks", "[matmul]") {
  {
    IsaOverride force(CpuIsa::Scalar);
    CHECK(selected_isa() == CpuIsa::Scalar);
  }
  setenv("LATENTSERVE_CPU_ISA", "no-such-isa", 1);
  CHECK(selected_isa() == detected_isa());
  unsetenv("LATENTSERVE_CPU_ISA");
  CHECK(selected_isa() == detected_isa());
}

TEST_CASE("weight_at reads FP8 with the scale of its block", "[matmul]") {
  OwnedWeights weights(DType::F8_E4M3, 5, 7, 2, 3);  // scale grid 3 × 3, last row/column partial
  const WeightMatrix& w = weights.w;
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 7; ++c) {
      const float want = fp8_e4m3_to_float(weights.bytes[size_t(r * 7 + c)]) * weights.scales[size_t((r / 2) * 3 + c / 3)];
      CHECK(weight_at(w, r, c) == want);
    }
}

TEST_CASE("dequantize and embedding_lookup agree with weight_at", "[matmul]") {
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16, DType::F8_E4M3);
  const int64_t rows = 37, cols = 131;
  OwnedWeights weights(dtype, rows, cols, 16, 48);
  const WeightMatrix& w = weights.w;
  INFO("dtype " << dtype_name(dtype));

  std::vector<float> dense(size_t(rows * cols));
  dequantize(w, dense.data());
  int mismatches = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) mismatches += dense[size_t(r * cols + c)] != weight_at(w, r, c);
  CHECK(mismatches == 0);

  std::vector<int32_t> ids(9);
  for (int32_t& id : ids) id = int32_t(rng()() % rows);
  ids[0] = 0;
  ids[1] = int32_t(rows - 1);
  std::vector<float> out(ids.size() * size_t(cols));
  embedding_lookup(w, ids.data(), int64_t(ids.size()), out.data());
  mismatches = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t c = 0; c < cols; ++c) mismatches += out[i * size_t(cols) + size_t(c)] != weight_at(w, ids[i], c);
  CHECK(mismatches == 0);
}

TEST_CASE("matmul tiles: every decode row count, prefill edges, ragged k and FP8 block edges", "[matmul]") {
  // m = 1..9 covers every decode micro tile and the first prefill size; 15, 16, 17, 33 and 128 leave
  // every remainder of the 8-row prefill tiles; 101 weight rows leave partial 3-row groups and a
  // partial weight tile; k = 16·k ± small and 600 (> one 512-wide k-block) leave ragged chunks.
  const DType dtype = GENERATE(DType::BF16, DType::F16, DType::F8_E4M3);
  for (int64_t cols : {31, 257, 600}) {
    OwnedWeights weights(dtype, 101, cols, 128, 128);
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 33, 128}) check_matmul(weights.w, m);
  }
}

TEST_CASE("FP8 block edges inside a vector and across k-blocks", "[matmul]") {
  // Block widths that are not multiples of the vector width restart chunks mid-vector; 144 and
  // 528 put block edges beside the 512-wide k-blocks of the prefill tiles.
  for (auto [block_rows, block_cols] : {std::pair<int64_t, int64_t>{7, 24}, {64, 144}, {128, 528}, {5, 9}}) {
    OwnedWeights weights(DType::F8_E4M3, 97, 1100, block_rows, block_cols);
    for (int64_t m : {1, 8, 9, 40}) check_matmul(weights.w, m);
  }
}

TEST_CASE("matmul is batch invariant: a row's result is the same bits alone or batched", "[matmul]") {
  // The engine relies on this to give the same greedy tokens whether a request runs alone or with
  // others; it must hold for every dtype and path, across the decode/prefill switch-over.
  const DType dtype = GENERATE(DType::F32, DType::BF16, DType::F16, DType::F8_E4M3);
  const int64_t rows = 70, cols = 1031;
  OwnedWeights weights(dtype, rows, cols, 16, 48);
  const int64_t ldx = cols + 3;
  for (CpuIsa isa : supported_isas()) {
    IsaOverride force(isa);
    for (int64_t m : {2, 5, 8, 9, 16, 17, 40, 130}) {
      INFO("isa " << isa_name(isa) << " dtype " << dtype_name(dtype) << " m " << m);
      std::vector<float> x(size_t(m * ldx));
      for (float& v : x) v = uniform(-2.0f, 2.0f);
      int differing = rows_differing_alone(weights.w, x.data(), ldx, m);
      std::vector<float> batched(size_t(m * rows));
      matmul(x.data(), ldx, m, weights.w, batched.data(), rows);
      // A sub-batch taken from the middle must agree too (different tiles, same rows).
      const int64_t from = m / 3, count = m - m / 3;
      std::vector<float> part(size_t(count * rows));
      matmul(x.data() + from * ldx, ldx, count, weights.w, part.data(), rows);
      differing += std::memcmp(part.data(), batched.data() + from * rows, part.size() * sizeof(float)) != 0;
      CHECK(differing == 0);
    }
  }
}

TEST_CASE("decode walks k-blocks across groups of weight rows, ragged ends included", "[matmul]") {
  // Decode advances groups of 12 weight rows one k-block (512 columns; 432 for FP8 blocks of 144)
  // at a time; 9 to 16 rows of x run as two halves with k-blocks of 256 (144 for FP8). 5000
  // columns end in a partial k-block; 29 and 13 rows end in a partial group whose last rows are
  // single-row tiles; 33007 columns run 65 k-blocks.
  for (DType dtype : {DType::F32, DType::BF16, DType::F8_E4M3}) {
    OwnedWeights medium(dtype, 29, 5000, 16, 144);
    for (int64_t m : {1, 6, 7, 8, 9, 16}) check_matmul(medium.w, m);
    OwnedWeights wide(dtype, 13, 33000 + 7, 16, 144);
    for (int64_t m : {1, 2, 5, 8, 12}) check_matmul(wide.w, m);
  }
}

TEST_CASE("batch invariance holds between decode row counts and prefill across k-blocks", "[matmul]") {
  const DType dtype = GENERATE(DType::BF16, DType::F16, DType::F8_E4M3);
  const int64_t rows = 31, cols = 5000 + 3;  // m ≤ 8: decode; 13: decode in two halves; 17: prefill
  OwnedWeights weights(dtype, rows, cols);
  for (CpuIsa isa : supported_isas()) {
    IsaOverride force(isa);
    for (int64_t m : {3, 7, 8, 9, 13, 16, 17}) {
      INFO("isa " << isa_name(isa) << " dtype " << dtype_name(dtype) << " m " << m);
      std::vector<float> x(size_t(m * cols));
      for (float& v : x) v = uniform(-2.0f, 2.0f);
      CHECK(rows_differing_alone(weights.w, x.data(), cols, m) == 0);
    }
  }
}

TEST_CASE("FP8 NaN codes inside whole cache lines and in ragged ends reach the output", "[matmul]") {
  // The AVX-512 decode widens 64 codes at a time and finds NaNs once per line; a NaN in the last,
  // partial vector of a block takes the per-vector path instead. Both must poison their row only.
  const int64_t rows = 11, cols = 300;  // blocks of 128: lines at 0, 64, 128, 192; tails 256..299
  OwnedWeights weights(DType::F8_E4M3, rows, cols);
  weights.bytes[size_t(2 * cols + 70)] = 0x7f;   // positive NaN code inside a full line
  weights.bytes[size_t(5 * cols + 200)] = 0xff;  // negative NaN code inside a full line
  weights.bytes[size_t(9 * cols + 290)] = 0x7f;  // in the ragged end of the row
  for (CpuIsa isa : supported_isas()) {
    IsaOverride force(isa);
    for (int64_t m : {1, 2, 5, 8, 9, 17}) {
      INFO("isa " << isa_name(isa) << " m " << m);
      std::vector<float> x(size_t(m * cols)), y(size_t(m * rows));
      for (float& v : x) v = uniform(-1.0f, 1.0f);
      matmul(x.data(), m, weights.w, y.data());
      int wrong = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t n = 0; n < rows; ++n) wrong += std::isnan(y[size_t(i * rows + n)]) != (n == 2 || n == 5 || n == 9);
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("BF16 rows of every length modulo a 32-element line, decode and prefill alike", "[matmul]") {
  // The AVX-512 BF16 path reads weights a 64-byte line at a time (even and odd elements) and pads
  // x to whole lines: every ragged end from 1 to 31 elements, against the reference and between the
  // decode (m ≤ 16) and prefill (m = 17) loops.
  for (int64_t tail = 0; tail < 32; ++tail) {
    const int64_t rows = 13, cols = 3 * 32 + tail;
    OwnedWeights weights(DType::BF16, rows, cols);
    for (int64_t m : {1, 5, 8}) check_matmul(weights.w, m);
    const int64_t m = 17;
    std::vector<float> x(size_t(m * cols));
    for (float& v : x) v = uniform(-2.0f, 2.0f);
    for (CpuIsa isa : supported_isas()) {
      IsaOverride force(isa);
      INFO("isa " << isa_name(isa) << " cols " << cols);
      CHECK(rows_differing_alone(weights.w, x.data(), cols, m) == 0);
    }
  }
}

TEST_CASE("matmul_each gives every task matmul's bits, whatever the task count", "[matmul]") {
  // Task lists shorter than, equal to and longer than the thread count (whole tasks per thread,
  // then the remainder split across threads), mixed dtypes and shapes, decode and prefill sizes,
  // padded strides.
  const DType dtypes[] = {DType::F32, DType::BF16, DType::F8_E4M3, DType::F16};
  for (int64_t count : {1, 2, 3, 5, 8, 13}) {
    std::vector<std::unique_ptr<OwnedWeights>> weights;
    std::vector<std::vector<float>> xs, ys;
    std::vector<MatmulTask> tasks;
    for (int64_t i = 0; i < count; ++i) {
      // Large enough that the list is worth sharing out (see kMinParallelWork in matmul.cpp).
      const int64_t rows = 100 + int64_t(rng()() % 150), cols = 300 + int64_t(rng()() % 300);
      const int64_t m = std::array<int64_t, 5>{1, 2, 7, 16, 21}[rng()() % 5];
      weights.push_back(std::make_unique<OwnedWeights>(dtypes[rng()() % 4], rows, cols));
      const int64_t ldx = cols + int64_t(rng()() % 3), ldy = rows + int64_t(rng()() % 3);
      xs.emplace_back(size_t(m * ldx));
      for (float& v : xs.back()) v = uniform(-2.0f, 2.0f);
      ys.emplace_back(size_t(m * ldy), 12345.0f);
      tasks.push_back({xs.back().data(), ldx, m, weights.back()->w, ys.back().data(), ldy});
    }
    matmul_each(tasks.data(), count);
    for (int64_t i = 0; i < count; ++i) {
      const MatmulTask& t = tasks[size_t(i)];
      std::vector<float> alone(ys[size_t(i)].size(), 12345.0f);
      matmul(t.x, t.ldx, t.m, t.w, alone.data(), t.ldy);
      INFO("count " << count << " task " << i << " dtype " << dtype_name(t.w.dtype) << " m " << t.m << " "
                    << t.w.rows << "x" << t.w.cols);
      CHECK(std::memcmp(alone.data(), ys[size_t(i)].data(), alone.size() * sizeof(float)) == 0);
    }
  }
}
