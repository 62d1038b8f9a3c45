// XXH64 against the specification's published vectors, and the block hash built on it.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/block_hash.h"

namespace le = latentserve::engine;

TEST_CASE("xxh64 matches the reference vectors", "[block_hash]") {
  CHECK(le::xxh64(nullptr, 0, 0) == 0xEF46DB3751D8E999ULL);
  CHECK(le::xxh64("a", 1, 0) == 0xD24EC4F1A98C6E5BULL);
  CHECK(le::xxh64("abc", 3, 0) == 0x44BC2CF5AD770999ULL);
  const char* text = "Nobody inspects the spammish repetition";  // 39 bytes: stripes and tail
  CHECK(le::xxh64(text, std::strlen(text), 0) == 0xFBCEA83C8A378BF1ULL);

  // The sanity buffer of the reference implementation's self-test.
  constexpr uint32_t kPrime = 2654435761U;
  std::vector<unsigned char> buffer(101);
  uint32_t byte_gen = kPrime;
  for (auto& byte : buffer) {
    byte = static_cast<unsigned char>(byte_gen >> 24);
    byte_gen *= byte_gen;
  }
  CHECK(le::xxh64(nullptr, 0, kPrime) == 0xAC75FDA2929B17EFULL);
  CHECK(le::xxh64(buffer.data(), 1, 0) == 0x4FCE394CC88952D8ULL);
  CHECK(le::xxh64(buffer.data(), 1, kPrime) == 0x739840CB819FA723ULL);
  CHECK(le::xxh64(buffer.data(), 14, 0) == 0xCFFA8DB881BC3A3DULL);
  CHECK(le::xxh64(buffer.data(), 14, kPrime) == 0x5B9611585EFCC9CBULL);
  CHECK(le::xxh64(buffer.data(), 101, 0) == 0x0EAB543384F878ADULL);
  CHECK(le::xxh64(buffer.data(), 101, kPrime) == 0xCAA65939306F1E21ULL);
}

TEST_CASE("block hash is XXH64 of little-endian token ids seeded by the parent", "[block_hash]") {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    const size_t n = 1 + rng() % 37;
    std::vector<int32_t> tokens(n);
    std::vector<unsigned char> bytes(4 * n);
    for (size_t i = 0; i < n; ++i) {
      tokens[i] = static_cast<int32_t>(rng());
      const auto v = static_cast<uint32_t>(tokens[i]);
      for (size_t b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<unsigned char>(v >> (8 * b));
    }
    const uint64_t parent = rng();
    const le::BlockHash h = le::hash_block_tokens(parent, tokens);
    CHECK(h == le::xxh64(bytes.data(), bytes.size(), parent));
    CHECK(h != le::hash_block_tokens(parent ^ 1, tokens));  // the parent (or salt) matters
    tokens[rng() % n] ^= 1;
    CHECK(h != le::hash_block_tokens(parent, tokens));  // every token matters
  }
}
