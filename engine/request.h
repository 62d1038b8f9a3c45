// Request (what a front end submits), OutputChannel (where the engine thread puts its Outputs)
// and RequestHandle (how the caller reads them; dropping it aborts the request).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/output.h"
#include "engine/sampling_params.h"

namespace latentserve::engine {

struct Request {
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;
};

// A thread-safe queue of Outputs for one request: the engine thread pushes, the caller pops.
class OutputChannel {
 public:
  void push(Output output);
  // Blocks until an Output is ready or `timeout` passes (nullopt).
  std::optional<Output> pop(std::chrono::milliseconds timeout = std::chrono::hours(24));
  std::optional<Output> try_pop();
  // Called (on the engine thread) after each push; for event-driven front ends. Called once
  // at once (on the caller's thread) when Outputs are already waiting.
  void set_notifier(std::function<void()> notifier);
  bool finished() const;  // the request's last Output has been pushed

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Output> queue_;
  std::function<void()> notifier_;
  bool finished_ = false;
};

class Engine;

class RequestHandle {
 public:
  RequestHandle() = default;
  RequestHandle(Engine* engine, uint64_t id, std::shared_ptr<OutputChannel> channel)
      : engine_(engine), id_(id), channel_(std::move(channel)) {}
  RequestHandle(RequestHandle&& other) noexcept { *this = std::move(other); }
  RequestHandle& operator=(RequestHandle&& other) noexcept;
  RequestHandle(const RequestHandle&) = delete;
  RequestHandle& operator=(const RequestHandle&) = delete;
  ~RequestHandle();  // aborts the request unless it has finished

  uint64_t id() const { return id_; }
  OutputChannel& outputs() { return *channel_; }
  std::optional<Output> next(std::chrono::milliseconds timeout = std::chrono::hours(24)) {
    return channel_->pop(timeout);
  }
  void abort();

 private:
  Engine* engine_ = nullptr;
  uint64_t id_ = 0;
  std::shared_ptr<OutputChannel> channel_;
};

}  // namespace latentserve::engine
