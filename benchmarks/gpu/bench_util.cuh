// Small helpers the GPU benchmarks share: stop at the first failed call saying what failed, and a
// counter-based hash for filling inputs with random, non-zero values on the device.
#pragma once

#include <cstdint>
#include <cstdio>

#include "common/result.h"

namespace latentserve::bench {

inline bool ok(const Status& st, const char* what) {
  if (!st.ok()) std::fprintf(stderr, "error: %s: %s\n", what, st.error().message.c_str());
  return st.ok();
}

// splitmix64-style mixing of (index, seed): good enough for benchmark inputs, cheap on the device.
__device__ inline uint32_t hash(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + seed;
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return uint32_t(x >> 16);
}

}  // namespace latentserve::bench
