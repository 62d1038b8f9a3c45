// The GPU sampler against its sort-based CPU reference: the same token for the same uniform, over
// every mix of temperature, top_k, top_p and min_p, at awkward vocabulary sizes, on peaked, flat
// (top_p needs most of the row: the whole-row search), tied (quantized) and partly banned (-inf)
// logits, with a row stride wider than the vocabulary.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/sampling.h"
#include "cuda_test_util.h"

namespace {

namespace cuda = latentserve::kernels::cuda;
using cuda::SamplingRowParams;
using latentserve::test_cuda::device_copy;

// Each row's parameters, cycled over the rows: every truncation alone and combined.
std::vector<SamplingRowParams> parameter_mix(int64_t vocab) {
  const int32_t big_k = int32_t(std::min<int64_t>(5000, vocab - 1));  // beyond the shared-memory set
  return {
      {0.0f, 0, 1.0f, 0.0f},     {1.0f, 0, 1.0f, 0.0f},       {0.7f, 0, 1.0f, 0.0f},
      {1.0f, 1, 1.0f, 0.0f},     {0.9f, 5, 1.0f, 0.0f},       {1.3f, 50, 1.0f, 0.0f},
      {1.0f, big_k, 1.0f, 0.0f}, {1.0f, int32_t(vocab), 1.0f, 0.0f}, {1.0f, 0, 0.9f, 0.0f},
      {0.6f, 0, 0.5f, 0.0f},     {1.0f, 0, 0.01f, 0.0f},      {1.0f, 0, 0.999f, 0.0f},
      {1.0f, 0, 1.0f, 0.05f},    {0.8f, 0, 1.0f, 0.5f},       {1.0f, 40, 0.9f, 0.0f},
      {0.7f, 20, 0.8f, 0.1f},    {1.0f, big_k, 0.95f, 0.02f}, {2.0f, 0, 0.7f, 0.01f},
      {1e-6f, 10, 0.5f, 0.1f},
  };
}

enum class Shape { kPeaked, kFlat, kTied, kBanned };

std::vector<float> make_row(int64_t vocab, Shape shape, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, shape == Shape::kFlat ? 0.02f : 3.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> row(static_cast<size_t>(vocab));
  for (float& v : row) {
    v = normal(rng);
    if (shape == Shape::kTied) v = std::round(v * 2.0f) / 2.0f;
    if (shape == Shape::kBanned && unit(rng) < 0.3f) v = -std::numeric_limits<float>::infinity();
  }
  return row;
}

void check_vocab(int64_t vocab, int64_t rows, std::mt19937& rng) {
  CAPTURE(vocab, rows);
  const int64_t ld = vocab + 3;
  const std::vector<SamplingRowParams> mix = parameter_mix(vocab);
  std::vector<float> logits(size_t(rows * ld), 1e30f);  // the padding must never be read
  std::vector<SamplingRowParams> params(static_cast<size_t>(rows));
  std::vector<double> uniforms(static_cast<size_t>(rows));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const Shape shapes[] = {Shape::kPeaked, Shape::kFlat, Shape::kTied, Shape::kBanned};
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> row = make_row(vocab, shapes[(r / int64_t(mix.size())) % 4], rng);
    std::copy(row.begin(), row.end(), logits.begin() + r * ld);
    params[size_t(r)] = mix[size_t(r) % mix.size()];
    uniforms[size_t(r)] = r % 7 == 3 ? 0.0 : unit(rng);
  }
  cuda::DeviceBuffer d_logits = device_copy(logits.data(), logits.size() * sizeof(float));
  cuda::DeviceBuffer d_params = device_copy(params.data(), params.size() * sizeof(SamplingRowParams));
  cuda::DeviceBuffer d_uniforms = device_copy(uniforms.data(), uniforms.size() * sizeof(double));
  auto d_tokens = cuda::DeviceBuffer::allocate(size_t(rows) * sizeof(int32_t), "tokens");
  REQUIRE(d_tokens.ok());
  cuda::SampleRowsParams p;
  p.logits = d_logits.as<float>();
  p.ld = ld;
  p.rows = rows;
  p.vocab = vocab;
  p.row_params = d_params.as<SamplingRowParams>();
  p.uniforms = d_uniforms.as<double>();
  p.tokens = d_tokens->as<int32_t>();
  REQUIRE(cuda::sample_rows(p, nullptr).ok());
  REQUIRE(LS_CUDA_CHECK(cudaDeviceSynchronize()).ok());
  std::vector<int32_t> tokens(static_cast<size_t>(rows));
  REQUIRE(cuda::copy_to_host(tokens.data(), d_tokens->data(), tokens.size() * sizeof(int32_t)).ok());

