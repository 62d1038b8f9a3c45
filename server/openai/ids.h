// Random identifiers for responses and tool calls ("chatcmpl-…", "cmpl-…", "call_…").
#pragma once

#include <cstdint>
#include <string>

namespace latentserve::server::openai {

// `length` random characters from [0-9a-zA-Z], from a per-thread generator seeded once.
std::string random_id(size_t length);
// Seconds since the Unix epoch, for "created".
int64_t unix_seconds();

}  // namespace latentserve::server::openai
