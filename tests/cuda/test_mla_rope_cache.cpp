// The CUDA RoPE (queries' rope part) and latent-cache write against kernels/cpu/rope.h and
// write_latent_cache: YaRN frequencies, positions up to 160k, F32 and BF16 inputs, strided heads,
// shuffled slots with a padding token, and bytes outside the written ranges left untouched.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/attention.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/rope_cache.h"
#include "cuda_test_util.h"

namespace {

using latentserve::DType;
using latentserve::bf16_to_float;
using latentserve::float_to_bf16;
using namespace latentserve::test_cuda;
namespace cuda = latentserve::kernels::cuda;
namespace cpu = latentserve::kernels::cpu;

cpu::RopeParams deepseek_rope(int64_t rotary_dim) {
  cpu::RopeParams r;
  r.rotary_dim = rotary_dim;
  r.yarn = true;
  r.scaling.factor = 40.0;
  r.scaling.mscale = 1.0;
  r.scaling.mscale_all_dim = 0.7;  // cos/sin factor ≠ 1, so a dropped factor fails
  return r;
}

std::vector<int32_t> random_positions(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> pos(0, 160000);
  std::vector<int32_t> p(n);
  for (auto& v : p) v = pos(rng);
  p[0] = 0;
  return p;
}

// |angle| reaches ~1.6e5 rad: FP32 sincos of the same FP32 angle is within a few ulp of the
// double reference, so the rotated values agree to ~1e-6 relative to the pair's magnitude.
void check_rope(int64_t rows, int64_t heads, int64_t rotary, DType dt, std::mt19937& rng) {
  CAPTURE(rows, heads, rotary, latentserve::dtype_name(dt));
  const int64_t head_stride = 128 + rotary, offset = 128, ld = heads * head_stride + 3;
  const auto rp = deepseek_rope(rotary);
  const std::vector<float> inv = cpu::rope_inv_freq(rp);
  const float factor = float(cpu::rope_cos_sin_factor(rp));
  const std::vector<int32_t> pos = random_positions(size_t(rows), rng);
  const Bf16Data x = random_bf16(size_t(rows * ld), 1.5f, rng);
  std::vector<float> expected = x.exact;
  cpu::rope_interleaved_reference(expected.data() + offset, rows, ld, heads, head_stride, rotary,
                                  pos.data(), inv.data(), factor);

  const size_t n = x.exact.size(), elem = latentserve::dtype_size(dt);
  DeviceMemory d_x(n * elem), d_pos(pos.size() * 4), d_inv(inv.size() * 4);
  if (dt == DType::BF16) {
    to_device(d_x, x.bits);
  } else {
    to_device(d_x, x.exact);
  }
  to_device(d_pos, pos);
  to_device(d_inv, inv);
  cuda::RopeInterleavedParams p;
  p.x = static_cast<char*>(d_x.ptr) + offset * int64_t(elem);
  p.dtype = dt;
  p.positions = d_pos.as<int32_t>();
  p.inv_freq = d_inv.as<float>();
  p.rows = rows;
  p.ld = ld;
  p.heads = heads;
  p.head_stride = head_stride;
  p.rotary_dim = rotary;
  p.cos_sin_factor = factor;
  require_ok(cuda::rope_interleaved(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  std::vector<float> got(n);
  if (dt == DType::BF16) {
    const auto bits = from_device<uint16_t>(d_x, n);
    for (size_t i = 0; i < n; ++i) got[i] = bf16_to_float(bits[i]);
  } else {
    got = from_device<float>(d_x, n);
  }
  const float rtol = dt == DType::BF16 ? 8.0e-3f : 2.0e-6f;
  int64_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    // Tolerance against the pair's magnitude: a rotation moves error between the two values.
    const size_t j = i % size_t(ld);
    const size_t pair = j >= size_t(offset) ? i - (j - size_t(offset)) % 2 : i;
    const float mag = std::hypot(expected[pair], expected[std::min(pair + 1, n - 1)]) + 1e-30f;
    if (!(std::fabs(got[i] - expected[i]) <= rtol * mag)) ++bad;
  }
  CHECK(bad == 0);
}

void check_cache_write(int64_t tokens, DType dt, std::mt19937& rng) {
  CAPTURE(tokens, latentserve::dtype_name(dt));
  constexpr int64_t rank = 512, rope = 64, td = rank + rope, block_size = 16, num_blocks = 5;
  const int64_t ld_kv = td + 8;
  const auto rp = deepseek_rope(rope);
  const std::vector<float> inv = cpu::rope_inv_freq(rp);
  const float factor = float(cpu::rope_cos_sin_factor(rp));
  const std::vector<int32_t> pos = random_positions(size_t(tokens), rng);
  std::vector<int64_t> slots(size_t(num_blocks * block_size));
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  slots.resize(size_t(tokens));
  slots[size_t(tokens / 2)] = -1;  // a padding token writes nothing
  const Bf16Data kv = random_bf16(size_t(tokens * ld_kv), 1.0f, rng);

  // The reference: k_pe rotated in place, then [latent | k_pe] copied slot by slot, in float.
  std::vector<float> rows(size_t(tokens * td));
  for (int64_t i = 0; i < tokens; ++i) {
    std::copy_n(kv.exact.begin() + i * ld_kv, td, rows.begin() + i * td);
  }
  cpu::rope_interleaved_reference(rows.data() + rank, tokens, td, 1, rope, rope, pos.data(),
                                  inv.data(), factor);
  const float sentinel = 1234.5f;
  std::vector<float> expected(size_t(num_blocks * block_size * td), sentinel);
  cpu::write_latent_cache(rows.data(), slots.data(), tokens,
                          {expected.data(), num_blocks, block_size, rank, rope});

  const size_t elem = latentserve::dtype_size(dt), cache_n = expected.size();
  DeviceMemory d_kv(kv.exact.size() * elem), d_pos(pos.size() * 4), d_slots(slots.size() * 8);
  DeviceMemory d_inv(inv.size() * 4), d_cache(cache_n * 2);
  if (dt == DType::BF16) {
    to_device(d_kv, kv.bits);
  } else {
    to_device(d_kv, kv.exact);
  }
  to_device(d_pos, pos);
  to_device(d_slots, slots);
  to_device(d_inv, inv);
  to_device(d_cache, std::vector<uint16_t>(cache_n, float_to_bf16(sentinel)));
  cuda::MlaCacheWriteParams p;
  p.kv = d_kv.ptr;
  p.kv_dtype = dt;
  p.positions = d_pos.as<int32_t>();
  p.slot_mapping = d_slots.as<int64_t>();
  p.inv_freq = d_inv.as<float>();
  p.cache = d_cache.ptr;
  p.num_tokens = tokens;
  p.ld_kv = ld_kv;
  p.kv_lora_rank = rank;
  p.rope_dim = rope;
  p.cos_sin_factor = factor;
  require_ok(cuda::mla_write_latent_cache(p, nullptr));
  require_ok(LS_CUDA_CHECK(cudaDeviceSynchronize()));
  const auto got = from_device<uint16_t>(d_cache, cache_n);
  int64_t bad = 0;
  for (size_t i = 0; i < cache_n; ++i) {
    const bool rope_part = int64_t(i % td) >= rank && expected[i] != sentinel;
    const float g = bf16_to_float(got[i]);
    if (rope_part) {
      if (!(std::fabs(g - expected[i]) <= 8.0e-3f * std::fabs(expected[i]) + 1e-6f)) ++bad;
    } else if (got[i] != float_to_bf16(expected[i])) {
      ++bad;  // the latent (and untouched slots) are copied exactly
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("cuda rope_interleaved matches the CPU reference", "[cuda][rope]") {
  std::mt19937 rng(Catch::rngSeed() + 201);
  for (DType dt : {DType::F32, DType::BF16}) {
    check_rope(1, 1, 64, dt, rng);
    check_rope(7, 3, 64, dt, rng);
    check_rope(33, 128, 64, dt, rng);
    check_rope(5, 2, 6, dt, rng);
  }
}

TEST_CASE("cuda mla_write_latent_cache rotates k_pe and fills the slots", "[cuda][mla][rope]") {
  std::mt19937 rng(Catch::rngSeed() + 202);
  for (DType dt : {DType::F32, DType::BF16}) {
    check_cache_write(1 + 2, dt, rng);
    check_cache_write(37, dt, rng);
  }
}

TEST_CASE("cuda rope and cache write reject bad parameters", "[cuda][rope]") {
  cuda::RopeInterleavedParams r;
  r.rows = 2;
  r.heads = 1;
  r.rotary_dim = 7;
  r.head_stride = r.ld = 8;
  auto st = cuda::rope_interleaved(r, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("rotary_dim=7") != std::string::npos);
  cuda::MlaCacheWriteParams w;
  w.num_tokens = 1;
  w.kv_lora_rank = 512;
  w.rope_dim = 64;
  w.ld_kv = 500;
  st = cuda::mla_write_latent_cache(w, nullptr);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message.find("ld_kv=500") != std::string::npos);
}
