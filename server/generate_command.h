// `latentserve generate`: offline batch generation through the engine, from a JSONL file of
// requests to a JSONL file of results, one line each, in input order.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/collected.h"
#include "engine/request.h"
#include "engine/text/text_processor.h"

namespace latentserve::server {

// One input line: a prompt ("prompt_token_ids", "prompt" or "messages") and sampling
// parameters. Greedy unless "temperature" says otherwise. Errors name the field.
Result<engine::Request> parse_generate_line(const std::string& line,
                                            const engine::text::TextProcessor* text);

// One output line: {"token_ids", "text", "logprobs", "finish_reason", "usage"} for the first
// completion, plus "choices" with every completion when n > 1.
nlohmann::ordered_json format_generate_result(const engine::CollectedRequest& result,
                                              const engine::SamplingParams& params, bool with_text);

int generate_command(const std::vector<std::string>& args);

}  // namespace latentserve::server
