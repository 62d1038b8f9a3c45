// Content hashes for prefix caching: XXH64 over raw bytes, and the chained hash that names a
// full cache block by its parent block's hash and its own token ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace latentserve::engine {

using BlockHash = uint64_t;

// XXH64 (the xxHash 64-bit specification), so cache keys are stable across builds and machines.
uint64_t xxh64(const void* data, size_t size, uint64_t seed);

// The hash of one full block: XXH64 of its token ids as little-endian int32, seeded with the
// parent block's hash. The first block of a sequence uses the sequence's salt as its parent, so
// a salt (adapter, image set, tenant) separates prefix-cache namespaces.
BlockHash hash_block_tokens(BlockHash parent, std::span<const int32_t> tokens);

// Replaceable so tests can force collisions; the BlockManager never trusts a hash alone.
using BlockHashFn = BlockHash (*)(BlockHash parent, std::span<const int32_t> tokens);

}  // namespace latentserve::engine
