#ifdef LATENTSERVE_WITH_GRPC

#include "server/grpc/generate_reactor.h"

#include <atomic>
#include <mutex>

#include <grpcpp/alarm.h>

#include "server/grpc/grpc_convert.h"
#include "server/metrics.h"

namespace latentserve::server::grpc_api {

namespace {
double seconds_between(GenerateReactor::Clock::time_point a, GenerateReactor::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

// Exactly one party at a time may call into the reactor: the one that set `busy` (a write) or
// `finished` (the final write or Finish), deciding under the mutex and calling after releasing it,
// since gRPC may run reactions inline.
struct GenerateReactor::Stream {
  std::mutex mutex;
  GenerateReactor* reactor = nullptr;  // not touched once `finished`
  ServingContext* context = nullptr;
  engine::RequestHandle handle;
  std::string request_id;
  bool busy = false;       // a StartWrite is in flight
  bool finished = false;   // Finish (or StartWriteAndFinish) has been called
  bool cancelled = false;  // the call was cancelled or a write failed
  std::atomic<bool> wake_posted{false};  // a pump is on its way to a gRPC thread
  latentserve::v1::GenerateResponse response;  // the message being written

  Clock::time_point received;
  Clock::time_point last_token;
  bool seen_token = false;

  void record_timing(const engine::Output& out);
  static void pump(const std::shared_ptr<Stream>& self);
  // The output notifier (engine thread): hands the pump to one of gRPC's threads, so converting
  // and serializing the message never runs in the engine's step. One wake covers a burst.
  static void wake(const std::shared_ptr<Stream>& self);
};

void GenerateReactor::Stream::wake(const std::shared_ptr<Stream>& self) {
  if (self->wake_posted.exchange(true)) return;
  // An alarm due now runs its callback on a gRPC executor thread. Each wake has its own: an
  // alarm's callback may not be replaced while it runs, and deleting the alarm there is safe
  // (gRPC keeps its state alive until the callback returns).
  auto* alarm = new grpc::Alarm();
  alarm->Set(gpr_now(GPR_CLOCK_MONOTONIC), [self, alarm](bool) {
    delete alarm;
    // Cleared before popping: an Output pushed from here on wakes another pump.
    self->wake_posted.store(false);
    pump(self);
  });
}

void GenerateReactor::Stream::record_timing(const engine::Output& out) {
  Metrics* metrics = context->metrics;
  const auto now = Clock::now();
  if (metrics && !out.token_ids.empty()) {
    if (!seen_token) {
      metrics->time_to_first_token(seconds_between(received, now));
    } else {
      // Tokens of one step arrive together; each is credited an equal share of the gap.
      const double each = seconds_between(last_token, now) / double(out.token_ids.size());
      for (size_t i = 0; i < out.token_ids.size(); ++i) metrics->inter_token_latency(each);
    }
  }
  if (!out.token_ids.empty()) {
    seen_token = true;
    last_token = now;
  }
  if (metrics && out.request_finished) {
    metrics->request_finished(out.usage.prompt_tokens, out.usage.completion_tokens,
                              seconds_between(received, now));
  }
}

void GenerateReactor::Stream::pump(const std::shared_ptr<Stream>& self) {
  enum class Action { kWrite, kWriteLast, kFinish } action;
  grpc::Status status;
  GenerateReactor* reactor = nullptr;
  {
    std::lock_guard<std::mutex> lock(self->mutex);
    if (self->busy || self->finished) return;
    if (self->cancelled) {
      action = Action::kFinish;
      status = grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
    } else {
      std::optional<engine::Output> out = self->handle.outputs().try_pop();
      if (!out) return;
      self->record_timing(*out);
      if (out->finish_reason == engine::FinishReason::kError) {
        action = Action::kFinish;
        status = grpc::Status(grpc::StatusCode::INTERNAL, "generation failed: " + out->error);
      } else {
        response_from_output(*out, self->request_id, self->response);
        action = out->request_finished ? Action::kWriteLast : Action::kWrite;
      }
    }
    if (action == Action::kWrite) {
      self->busy = true;
    } else {
      self->finished = true;
    }
    reactor = self->reactor;
  }
  switch (action) {
    case Action::kWrite: reactor->StartWrite(&self->response); break;
    case Action::kWriteLast:
      reactor->StartWriteAndFinish(&self->response, grpc::WriteOptions(), grpc::Status::OK);
      break;
    case Action::kFinish: reactor->Finish(status); break;
  }
}

GenerateReactor::GenerateReactor(ServingContext& context, engine::RequestHandle handle,
                                 std::string request_id, Clock::time_point received)
    : stream_(std::make_shared<Stream>()) {
  stream_->reactor = this;
  stream_->context = &context;
  stream_->handle = std::move(handle);
  stream_->request_id = std::move(request_id);
  stream_->received = received;
  // The notifier runs on the engine thread; a weak reference, so the channel (which the stream's
  // handle owns) does not keep the stream alive in a cycle.
  std::weak_ptr<Stream> weak = stream_;
  stream_->handle.outputs().set_notifier(timed_notifier(context.metrics, [weak] {
    if (auto stream = weak.lock()) Stream::wake(stream);
  }));
}

void GenerateReactor::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(stream_->mutex);
    stream_->busy = false;
    if (!ok && !stream_->cancelled) {
      stream_->cancelled = true;  // the client is gone
      stream_->handle.abort();
    }
  }
  Stream::pump(stream_);
}

void GenerateReactor::OnCancel() {
  {
    std::lock_guard<std::mutex> lock(stream_->mutex);
    if (!stream_->cancelled) {
      stream_->cancelled = true;
      stream_->handle.abort();  // its blocks are freed by the engine's next step
    }
  }
  Stream::pump(stream_);
}

void GenerateReactor::OnDone() {
  engine::RequestHandle handle;
  {
    std::lock_guard<std::mutex> lock(stream_->mutex);
    stream_->reactor = nullptr;
    handle = std::move(stream_->handle);
  }
  // Destroying the handle here, not on the engine thread, aborts the request if it still runs.
  handle = engine::RequestHandle();
  delete this;
}

}  // namespace latentserve::server::grpc_api

#endif  // LATENTSERVE_WITH_GRPC
