#include "server/http/connection.h"

#include <algorithm>

#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

namespace latentserve::server::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

constexpr size_t kHeaderLimit = 64 << 10;
constexpr size_t kMaxPipelinedBytes = 1 << 20;  // read ahead while answering, then stop watching
constexpr int64_t kLingerMs = 2000;             // to drain an unread body before closing

bool is_parse_error(const beast::error_code& ec) {
  if (ec.category() != bhttp::make_error_code(bhttp::error::bad_target).category()) return false;
  return ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message &&
         ec != bhttp::error::need_more && ec != bhttp::error::body_limit;
}

}  // namespace

Connection::Connection(std::shared_ptr<ServerShared> shared, Socket socket, uint64_t id)
    : shared_(std::move(shared)), socket_(std::move(socket)), deadline_(socket_.get_executor()), id_(id) {
  ++shared_->open_sockets;
}

Connection::~Connection() {
  if (phase_ != Phase::kClosed) --shared_->open_sockets;  // e.g. a handler dropped its writer unanswered
  std::lock_guard<std::mutex> lock(shared_->connections_mutex);
  shared_->connections.erase(id_);
}

void Connection::start() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->wait_for_request(); });
}

void Connection::post(std::function<void()> fn) {
  if (shared_->stopped.load()) return;
  asio::post(socket_.get_executor(), std::move(fn));
}

void Connection::wait_for_request() {
  if (phase_ == Phase::kClosed) return;
  if (shared_->draining.load()) return linger_and_close();
  phase_ = Phase::kIdle;
  if (buffer_.size() > 0) return read_header();  // a pipelined request is already here
  arm(options().idle_timeout_ms);
  socket_.async_wait(Socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (self->phase_ != Phase::kIdle) return;
    if (ec) return self->close_socket();
    self->read_header();
  });
}

void Connection::read_header() {
  phase_ = Phase::kReading;
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(static_cast<uint64_t>(options().max_request_bytes));
  arm(options().header_timeout_ms);
  bhttp::async_read_header(socket_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
}

void Connection::on_header(beast::error_code ec) {
  if (phase_ != Phase::kReading) return;
  if (ec) return on_request_read(ec);
  if (parser_->is_done()) return on_request_read(ec);
  const auto expect = parser_->get()[bhttp::field::expect];
  if (beast::iequals(expect, "100-continue")) {
    // The body is wanted: say so now rather than make the client wait for its own timeout.
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    asio::async_write(socket_, asio::buffer(kContinue, sizeof kContinue - 1),
                      [self = shared_from_this()](beast::error_code wec, size_t) {
                        if (self->phase_ != Phase::kReading) return;
                        if (wec) return self->close_socket();
                        self->read_body();
                      });
    return;
  }
  read_body();
}

void Connection::read_body() {
  arm(options().body_timeout_ms);
  bhttp::async_read(socket_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, size_t) { self->on_request_read(ec); });
}

void Connection::on_request_read(beast::error_code ec) {
  if (phase_ != Phase::kReading) return;
  if (ec == bhttp::error::body_limit) {
    return reject_and_close(413, "the request body is larger than the limit of " +
                                     std::to_string(options().max_request_bytes) + " bytes",
                            "invalid_request_error");
  }
  if (ec == bhttp::error::header_limit) {
    return reject_and_close(431, "the request header is larger than " + std::to_string(kHeaderLimit) + " bytes",
                            "invalid_request_error");
  }
  if (is_parse_error(ec)) {
    return reject_and_close(400, "malformed HTTP request: " + ec.message(), "invalid_request_error");
  }
  if (ec) return close_socket();  // the client left, or a timeout closed the socket
  disarm();
  dispatch_request();
}

void Connection::dispatch_request() {
  auto& message = parser_->get();
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : message) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = request.headers.emplace(name, std::string(field.value()));
    if (!inserted) it->second += ", " + std::string(field.value());
  }
  request.body = std::move(message.body());
  const bool keep_alive = message.keep_alive() && !shared_->draining.load();
  const bool http10 = message.version() < 11;
  parser_.reset();

  phase_ = Phase::kResponding;
  response_queued_ = false;
  close_after_ = !keep_alive;
  exchange_ = std::make_shared<Exchange>(shared_from_this(), keep_alive, http10);
  watch_for_disconnect();
  shared_->dispatch(request, exchange_);
}

