#include "server/grpc/grpc_server.h"

#ifdef LATENTSERVE_WITH_GRPC

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <mutex>

#include "server/grpc/latentserve_service.h"

namespace latentserve::server {

struct GrpcServer::Impl {
  explicit Impl(ServingContext& context) : service(context) {}
  grpc_api::LatentserveService service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::once_flag shut_down;
};

namespace {

// "host:port", with an IPv6 literal in brackets as gRPC's URI syntax wants.
std::string listen_address(const std::string& host, uint16_t port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(ServingContext& context, const std::string& host,
                                                      uint16_t port) {
  if (!context.engine) return make_error("gRPC server: no engine to serve");
  // Process-wide, and read when a server is built: the standard grpc.health.v1.Health service.
  grpc::EnableDefaultHealthCheckService(true);
  auto impl = std::make_unique<Impl>(context);
  grpc::ServerBuilder builder;
  const std::string address = listen_address(host, port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
  builder.RegisterService(&impl->service);
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0) {
    return make_error("gRPC server: cannot listen on " + address + " (address in use or invalid?)");
  }
  if (auto* health = impl->server->GetHealthCheckService()) {
    // "" is the whole server; services are known to the health service only once named.
    health->SetServingStatus(latentserve::v1::Latentserve::service_full_name(), true);
    health->SetServingStatus(true);
  }
  return std::unique_ptr<GrpcServer>(new GrpcServer(std::move(impl)));
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() { shutdown(std::chrono::system_clock::now()); }

uint16_t GrpcServer::port() const { return uint16_t(impl_->port); }

void GrpcServer::shutdown(std::chrono::system_clock::time_point deadline) {
  std::call_once(impl_->shut_down, [&] {
    if (auto* health = impl_->server->GetHealthCheckService()) health->SetServingStatus(false);
    // Refuses new calls, waits for those in flight until the deadline, then cancels them (each
    // cancelled Generate aborts its engine request) and waits for their reactors to finish.
    impl_->server->Shutdown(deadline);
    impl_->server->Wait();
  });
}

bool grpc_available() { return true; }

}  // namespace latentserve::server

#else  // built without gRPC

namespace latentserve::server {

struct GrpcServer::Impl {};

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(ServingContext&, const std::string&, uint16_t) {
  return make_error("this latentserve was built without gRPC (install gRPC and Protobuf, then rebuild)");
}

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcServer::~GrpcServer() = default;
uint16_t GrpcServer::port() const { return 0; }
void GrpcServer::shutdown(std::chrono::system_clock::time_point) {}
bool grpc_available() { return false; }

}  // namespace latentserve::server

#endif  // LATENTSERVE_WITH_GRPC
