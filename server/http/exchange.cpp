#include "server/http/connection.h"

#include <boost/asio/post.hpp>

namespace latentserve::server::http {

Exchange::Exchange(std::shared_ptr<Connection> connection, bool keep_alive, bool http10)
    : shared_(connection->shared()), connection_(std::move(connection)), keep_alive_(keep_alive), http10_(http10) {}

void Exchange::post(std::function<void()> fn) {
  // Any I/O thread will do, not only this connection's strand: what fn writes goes through
  // enqueue(), which keeps call order and moves bytes to the strand itself. Once stop() has begun
  // no I/O thread may be left to run it.
  if (shared_->stopped.load()) return fn();
  boost::asio::post(shared_->io, std::move(fn));
}

void Exchange::send(int status, std::string body, std::string content_type) {
  send_with_headers(status, std::move(body), content_type, {});
}

void Exchange::send_with_headers(int status, std::string body, const std::string& content_type,
                                 const HeaderList& headers) {
  std::vector<std::function<void()>> dropped;  // destroyed unlocked: they may own this writer
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ != State::kNone) return;
  state_ = State::kDone;
  close_after_ = !keep_alive_;
  dropped.swap(callbacks_);
  enqueue(lock, whole_response(status, content_type, body, keep_alive_, headers), true);
}

std::string Exchange::begin_stream_locked() {
  state_ = State::kStreaming;
  chunked_ = !http10_;
  close_after_ = !keep_alive_ || !chunked_;
  return stream_head(chunked_, !close_after_);
}

void Exchange::start_stream() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ != State::kNone) return;
  enqueue(lock, begin_stream_locked(), false);
}

bool Exchange::send_event(const std::string& payload) {
  std::string bytes = event_bytes(payload, !http10_);
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ == State::kNone) bytes = begin_stream_locked() + bytes;
  if (state_ != State::kStreaming) return false;
  return enqueue(lock, std::move(bytes), false);
}

void Exchange::end_stream() {
  std::vector<std::function<void()>> dropped;
  std::unique_lock<std::mutex> lock(mutex_);
  std::string bytes;
  if (state_ == State::kNone) bytes = begin_stream_locked();
  if (state_ != State::kStreaming) return;
  state_ = State::kDone;
  dropped.swap(callbacks_);
  if (chunked_) bytes += kLastChunk;
  enqueue(lock, std::move(bytes), true);
}

void Exchange::on_disconnect(std::function<void()> callback) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (state_ == State::kDone) return;
  if (gone_) {
    lock.unlock();
    callback();
    return;
  }
  callbacks_.push_back(std::move(callback));
}

bool Exchange::answered() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_ != State::kNone;
}

bool Exchange::enqueue(std::unique_lock<std::mutex>& lock, std::string bytes, bool last) {
  if (!connection_ || disconnected_.load()) return false;
  std::shared_ptr<Connection> connection = connection_;
  const auto size = static_cast<int64_t>(bytes.size());
  const int64_t waiting = connection->unwritten_bytes.fetch_add(size) + size;
  pending_.push_back(std::move(bytes));
  last_pending_ = last_pending_ || last;
  if (!last && waiting > connection->options().max_pending_write_bytes) {
    // The client reads slower than we produce: drop it, as if it had gone.
    disconnected_ = true;
    lock.unlock();
    connection->post([connection] { connection->drop(); });
    return false;
  }
  if (!flush_posted_) {
    flush_posted_ = true;
    lock.unlock();
    connection->post([self = shared_from_this()] { self->flush(); });
  }
  return true;
}

void Exchange::flush() {
  std::deque<std::string> bytes;
  std::shared_ptr<Connection> connection;
  bool last = false;
  bool close_after = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    bytes.swap(pending_);
    last = last_pending_;
    flush_posted_ = false;
    connection = connection_;
    close_after = close_after_;
    if (last) connection_.reset();  // the response is complete: nothing more to post
  }
  if (!connection) return;
  for (auto& b : bytes) connection->write(std::move(b));
  if (last) connection->response_queued(close_after);
}

void Exchange::notify_disconnect() {
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (gone_) return;
    gone_ = true;
    disconnected_ = true;
    connection_.reset();
    callbacks.swap(callbacks_);  // empty when the response had already ended
  }
  for (auto& callback : callbacks) {
    try {
      callback();
    } catch (...) {
      // A failing callback must not take the I/O thread down; the connection is gone anyway.
    }
  }
}

}  // namespace latentserve::server::http
