#include "server/http/http_server.h"

#include <algorithm>
#include <future>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include "server/http/connection.h"

namespace latentserve::server::http {

namespace asio = boost::asio;
using asio::ip::tcp;

std::string error_body(const std::string& message, const std::string& type, const std::string& param,
                       int code) {
  nlohmann::ordered_json error;
  error["message"] = message;
  error["type"] = type;
  error["param"] = param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param);
  error["code"] = code == 0 ? nlohmann::ordered_json() : nlohmann::ordered_json(code);
  nlohmann::ordered_json body;
  body["error"] = std::move(error);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

// Compares every byte whatever the first difference, so timing does not reveal the key.
bool same_secret(const std::string& given, const std::string& key) {
  if (given.size() != key.size() || key.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

bool has_key(const HttpRequest& request, const std::string& key) {
  auto it = request.headers.find("authorization");
  if (it == request.headers.end()) return false;
  const std::string& value = it->second;
  static const std::string kBearer = "bearer ";
  if (value.size() < kBearer.size()) return false;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kBearer[i]) return false;
  }
  return same_secret(value.substr(kBearer.size()), key);
}

}  // namespace

void ServerShared::dispatch(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) const {
  if (draining.load()) {
    return exchange->send(503, error_body("the server is shutting down", "service_unavailable", "", 503),
                          "application/json");
  }
  if (!options.api_key.empty() && open_paths.count(request.path) == 0 && !has_key(request, options.api_key)) {
    return exchange->send(401, error_body("Incorrect API key provided: give it as \"Authorization: Bearer <key>\"",
                                          "invalid_request_error", "", 401),
                          "application/json");
  }
  auto path = routes.find(request.path);
  if (path == routes.end()) {
    return exchange->send(404, error_body("Invalid URL (" + request.method + " " + request.path + ")",
                                          "invalid_request_error", "", 404),
                          "application/json");
  }
  auto handler = path->second.find(request.method);
  if (handler == path->second.end()) {
    std::string allow;
    for (const auto& [method, unused] : path->second) allow += (allow.empty() ? "" : ", ") + method;
    return exchange->send_with_headers(
        405,
        error_body("Method " + request.method + " is not allowed for " + request.path + " (allowed: " + allow + ")",
                   "invalid_request_error", "", 405),
        "application/json", {{"Allow", allow}});
  }
  try {
    handler->second(request, exchange);
  } catch (const std::exception& e) {
    if (!exchange->answered()) {
      exchange->send(500, error_body(std::string("internal error: ") + e.what(), "internal_server_error", "", 500),
                     "application/json");
    }
  }
}

struct HttpServer::Impl {
  explicit Impl(HttpServerOptions options) : shared(std::make_shared<ServerShared>(std::move(options))) {}

  void accept();
  void close_acceptor();
  std::vector<std::shared_ptr<Connection>> live_connections();

  std::shared_ptr<ServerShared> shared;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> retry;  // after running out of file descriptors
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool accepting = false;
  bool stopped = false;
};

void HttpServer::Impl::accept() {
  acceptor->async_accept(asio::make_strand(shared->io), [this](boost::system::error_code ec,
                                                                Connection::Socket socket) {
    if (!acceptor->is_open() || shared->draining.load()) return;
    if (ec) {
      // Out of descriptors (or a transient error): wait a little rather than spin.
      retry->expires_after(std::chrono::milliseconds(50));
      retry->async_wait([this](boost::system::error_code wec) {
        if (!wec) accept();
      });
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // events are small and must not wait
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard<std::mutex> lock(shared->connections_mutex);
      const uint64_t id = shared->next_connection_id++;
      connection = std::make_shared<Connection>(shared, std::move(socket), id);
      shared->connections.emplace(id, connection);
    }
    connection->start();
    accept();
  });
}

void HttpServer::Impl::close_acceptor() {
  if (!accepting) return;
  accepting = false;
  std::promise<void> closed;
  // The acceptor belongs to its strand; close it there, after any accept in progress.
  asio::post(acceptor->get_executor(), [this, &closed] {
    boost::system::error_code ignored;
    acceptor->close(ignored);
    retry->cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

std::vector<std::shared_ptr<Connection>> HttpServer::Impl::live_connections() {
  std::vector<std::shared_ptr<Connection>> live;
  std::lock_guard<std::mutex> lock(shared->connections_mutex);
  for (const auto& [id, weak] : shared->connections) {
    if (auto c = weak.lock()) live.push_back(std::move(c));
  }
  return live;
}

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& method, const std::string& path, Handler handler) {
  impl_->shared->routes[path][method] = std::move(handler);
}

void HttpServer::allow_without_key(const std::string& path) { impl_->shared->open_paths.insert(path); }

Status HttpServer::start() {
  auto& impl = *impl_;
  const auto& options = impl.shared->options;
  if (impl.accepting || impl.stopped) return make_error("the HTTP server was already started");
  if (options.io_threads < 1) return make_error("io_threads must be at least 1");
  const std::string where = options.host + ":" + std::to_string(options.port);
  boost::system::error_code ec;
  tcp::resolver resolver(impl.shared->io);
  auto endpoints = resolver.resolve(options.host, std::to_string(options.port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) return make_error("cannot resolve " + where + ": " + ec.message());
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();

  impl.acceptor.emplace(asio::make_strand(impl.shared->io));
  impl.retry.emplace(impl.acceptor->get_executor());
  impl.acceptor->open(endpoint.protocol(), ec);
  if (!ec) impl.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl.acceptor->bind(endpoint, ec);
  if (!ec) impl.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    impl.acceptor.reset();
    return make_error("cannot listen on " + where + ": " + ec.message());
  }
  impl.port = impl.acceptor->local_endpoint().port();
  impl.accepting = true;
  impl.work.emplace(impl.shared->io.get_executor());
  impl.accept();
  for (int i = 0; i < options.io_threads; ++i) {
    impl.threads.emplace_back([shared = impl.shared] { shared->io.run(); });
  }
  return ok_status();
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop_accepting() {
  auto& impl = *impl_;
  impl.shared->draining = true;
  impl.close_acceptor();
  auto live = impl.live_connections();
  if (live.empty() || impl.threads.empty()) return;
  // A pass over every connection's strand: once it is done, no handler is running and none
  // will start (dispatch refuses from now on), so the caller may tear down what handlers use.
  auto remaining = std::make_shared<std::atomic<size_t>>(live.size());
  auto done = std::make_shared<std::promise<void>>();
  for (auto& connection : live) {
    connection->post([connection, remaining, done] {
      connection->close_if_idle();
      if (--*remaining == 0) done->set_value();
    });
  }
  done->get_future().wait();
}

size_t HttpServer::open_connections() const {
  return static_cast<size_t>(std::max<int64_t>(0, impl_->shared->open_sockets.load()));
}

void HttpServer::stop() {
  auto& impl = *impl_;
  if (impl.stopped) return;
  impl.stopped = true;
  if (impl.threads.empty()) return;  // never started
  stop_accepting();
  for (auto& connection : impl.live_connections()) {
    connection->post([connection] { connection->drop(); });
  }
  impl.shared->stopped = true;  // writers post nothing from now on
  impl.work.reset();
  for (auto& thread : impl.threads) thread.join();
  impl.threads.clear();
  impl.acceptor.reset();
  impl.retry.reset();
}

}  // namespace latentserve::server::http
