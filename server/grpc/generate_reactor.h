// GenerateReactor: streams one engine request's Outputs to a gRPC Generate call without a thread
// of its own — the engine's output notifier wakes it on a gRPC thread and gRPC's write
// completions drive it. Cancelling the call (or the client going away) aborts the engine request.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "engine/request.h"
#include "proto/latentserve.grpc.pb.h"
#include "server/serving_context.h"

namespace latentserve::server::grpc_api {

class GenerateReactor final : public grpc::ServerWriteReactor<latentserve::v1::GenerateResponse> {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes a submitted request and starts streaming at once. Deletes itself when the call ends.
  GenerateReactor(ServingContext& context, engine::RequestHandle handle, std::string request_id,
                  Clock::time_point received);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

  // The state the engine's notifier reaches; it outlives the reactor while a notifier runs.
  struct Stream;

 private:
  std::shared_ptr<Stream> stream_;
};

// A Generate call answered with an error status before any engine work. Deletes itself.
class RejectedGenerate final : public grpc::ServerWriteReactor<latentserve::v1::GenerateResponse> {
 public:
  explicit RejectedGenerate(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace latentserve::server::grpc_api
