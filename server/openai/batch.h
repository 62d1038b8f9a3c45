// OpenAI's batch file format for `latentserve generate`: input lines {"custom_id", "method":
// "POST", "url": "/v1/chat/completions" | "/v1/completions", "body"} and output lines {"id",
// "custom_id", "response": {"status_code", "request_id", "body"}, "error"}, parsed and answered
// by the same functions as the HTTP API.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/collected.h"
#include "server/openai/request.h"

namespace latentserve::server::openai {

struct BatchItem {
  nlohmann::ordered_json custom_id;      // as given (null when missing)
  std::optional<ParsedRequest> parsed;   // set when the request is valid
  ApiError error;                        // why it is not
};

// A line in the batch format has "custom_id", "url" or "body" (generate's own lines have none).
bool is_batch_line(const nlohmann::ordered_json& line);

// Checks method, url and body, then the request exactly as the HTTP API does (without the
// waiting-queue bound: a batch queues everything).
BatchItem parse_batch_line(const nlohmann::ordered_json& line, const ServingContext& ctx);

// The output line: the response body the HTTP API would send, or the item's error.
nlohmann::ordered_json batch_output_line(const BatchItem& item, const engine::CollectedRequest* result,
                                         const ServingContext& ctx);

}  // namespace latentserve::server::openai
