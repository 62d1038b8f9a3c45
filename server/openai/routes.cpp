#include "server/openai/handlers.h"

namespace latentserve::server::openai {

void register_openai_routes(http::HttpServer& server, ServingContext& ctx) {
  ServingContext* c = &ctx;
  server.route("POST", "/v1/chat/completions", [c](const http::HttpRequest& r, std::shared_ptr<http::ResponseWriter> w) {
    handle_generate(Endpoint::kChat, *c, r, std::move(w));
  });
  server.route("POST", "/v1/completions", [c](const http::HttpRequest& r, std::shared_ptr<http::ResponseWriter> w) {
    handle_generate(Endpoint::kCompletion, *c, r, std::move(w));
  });
  server.route("GET", "/v1/models", [c](const http::HttpRequest& r, std::shared_ptr<http::ResponseWriter> w) {
    handle_models(*c, r, std::move(w));
  });
  server.route("POST", "/tokenize", [c](const http::HttpRequest& r, std::shared_ptr<http::ResponseWriter> w) {
    handle_tokenize(*c, r, std::move(w));
  });
  server.route("POST", "/detokenize", [c](const http::HttpRequest& r, std::shared_ptr<http::ResponseWriter> w) {
    handle_detokenize(*c, r, std::move(w));
  });
}

}  // namespace latentserve::server::openai
