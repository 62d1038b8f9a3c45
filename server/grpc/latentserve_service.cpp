#ifdef LATENTSERVE_WITH_GRPC

#include "server/grpc/latentserve_service.h"

#include "server/grpc/generate_reactor.h"
#include "server/grpc/grpc_convert.h"
#include "server/metrics.h"

namespace latentserve::server::grpc_api {

namespace v1 = latentserve::v1;
using grpc::Status;
using grpc::StatusCode;

namespace {

// The HTTP status the same failure gets, for the shared request counters.
int http_status_of(StatusCode code) {
  switch (code) {
    case StatusCode::INVALID_ARGUMENT: return 400;
    case StatusCode::NOT_FOUND: return 404;
    case StatusCode::RESOURCE_EXHAUSTED: return 429;
    case StatusCode::UNAVAILABLE: return 503;
    default: return 500;
  }
}

grpc::ServerUnaryReactor* finish_unary(grpc::CallbackServerContext* call, const Status& status) {
  grpc::ServerUnaryReactor* reactor = call->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

Status LatentserveService::check_admission(const v1::GenerateRequest& request) const {
  if (!request.model().empty() && request.model() != context_.model_name) {
    return Status(StatusCode::NOT_FOUND,
                  "the model '" + request.model() + "' does not exist; this server runs '" +
                      context_.model_name + "'");
  }
  if (context_.max_queued_requests > 0 &&
      context_.engine->stats().num_queued_requests >= context_.max_queued_requests) {
    return Status(StatusCode::RESOURCE_EXHAUSTED,
                  "the server is busy: " + std::to_string(context_.max_queued_requests) +
                      " requests are already waiting; retry later");
  }
  return Status::OK;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* LatentserveService::Generate(
    grpc::CallbackServerContext* call, const v1::GenerateRequest* request) {
  const auto received = GenerateReactor::Clock::now();
  auto reject = [&](const Status& status) -> grpc::ServerWriteReactor<v1::GenerateResponse>* {
    if (context_.metrics) context_.metrics->request_rejected(http_status_of(status.error_code()));
    return new RejectedGenerate(status);
  };
  if (Status admitted = check_admission(*request); !admitted.ok()) return reject(admitted);
  auto converted = request_from_proto(*request, context_.text.get());
  if (!converted.ok()) return reject(Status(StatusCode::INVALID_ARGUMENT, converted.error().message));
  // Everything submit() would refuse as bad input, refused as such before anything is queued.
  if (latentserve::Status valid = context_.engine->validate(*converted); !valid.ok()) {
    return reject(Status(StatusCode::INVALID_ARGUMENT, valid.error().message));
  }
  auto handle = context_.engine->submit(std::move(converted).value());
  if (!handle.ok()) return reject(Status(StatusCode::UNAVAILABLE, handle.error().message));
  if (context_.metrics) context_.metrics->request_received();
  return new GenerateReactor(context_, std::move(handle).value(), request->request_id(), received);
}

grpc::ServerUnaryReactor* LatentserveService::Tokenize(grpc::CallbackServerContext* call,
                                                       const v1::TokenizeRequest* request,
                                                       v1::TokenizeResponse* response) {
  const engine::text::TextProcessor* text = context_.text.get();
  if (!text) return finish_unary(call, Status(StatusCode::FAILED_PRECONDITION, "this model has no tokenizer"));
  switch (request->input_case()) {
    case v1::TokenizeRequest::kText: {
      const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
      auto ids = text->encode_prompt(request->text(), add_special);
      if (!ids.ok()) return finish_unary(call, Status(StatusCode::INVALID_ARGUMENT, ids.error().message));
      response->mutable_token_ids()->Add(ids->begin(), ids->end());
      response->set_text(request->text());
      return finish_unary(call, Status::OK);
    }
    case v1::TokenizeRequest::kChat: {
      auto j = chat_request_json(request->chat());
      if (!j.ok()) return finish_unary(call, Status(StatusCode::INVALID_ARGUMENT, j.error().message));
      const bool add_generation_prompt = !j->contains("add_generation_prompt") || (*j)["add_generation_prompt"].get<bool>();
      const nlohmann::ordered_json tools = j->contains("tools") ? (*j)["tools"] : nlohmann::ordered_json(nullptr);
      auto chat = text->encode_chat((*j)["messages"], tools, add_generation_prompt);
      if (!chat.ok()) return finish_unary(call, Status(StatusCode::INVALID_ARGUMENT, chat.error().message));
      response->mutable_token_ids()->Add(chat->ids.begin(), chat->ids.end());
      response->set_text(chat->text);
      return finish_unary(call, Status::OK);
    }
    case v1::TokenizeRequest::INPUT_NOT_SET:
      break;
  }
  return finish_unary(call, Status(StatusCode::INVALID_ARGUMENT, "one of text or chat is required"));
}

grpc::ServerUnaryReactor* LatentserveService::ListModels(grpc::CallbackServerContext* call,
                                                         const v1::ListModelsRequest*,
                                                         v1::ListModelsResponse* response) {
  v1::ModelInfo* model = response->add_models();
  model->set_id(context_.model_name);
  model->set_max_model_len(context_.max_model_len);
  model->set_vocab_size(context_.vocab_size);
  return finish_unary(call, Status::OK);
}

}  // namespace latentserve::server::grpc_api

#endif  // LATENTSERVE_WITH_GRPC
