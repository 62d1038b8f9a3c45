// GrpcServer: the gRPC front end (proto/latentserve.proto plus the standard health service) served
// from the same process and engine as the HTTP API. This header needs no gRPC headers, so the
// server builds, and says why it cannot serve gRPC, where gRPC is not installed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "server/serving_context.h"

namespace latentserve::server {

class GrpcServer {
 public:
  // Listens on host:port (port 0: a free port, see port()) and serves until shutdown(). The
  // context must outlive the server. Fails when the address cannot be bound or this build has
  // no gRPC.
  static Result<std::unique_ptr<GrpcServer>> start(ServingContext& context, const std::string& host,
                                                   uint16_t port);
  ~GrpcServer();  // shutdown() with an immediate deadline, if not done yet
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  uint16_t port() const;  // the port actually bound
  // Health turns NOT_SERVING and new calls are refused; calls in flight run until `deadline`, then
  // are cancelled (their engine requests aborted). Returns when every call has ended.
  void shutdown(std::chrono::system_clock::time_point deadline);

  struct Impl;

 private:
  explicit GrpcServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when this build serves gRPC.
bool grpc_available();

}  // namespace latentserve::server
