#include "engine/request.h"

#include "engine/engine.h"

namespace latentserve::engine {

void OutputChannel::push(Output output) {
  std::function<void()> notify;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (output.request_finished) finished_ = true;
    queue_.push_back(std::move(output));
    notify = notifier_;
  }
  ready_.notify_all();
  if (notify) notify();
}

std::optional<Output> OutputChannel::pop(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!ready_.wait_for(lock, timeout, [&] { return !queue_.empty(); })) return std::nullopt;
  Output out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

std::optional<Output> OutputChannel::try_pop() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (queue_.empty()) return std::nullopt;
  Output out = std::move(queue_.front());
  queue_.pop_front();
  return out;
}

void OutputChannel::set_notifier(std::function<void()> notifier) {
  bool pending = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    notifier_ = notifier;
    pending = !queue_.empty();
  }
  // Outputs pushed before the notifier existed are announced now, so none goes unnoticed.
  if (pending && notifier) notifier();
}

bool OutputChannel::finished() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return finished_;
}

RequestHandle& RequestHandle::operator=(RequestHandle&& other) noexcept {
  if (this != &other) {
    abort();
    engine_ = other.engine_;
    id_ = other.id_;
    channel_ = std::move(other.channel_);
    other.engine_ = nullptr;
  }
  return *this;
}

RequestHandle::~RequestHandle() { abort(); }

void RequestHandle::abort() {
  if (engine_ && channel_ && !channel_->finished()) engine_->abort(id_);
  engine_ = nullptr;
}

}  // namespace latentserve::engine
