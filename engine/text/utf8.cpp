#include "engine/text/utf8.h"

namespace latentserve::engine::text {
namespace {

// Length of the sequence a lead byte announces, 0 when it cannot start one.
inline size_t sequence_length(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `byte` may follow `prefix` (the lead byte and the continuation bytes seen so far).
// The second byte's range depends on the lead byte (no overlongs, no surrogates, <= U+10FFFF).
inline bool accepts(const uint8_t* prefix, size_t prefix_len, uint8_t byte) {
  if (prefix_len == 1) {
    switch (prefix[0]) {
      case 0xE0: return byte >= 0xA0 && byte <= 0xBF;
      case 0xED: return byte >= 0x80 && byte <= 0x9F;
      case 0xF0: return byte >= 0x90 && byte <= 0xBF;
      case 0xF4: return byte >= 0x80 && byte <= 0x8F;
      default: break;
    }
  }
  return byte >= 0x80 && byte <= 0xBF;
}

// Length of the valid character at text[i], or 0 when invalid or truncated; `valid_prefix`
// receives how many bytes formed a valid (maybe unfinished) prefix, which is the maximal
// subpart replaced by one U+FFFD.
inline size_t decode_at(const uint8_t* p, size_t n, size_t& valid_prefix) {
  const size_t len = sequence_length(p[0]);
  if (len == 0) {
    valid_prefix = 1;
    return 0;
  }
  size_t k = 1;
  while (k < len && k < n && accepts(p, k, p[k])) ++k;
  valid_prefix = k;
  return k == len ? len : 0;
}

}  // namespace

size_t first_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      __builtin_memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t prefix = 0;
    const size_t len = decode_at(p + i, n - i, prefix);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

void append_utf8_lossy(std::string_view bytes, std::string& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  size_t run_start = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t prefix = 0;
    const size_t len = decode_at(p + i, n - i, prefix);
    if (len != 0) {
      i += len;
      continue;
    }
    out.append(bytes.data() + run_start, i - run_start);
    out.append(kReplacementChar);
    i += prefix;
    run_start = i;
  }
  out.append(bytes.data() + run_start, n - run_start);
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_utf8_lossy(bytes, out);
  return out;
}

void Utf8StreamDecoder::feed_byte(uint8_t byte, std::string& out) {
  if (pending_len_ > 0) {
    if (accepts(pending_, pending_len_, byte)) {
      pending_[pending_len_++] = byte;
      if (pending_len_ == needed_) {
        out.append(reinterpret_cast<const char*>(pending_), pending_len_);
        pending_len_ = 0;
      }
      return;
    }
    // The unfinished character is a maximal invalid subpart; the byte starts afresh.
    out.append(kReplacementChar);
    pending_len_ = 0;
  }
  const size_t len = sequence_length(byte);
  if (len == 1) {
    out.push_back(static_cast<char>(byte));
  } else if (len == 0) {
    out.append(kReplacementChar);
  } else {
    pending_[0] = byte;
    pending_len_ = 1;
    needed_ = len;
  }
}

void Utf8StreamDecoder::feed(std::string_view bytes, std::string& out) {
  for (char c : bytes) feed_byte(static_cast<uint8_t>(c), out);
}

void Utf8StreamDecoder::finish(std::string& out) {
  if (pending_len_ > 0) out.append(kReplacementChar);
  pending_len_ = 0;
}

}  // namespace latentserve::engine::text
