// Counter-based random numbers for sampling: Philox4x32-10 keyed by a sequence's seed, so a draw
// depends only on (seed, sample index, output position, purpose) and never on batch order,
// thread count or how many draws other sequences made.
#pragma once

#include <array>
#include <cstdint>

namespace latentserve::engine {

// What a draw is for; separate purposes give independent streams at the same position.
enum class RandomPurpose : uint32_t {
  kSample = 0,          // choosing the next token
  kSpecAccept = 1,      // speculative decoding: accept a draft with probability min(1, p/q)
  kSpecResample = 2,    // speculative decoding: resample after a rejection
  kSpecDraft = 3,       // speculative decoding: drawing a draft token from the draft distribution
  kSpecForce = 4,       // speculative decoding test hook: whether a draft is forced to agree
};

// Philox4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// The counter layout every caller shares: {position lo, position hi, sample index, purpose}.
std::array<uint32_t, 4> random_bits(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose);

// Uniform in [0, 1): 53 random bits as a double, 24 as a float.
double random_uniform_double(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose);
float random_uniform_float(uint64_t seed, uint32_t sample_index, uint64_t position, RandomPurpose purpose);

// A fresh seed for requests without one; thread-safe, from std::random_device.
uint64_t process_random_seed();

}  // namespace latentserve::engine
