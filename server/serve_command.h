// `latentserve serve`: loads a model, starts the engine and serves it over HTTP (the OpenAI API,
// /health, /metrics) and optionally gRPC, until SIGTERM or SIGINT ends it gracefully.
#pragma once

#include <string>
#include <vector>

namespace latentserve::server {

int serve_command(const std::vector<std::string>& args);

}  // namespace latentserve::server
