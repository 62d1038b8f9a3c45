#include "engine/random.h"

#include <mutex>
#include <random>

namespace latentserve::engine {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * c[0];
    const uint64_t p1 = uint64_t(kMul1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1], uint32_t(p0)};
    k[0] += kWeyl0;
    k[1] += kWeyl1;
  }
  return c;
}

std::array<uint32_t, 4> random_bits(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose) {
  return philox4x32_10({uint32_t(position), uint32_t(position >> 32), sample_index, uint32_t(purpose)},
                       {uint32_t(seed), uint32_t(seed >> 32)});
}

double random_uniform_double(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose) {
  const auto r = random_bits(seed, sample_index, position, purpose);
  const uint64_t bits = (uint64_t(r[0]) << 32 | r[1]) >> 11;
  return double(bits) * 0x1.0p-53;
}

float random_uniform_float(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose) {
  const auto r = random_bits(seed, sample_index, position, purpose);
  return float(r[0] >> 8) * 0x1.0p-24f;
}

uint64_t process_random_seed() {
  static std::mutex mutex;
  static std::mt19937_64 generator = [] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }();
  std::lock_guard<std::mutex> lock(mutex);
  return generator();
}

}  // namespace latentserve::engine
