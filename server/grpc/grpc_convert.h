// Between the gRPC messages (proto/latentserve.proto) and the engine's types: the prompt and
// sampling parameters of a GenerateRequest, and a GenerateResponse for each engine Output.
// Range checks are the HTTP API's: SamplingParams::validate and Engine::validate.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/output.h"
#include "engine/request.h"
#include "engine/text/text_processor.h"
#include "proto/latentserve.pb.h"

namespace latentserve::server::grpc_api {

// Unset fields take the defaults documented in the .proto (vLLM's SamplingParams defaults).
engine::SamplingParams sampling_params_from_proto(const latentserve::v1::SamplingParameters& p);

// The OpenAI-style request JSON ({"messages", "tools", "add_generation_prompt"}) of a chat
// prompt, for the shared prompt parser. Fails on tools_json that is not a JSON array.
Result<nlohmann::ordered_json> chat_request_json(const latentserve::v1::ChatPrompt& chat);

// The prompt's token ids: ids as given, text tokenized, chat rendered and tokenized. Text and chat
// need `text`.
Result<std::vector<int32_t>> prompt_from_proto(const latentserve::v1::GenerateRequest& request,
                                               const engine::text::TextProcessor* text);

Result<engine::Request> request_from_proto(const latentserve::v1::GenerateRequest& request,
                                           const engine::text::TextProcessor* text);

// Fills `into` (cleared first) from one engine Output. Usage is set only on the request's last.
void response_from_output(const engine::Output& output, const std::string& request_id,
                          latentserve::v1::GenerateResponse& into);

}  // namespace latentserve::server::grpc_api
