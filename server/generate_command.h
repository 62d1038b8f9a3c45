// `latentserve generate`: offline generation from a JSONL file of requests to a JSONL file of
// results, one line each, in input order.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "engine/greedy_generator.h"

namespace latentserve::server {

// Parses one input line ({"prompt_token_ids": [...], "max_tokens": N, "logprobs": K,
// "ignore_eos": bool}); errors name the field.
Result<engine::GreedyRequest> parse_generate_request(const std::string& line);

// The output line for one result.
std::string format_generate_result(const engine::GreedyResult& result, int32_t logprobs);

int generate_command(const std::vector<std::string>& args);

}  // namespace latentserve::server
