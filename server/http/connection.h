// One client connection of the HttpServer (reads requests, writes responses in order, notices the
// client leaving) and the Exchange, the ResponseWriter of one request on it. Internal to
// server/http: every Connection member runs on the connection's strand.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "server/http/http_server.h"
#include "server/http/wire_format.h"

namespace latentserve::server::http {

class Connection;
class Exchange;

// What the server and its connections share. Connections hold it, so the io_context outlives
// every socket even when a writer held by the engine outlives the HttpServer.
struct ServerShared {
  explicit ServerShared(HttpServerOptions o) : options(std::move(o)), io(options.io_threads) {}

  HttpServerOptions options;
  std::map<std::string, std::map<std::string, Handler>> routes;  // path -> method -> handler
  std::set<std::string> open_paths;                              // no API key needed
  boost::asio::io_context io;
  std::atomic<bool> draining{false};  // stop_accepting() was called
  std::atomic<bool> stopped{false};   // stop() was called: nothing new is posted

  std::mutex connections_mutex;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> connections;
  uint64_t next_connection_id = 1;
  std::atomic<int64_t> open_sockets{0};  // accepted and not yet closed

  // Answers one request: API key, route, method, then the handler.
  void dispatch(const HttpRequest& request, const std::shared_ptr<Exchange>& exchange) const;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp,
                                                  boost::asio::strand<boost::asio::io_context::executor_type>>;

  Connection(std::shared_ptr<ServerShared> shared, Socket socket, uint64_t id);
  ~Connection();

  void start();
  // Runs `fn` on this connection's strand (nothing once the server has stopped).
  void post(std::function<void()> fn);

  // Strand only. Queues bytes of the current response.
  void write(std::string bytes);
  // Strand only. The current response is fully queued; then the next request, or close.
  void response_queued(bool close_after);
  // Strand only. Closes now; an unfinished response counts as a disconnect.
  void drop();
  // Strand only. Closes when waiting for a request (the server is draining).
  void close_if_idle();

  // Bytes handed to write() (or queued by the current Exchange) and not yet on the wire.
  std::atomic<int64_t> unwritten_bytes{0};
  const HttpServerOptions& options() const { return shared_->options; }
  const std::shared_ptr<ServerShared>& shared() const { return shared_; }

 private:
  enum class Phase { kIdle, kReading, kResponding, kClosing, kClosed };

  void wait_for_request();
  void read_header();
  void on_header(boost::beast::error_code ec);
  void read_body();
  void on_request_read(boost::beast::error_code ec);
  void dispatch_request();
  void watch_for_disconnect();
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void write_next();
  void on_written(boost::beast::error_code ec, size_t bytes);
  void finish_response();
  void reject_and_close(int status, const std::string& message, const std::string& type);
  void linger_and_close();
  void drain_input();
  void arm(int64_t ms);
  void disarm();
  void close_socket();

  std::shared_ptr<ServerShared> shared_;  // first: destroyed after the socket
  Socket socket_;
  boost::asio::steady_timer deadline_;
  const uint64_t id_;
  Phase phase_ = Phase::kIdle;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<Exchange> exchange_;  // the request being answered
  bool watching_ = false;               // a disconnect-watch read is pending
  bool writing_ = false;
  bool response_queued_ = false;
  bool close_after_ = false;
  std::deque<std::string> queue_;
  std::vector<std::string> in_flight_;
  std::vector<char> scratch_;
};

// The ResponseWriter of one request. Any thread may call it: bytes gather under a mutex in call
// order and one flush at a time moves them to the connection's strand.
class Exchange : public ResponseWriter, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Connection> connection, bool keep_alive, bool http10);

  void send(int status, std::string body, std::string content_type) override;
  void start_stream() override;
  bool send_event(const std::string& payload) override;
  void end_stream() override;
  void on_disconnect(std::function<void()> callback) override;
  bool disconnected() const override { return disconnected_.load(); }
  void post(std::function<void()> fn) override;

  // A whole response with extra headers (405's Allow).
  void send_with_headers(int status, std::string body, const std::string& content_type,
                         const HeaderList& headers);
  bool answered() const;
  // Strand only, from the connection: the client is gone.
  void notify_disconnect();

 private:
  enum class State { kNone, kStreaming, kDone };
  // With mutex_ held (the lock is released before posting). False when the client is gone.
  bool enqueue(std::unique_lock<std::mutex>& lock, std::string bytes, bool last);
  std::string begin_stream_locked();  // the stream's head
  void flush();

  mutable std::mutex mutex_;
  const std::shared_ptr<ServerShared> shared_;  // its io_context runs post()ed work
  std::shared_ptr<Connection> connection_;  // released once the response is queued or the client left
  const bool keep_alive_;
  const bool http10_;
  State state_ = State::kNone;
  bool chunked_ = false;      // the stream's events are chunks (else close-delimited, HTTP/1.0)
  bool close_after_ = false;  // the connection closes after this response
  bool gone_ = false;         // notify_disconnect() ran
  std::atomic<bool> disconnected_{false};
  std::vector<std::function<void()>> callbacks_;
  std::deque<std::string> pending_;
  bool last_pending_ = false;
  bool flush_posted_ = false;
};

}  // namespace latentserve::server::http
