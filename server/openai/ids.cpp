#include "server/openai/ids.h"

#include <chrono>
#include <random>

namespace latentserve::server::openai {

std::string random_id(size_t length) {
  static constexpr char kChars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kChars) - 2);
  std::string out(length, '0');
  for (auto& c : out) c = kChars[pick(rng)];
  return out;
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace latentserve::server::openai
