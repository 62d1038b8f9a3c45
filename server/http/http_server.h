// HttpServer: an asynchronous HTTP/1.1 server (Boost.Beast over Asio, keep-alive, a small pool of
// I/O threads, no thread per connection) that routes requests to handlers, which answer with a
// whole body or a stream of server-sent events and learn when the client goes away.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"

namespace latentserve::server::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, e.g. "/v1/completions"
  std::string path;    // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// How a handler answers. Thread-safe: any thread may call it. Every method returns quickly
// (writes are queued to the connection's strand).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A complete response. Content type defaults to JSON.
  virtual void send(int status, std::string body,
                    std::string content_type = "application/json") = 0;
  // Starts a `text/event-stream` response (200); then events, then end_stream().
  virtual void start_stream() = 0;
  // Sends "data: <payload>\n\n". False once the client is gone (the event is dropped).
  virtual bool send_event(const std::string& payload) = 0;
  virtual void end_stream() = 0;
  // Called once, on an I/O thread, if the client disconnects (or is dropped as too slow) before
  // the response ends; at once, on the caller's thread, if that has already happened. Never
  // called once the response has ended, so the callback may own the writer without a cycle.
  virtual void on_disconnect(std::function<void()> callback) = 0;
  virtual bool disconnected() const = 0;
  // Runs `fn` soon on one of the threads that write responses (an I/O thread), so that a busy
  // thread (the engine's, in an output notifier) can hand the work of building a response over
  // instead of doing it. Runs it at once, on the caller's thread, once the server has stopped.
  virtual void post(std::function<void()> fn) = 0;
};

using Handler = std::function<void(const HttpRequest&, std::shared_ptr<ResponseWriter>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;          // 0: any free port (see HttpServer::port)
  int io_threads = 2;
  int64_t max_request_bytes = 32 << 20;  // larger bodies get 413 before they are read whole
  std::string api_key;           // non-empty: every route but /health needs "Authorization: Bearer <key>" (401)
  int64_t idle_timeout_ms = 60000;    // a keep-alive connection with no request in this long is closed
  int64_t header_timeout_ms = 10000;  // from a request's first byte to the end of its header
  int64_t body_timeout_ms = 60000;    // to read the body after the header
  int64_t write_timeout_ms = 30000;   // a write the client does not take in this long drops it
  // A client that reads slower than its response is produced is dropped (as a disconnect) once
  // this many bytes wait to be written to it, so a slow reader cannot grow memory without bound.
  int64_t max_pending_write_bytes = 16 << 20;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();

  // Exact-path routes (register them before start()); an unknown path is 404 and a known path
  // with another method 405, both as OpenAI-style error JSON. Handlers run on an I/O thread and
  // must return quickly; a handler that throws answers 500 unless it already answered.
  void route(const std::string& method, const std::string& path, Handler handler);
  // Paths that skip the API key check (e.g. /health, /metrics).
  void allow_without_key(const std::string& path);

  Status start();      // binds and listens; returns once accepting
  uint16_t port() const;  // the bound port
  // Stops accepting new connections; open ones finish their current response and then close,
  // idle keep-alive connections close now, requests read from now on get 503. On return no
  // handler is running or will run. Not from a handler (it waits for the I/O threads).
  void stop_accepting();
  // Connections still open (after stop_accepting(): those still finishing a response).
  size_t open_connections() const;
  // Closes everything and joins the I/O threads.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// {"error": {"message", "type", "param", "code"}} as OpenAI sends it.
std::string error_body(const std::string& message, const std::string& type,
                       const std::string& param = "", int code = 0);

}  // namespace latentserve::server::http
