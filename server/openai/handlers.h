// The OpenAI-compatible routes' handlers: each takes the parsed HTTP request and a ResponseWriter
// and answers through it (at once, or later on a thread the writer's post() provides, woken by
// the engine's output notifier), so they can be driven without a network. register_openai_routes puts them on an HttpServer.
#pragma once

#include <memory>

#include "server/http/http_server.h"
#include "server/openai/request.h"
#include "server/serving_context.h"

namespace latentserve::server::openai {

// POST /v1/chat/completions and POST /v1/completions: validate, submit, then answer with one
// JSON body or a stream of events. A client that goes away has its request aborted.
void handle_generate(Endpoint endpoint, ServingContext& ctx, const http::HttpRequest& request,
                     std::shared_ptr<http::ResponseWriter> writer);
// GET /v1/models
void handle_models(ServingContext& ctx, const http::HttpRequest& request, std::shared_ptr<http::ResponseWriter> writer);
// POST /tokenize: {prompt | messages, add_special_tokens?, add_generation_prompt?, tools?}
//   -> {count, max_model_len, tokens}
void handle_tokenize(ServingContext& ctx, const http::HttpRequest& request, std::shared_ptr<http::ResponseWriter> writer);
// POST /detokenize: {tokens} -> {prompt}
void handle_detokenize(ServingContext& ctx, const http::HttpRequest& request,
                       std::shared_ptr<http::ResponseWriter> writer);

// Sends an error (OpenAI's JSON) and counts it.
void send_error(ServingContext& ctx, http::ResponseWriter& writer, const ApiError& error);

// `ctx` must outlive the server.
void register_openai_routes(http::HttpServer& server, ServingContext& ctx);

}  // namespace latentserve::server::openai
