#include "server/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <optional>
#include <thread>

#include "engine/engine.h"
#include "engine/text/text_processor.h"
#include "models/deepseek_v3/model.h"
#include "server/command_line.h"
#include "server/default_model.h"
#include "server/engine_options.h"
#include "server/grpc/grpc_server.h"
#include "server/http/http_server.h"
#include "server/metrics.h"
#include "server/openai/handlers.h"
#include "server/serving_context.h"

namespace latentserve::server {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<OptionSpec> option_specs() {
  std::vector<OptionSpec> specs = {
      {"model", true, "checkpoint folder (default: the built-in default model)"},
      {"host", true, "address to listen on (default 127.0.0.1)"},
      {"port", true, "HTTP port (default 8000; 0: any free port)"},
      {"grpc-port", true, "also serve gRPC on this port"},
      {"api-key", true, "require \"Authorization: Bearer KEY\" (all routes but /health and /metrics)"},
      {"served-model-name", true, "the model name clients send (default: the --model folder, or latentserve-tiny)"},
      {"max-n", true, "most completions per request (default 16)"},
      {"max-request-bytes", true, "largest request body (default 33554432)"},
      {"max-queued-requests", true, "waiting requests past this are refused with 429 (default 1024)"},
      {"shutdown-timeout", true, "seconds running requests get to finish after SIGTERM/SIGINT (default 30)"},
      {"io-threads", true, "HTTP I/O threads (default 2)"},
      {"help", false, "show this help"},
  };
  for (auto& spec : engine_option_specs()) specs.push_back(spec);
  return specs;
}

struct ServeSettings {
  std::optional<std::string> model;
  std::string served_name;
  http::HttpServerOptions http;
  std::optional<uint16_t> grpc_port;
  int64_t max_queued_requests = 1024;
  double shutdown_timeout_s = 30;
  engine::EngineConfig engine;
  models::deepseek_v3::ModelOptions model_options;
};

Result<uint16_t> port_option(const ParsedOptions& options, const char* name, int64_t fallback) {
  LS_ASSIGN_OR_RETURN(int64_t port, options.get_int(name, fallback));
  if (port < 0 || port > 65535) return make_error(std::string("--") + name + " must be a port number (0 to 65535)");
  return static_cast<uint16_t>(port);
}

Result<ServeSettings> settings_from(const ParsedOptions& options) {
  ServeSettings s;
  LS_ASSIGN_OR_RETURN(s.engine, engine_config_from(options));
  LS_ASSIGN_OR_RETURN(s.model_options, model_options_from(options));
  s.model = options.get("model");
  s.served_name = options.get_or("served-model-name", default_served_model_name(s.model));
  if (s.served_name.empty()) return make_error("--served-model-name must not be empty");
  s.http.host = options.get_or("host", "127.0.0.1");
  LS_ASSIGN_OR_RETURN(s.http.port, port_option(options, "port", 8000));
  if (options.has("grpc-port")) {
    LS_ASSIGN_OR_RETURN(uint16_t grpc_port, port_option(options, "grpc-port", 0));
    s.grpc_port = grpc_port;
  }
  s.http.api_key = options.get_or("api-key", "");
  LS_ASSIGN_OR_RETURN(int64_t max_n, options.get_int("max-n", 16));
  if (max_n < 1 || max_n > 1024) return make_error("--max-n must be between 1 and 1024");
  s.engine.limits.max_n = static_cast<int32_t>(max_n);
  LS_ASSIGN_OR_RETURN(s.http.max_request_bytes, options.get_int("max-request-bytes", 32 << 20));
  if (s.http.max_request_bytes < 1) return make_error("--max-request-bytes must be at least 1");
  LS_ASSIGN_OR_RETURN(s.max_queued_requests, options.get_int("max-queued-requests", 1024));
  if (s.max_queued_requests < 0) return make_error("--max-queued-requests must not be negative");
  LS_ASSIGN_OR_RETURN(int64_t io_threads, options.get_int("io-threads", 2));
  if (io_threads < 1 || io_threads > 256) return make_error("--io-threads must be between 1 and 256");
  s.http.io_threads = static_cast<int>(io_threads);
  const std::string timeout = options.get_or("shutdown-timeout", "30");
  try {
    size_t used = 0;
    s.shutdown_timeout_s = std::stod(timeout, &used);
    if (used != timeout.size() || !(s.shutdown_timeout_s >= 0)) throw std::invalid_argument("");
  } catch (const std::exception&) {
    return make_error("--shutdown-timeout must be a number of seconds (0 or more), not '" + timeout + "'");
  }
  return s;
}

// What serving one model needs, destroyed in reverse order (the engine before the model).
struct LoadedModel {
  std::unique_ptr<models::deepseek_v3::Model> model;
  std::shared_ptr<const engine::text::TextProcessor> text;
  std::unique_ptr<engine::Engine> engine;
};

Result<LoadedModel> load_model(ServeSettings& settings) {
  LoadedModel loaded;
  LS_ASSIGN_OR_RETURN(std::string dir, resolve_model_dir(settings.model));
  LS_ASSIGN_OR_RETURN(loaded.model, models::deepseek_v3::Model::load(dir, settings.model_options));
  if (std::filesystem::exists(dir + "/tokenizer.json")) {
    LS_ASSIGN_OR_RETURN(loaded.text, engine::text::TextProcessor::load(dir));
    settings.engine.decoder_factory = loaded.text->decoder_factory();
  }
  LS_ASSIGN_OR_RETURN(loaded.engine, engine::Engine::create(*loaded.model, settings.engine));
  return loaded;
}

// /health answers 200 only while serving with the engine loop running; /metrics renders ours
// and the engine's numbers.
void add_service_routes(http::HttpServer& http, ServingContext& ctx, const std::atomic<bool>& serving) {
  http.route("GET", "/health", [&ctx, &serving](const http::HttpRequest&, std::shared_ptr<http::ResponseWriter> w) {
    if (serving.load() && ctx.engine != nullptr && ctx.engine->alive()) {
      w->send(200, "{}");
    } else {
      w->send(503, http::error_body("the model is not being served", "service_unavailable", "", 503));
    }
  });
  http.route("GET", "/metrics", [&ctx](const http::HttpRequest&, std::shared_ptr<http::ResponseWriter> w) {
    w->send(200, ctx.metrics->render_prometheus(ctx.engine->stats()), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.allow_without_key("/health");
  http.allow_without_key("/metrics");
}

// Blocks SIGINT and SIGTERM in this thread and every thread it starts later, so they are taken
// by sigwait() here and never interrupt anything else.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error code, not a signal
  return set;
}

// Waits up to `seconds` for the engine to finish what it is running; a second signal cuts the
// wait short. Returns the requests still unfinished.
int64_t wait_for_running(const engine::Engine& engine, double seconds, const sigset_t& signals) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (true) {
    const int64_t unfinished = engine.stats().num_requests_unfinished;
    if (unfinished == 0 || Clock::now() >= deadline) return unfinished;
    const timespec tick{0, 50'000'000};
    if (sigtimedwait(&signals, nullptr, &tick) > 0) {
      std::cerr << "latentserve: second signal, aborting what is left now\n";
      return engine.stats().num_requests_unfinished;
    }
  }
}

void wait_for_connections(const http::HttpServer& http, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (http.open_connections() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

// Every client holds a descriptor; the usual soft limit of 1024 would cap concurrent streams.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int fail(const std::string& message, int code = 1) {
  std::cerr << "latentserve serve: " << message << "\n";
  return code;
}

}  // namespace

int serve_command(const std::vector<std::string>& args) {
  const sigset_t signals = block_shutdown_signals();  // before any thread exists
  const auto specs = option_specs();
  auto parsed = parse_options(args, specs);
  if (!parsed.ok()) return fail(parsed.error().message, 2);
  if (parsed->has("help")) {
    std::cerr << "usage: latentserve serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--grpc-port 50051] ...\n"
              << describe_options(specs);
    return 0;
  }
  auto settings = settings_from(*parsed);
  if (!settings.ok()) return fail(settings.error().message, 2);
  if (settings->grpc_port && !grpc_available()) return fail("--grpc-port: this build has no gRPC", 2);

  raise_open_file_limit();
  auto loaded = load_model(*settings);
  if (!loaded.ok()) return fail(loaded.error().message);
  const timespec no_wait{0, 0};
  if (sigtimedwait(&signals, nullptr, &no_wait) > 0) {  // interrupted while loading: never start serving
    std::cerr << "latentserve: stopped before serving\n";
    return 0;
  }
  Metrics metrics;
  ServingContext ctx;
  ctx.engine = loaded->engine.get();
  ctx.text = loaded->text;
  ctx.model_name = settings->served_name;
  ctx.metrics = &metrics;
  ctx.limits = settings->engine.limits;
  ctx.max_queued_requests = settings->max_queued_requests;
  ctx.max_model_len = loaded->model->config().max_position_embeddings;
  ctx.vocab_size = loaded->model->config().vocab_size;
  ctx.created = static_cast<int64_t>(std::time(nullptr));

  std::atomic<bool> serving{true};
  http::HttpServer http(settings->http);
  add_service_routes(http, ctx, serving);
  openai::register_openai_routes(http, ctx);
  if (Status started = http.start(); !started.ok()) return fail(started.error().message);
  std::unique_ptr<GrpcServer> grpc;
  if (settings->grpc_port) {
    auto started = GrpcServer::start(ctx, settings->http.host, *settings->grpc_port);
    if (!started.ok()) return fail(started.error().message);
    grpc = std::move(started).value();
  }
  std::cout << "latentserve: serving " << ctx.model_name << " on http://" << settings->http.host << ":" << http.port();
  if (grpc) std::cout << " and grpc://" << settings->http.host << ":" << grpc->port();
  std::cout << std::endl;

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  serving = false;
  std::cerr << "latentserve: " << (signal_number == SIGINT ? "SIGINT" : "SIGTERM")
            << ", shutting down: running requests get up to " << settings->shutdown_timeout_s << " s\n";
  http.stop_accepting();  // from here no HTTP handler runs, so the engine may go
  std::thread grpc_stop;
  if (grpc) {
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(
                              std::chrono::duration<double>(settings->shutdown_timeout_s));
    grpc_stop = std::thread([&grpc, deadline] { grpc->shutdown(deadline); });
  }
  const int64_t left = wait_for_running(*loaded->engine, settings->shutdown_timeout_s, signals);
  if (grpc_stop.joinable()) grpc_stop.join();
  if (left > 0) std::cerr << "latentserve: aborting " << left << " unfinished requests\n";
  grpc.reset();
  loaded->engine.reset();  // aborts what is left; their streams end with finish_reason "abort"
  wait_for_connections(http, std::chrono::seconds(2));
  http.stop();
  std::cerr << "latentserve: stopped\n";
  return 0;
}

}  // namespace latentserve::server
