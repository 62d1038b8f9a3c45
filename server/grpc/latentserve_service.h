// The latentserve.v1.Latentserve service on gRPC's callback API: Generate (streamed through
// GenerateReactor), Tokenize and ListModels, with the HTTP API's validation and limits.
#pragma once

#include <grpcpp/grpcpp.h>

#include "proto/latentserve.grpc.pb.h"
#include "server/serving_context.h"

namespace latentserve::server::grpc_api {

class LatentserveService final : public latentserve::v1::Latentserve::CallbackService {
 public:
  explicit LatentserveService(ServingContext& context) : context_(context) {}

  grpc::ServerWriteReactor<latentserve::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* call, const latentserve::v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* call,
                                     const latentserve::v1::TokenizeRequest* request,
                                     latentserve::v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* call,
                                       const latentserve::v1::ListModelsRequest* request,
                                       latentserve::v1::ListModelsResponse* response) override;

 private:
  // The error a Generate request earns before reaching the engine, or OK.
  grpc::Status check_admission(const latentserve::v1::GenerateRequest& request) const;

  ServingContext& context_;
};

}  // namespace latentserve::server::grpc_api