void Connection::watch_for_disconnect() {
  if (watching_ || phase_ != Phase::kResponding || buffer_.size() >= kMaxPipelinedBytes) return;
  watching_ = true;
  socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_watch(ec, n);
  });
}

void Connection::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  buffer_.commit(bytes);
  switch (phase_) {
    case Phase::kResponding:
      // EOF or an error while the answer is still being produced: the client has gone.
      if (ec) return close_socket();
      return watch_for_disconnect();
    case Phase::kIdle:  // finish_response() cancelled the watch to read the next request
      if (ec && ec != asio::error::operation_aborted) return close_socket();
      return wait_for_request();
    case Phase::kClosing:
      return drain_input();
    default:
      return;
  }
}

void Connection::write(std::string bytes) {
  if (phase_ == Phase::kClosed || phase_ == Phase::kClosing) {
    unwritten_bytes -= static_cast<int64_t>(bytes.size());
    return;
  }
  queue_.push_back(std::move(bytes));
  if (!writing_) write_next();
}

void Connection::write_next() {
  in_flight_.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(in_flight_.size());
  for (const auto& b : in_flight_) buffers.emplace_back(b.data(), b.size());
  writing_ = true;
  arm(options().write_timeout_ms);
  asio::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code ec, size_t n) {
    self->on_written(ec, n);
  });
}

void Connection::on_written(beast::error_code ec, size_t) {
  writing_ = false;
  int64_t written = 0;
  for (const auto& b : in_flight_) written += static_cast<int64_t>(b.size());
  unwritten_bytes -= written;
  in_flight_.clear();
  if (phase_ != Phase::kResponding) return;
  if (ec) return close_socket();
  if (!queue_.empty()) return write_next();
  disarm();
  if (response_queued_) finish_response();
}

void Connection::response_queued(bool close_after) {
  if (phase_ != Phase::kResponding) return;
  close_after_ = close_after_ || close_after;
  response_queued_ = true;
  if (!writing_ && queue_.empty()) finish_response();
}

void Connection::finish_response() {
  exchange_.reset();
  response_queued_ = false;
  if (close_after_ || shared_->draining.load()) return linger_and_close();
  phase_ = Phase::kIdle;
  if (watching_) {
    // The watch read must end before the next request is read; its handler continues.
    beast::error_code ignored;
    socket_.cancel(ignored);
    return;
  }
  wait_for_request();
}

void Connection::reject_and_close(int status, const std::string& message, const std::string& type) {
  parser_.reset();
  phase_ = Phase::kResponding;
  close_after_ = true;
  std::string bytes = whole_response(status, "application/json", error_body(message, type, "", status), false);
  unwritten_bytes += static_cast<int64_t>(bytes.size());
  write(std::move(bytes));
  response_queued(true);
}

void Connection::linger_and_close() {
  // Closing with unread input makes the kernel reset the connection, which can destroy the
  // answer before the client reads it; so stop sending, then read and discard for a while.
  phase_ = Phase::kClosing;
  beast::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  arm(std::min(kLingerMs, options().body_timeout_ms));
  if (!watching_) drain_input();
}

void Connection::drain_input() {
  scratch_.resize(64 << 10);
  socket_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, size_t) {
    if (self->phase_ != Phase::kClosing) return;
    if (ec) return self->close_socket();
    self->drain_input();
  });
}

void Connection::drop() { close_socket(); }

void Connection::close_if_idle() {
  if (phase_ == Phase::kIdle && !watching_) close_socket();
}

void Connection::arm(int64_t ms) {
  deadline_.expires_after(std::chrono::milliseconds(ms));
  deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    // A wait that completed just before being re-armed must not close the connection.
    if (ec || self->deadline_.expiry() > std::chrono::steady_clock::now()) return;
    self->close_socket();
  });
}

void Connection::disarm() { deadline_.cancel(); }

void Connection::close_socket() {
  if (phase_ == Phase::kClosed) return;
  phase_ = Phase::kClosed;
  --shared_->open_sockets;
  deadline_.cancel();
  beast::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  for (const auto& b : queue_) unwritten_bytes -= static_cast<int64_t>(b.size());
  queue_.clear();
  if (auto exchange = std::move(exchange_)) exchange->notify_disconnect();
}

}  // namespace latentserve::server::http