  int64_t near_boundary = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const SamplingRowParams& rp = params[size_t(r)];
    const auto want = cuda::sample_row_reference(logits.data() + r * ld, vocab, rp, uniforms[size_t(r)]);
    INFO("row " << r << " temperature " << rp.temperature << " top_k " << rp.top_k << " top_p " << rp.top_p
                << " min_p " << rp.min_p << " u " << uniforms[size_t(r)] << " boundary " << want.boundary);
    REQUIRE(tokens[size_t(r)] >= 0);
    REQUIRE(tokens[size_t(r)] < vocab);
    // A different summation order may pick a neighbour only when a running sum is within
    // rounding of its target.
    if (want.boundary < 3e-7) {
      ++near_boundary;
      continue;
    }
    CHECK(tokens[size_t(r)] == want.token);
  }
  CHECK(near_boundary * 20 <= rows);
}

}  // namespace

TEST_CASE("GPU sampling picks the reference's token for the same uniform", "[cuda][sampling]") {
  std::random_device seed_source;
  const unsigned seed = seed_source();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  check_vocab(1, 5, rng);
  check_vocab(7, 40, rng);
  check_vocab(1000, 152, rng);
  check_vocab(50257, 152, rng);
  check_vocab(129280, 76, rng);
}

TEST_CASE("GPU sampling: banned rows, bad sizes", "[cuda][sampling]") {
  const int64_t vocab = 300;
  std::mt19937 rng(std::random_device{}());
  std::vector<float> logits(2 * vocab, -std::numeric_limits<float>::infinity());
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t i = vocab; i < 2 * vocab; ++i) logits[size_t(i)] = normal(rng);
  const SamplingRowParams params[2] = {{1.0f, 10, 0.9f, 0.1f}, {0.5f, 3, 1.0f, 0.0f}};
  const double uniforms[2] = {0.5, 0.999};
  cuda::DeviceBuffer d_logits = device_copy(logits.data(), logits.size() * sizeof(float));
  cuda::DeviceBuffer d_params = device_copy(params, sizeof(params));
  cuda::DeviceBuffer d_uniforms = device_copy(uniforms, sizeof(uniforms));
  auto d_tokens = cuda::DeviceBuffer::allocate(2 * sizeof(int32_t), "tokens");
  REQUIRE(d_tokens.ok());
  cuda::SampleRowsParams p;
  p.logits = d_logits.as<float>();
  p.ld = vocab;
  p.rows = 2;
  p.vocab = vocab;
  p.row_params = d_params.as<SamplingRowParams>();
  p.uniforms = d_uniforms.as<double>();
  p.tokens = d_tokens->as<int32_t>();
  REQUIRE(cuda::sample_rows(p, nullptr).ok());
  int32_t tokens[2] = {-1, -1};
  REQUIRE(cuda::copy_to_host(tokens, d_tokens->data(), sizeof(tokens)).ok());
  CHECK(tokens[0] == 0);  // every logit -inf: the raw first maximum
  CHECK(tokens[1] == cuda::sample_row_reference(logits.data() + vocab, vocab, params[1], uniforms[1]).token);

  cuda::SampleRowsParams bad = p;
  bad.ld = vocab - 1;
  CHECK_FALSE(cuda::sample_rows(bad, nullptr).ok());
  bad = p;
  bad.vocab = 0;
  CHECK_FALSE(cuda::sample_rows(bad, nullptr).ok());
  bad = p;
  bad.uniforms = nullptr;
  CHECK_FALSE(cuda::sample_rows(bad, nullptr).ok());
}
