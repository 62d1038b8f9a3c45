#include "server/openai/api_error.h"

#include <array>

namespace latentserve::server::openai {

using json = nlohmann::ordered_json;

std::string ApiError::type() const {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

ApiError bad_request(std::string message, std::string param) {
  return ApiError{400, std::move(message), std::move(param), ""};
}

json error_json(const ApiError& e) {
  json err;
  err["message"] = e.message;
  err["type"] = e.type();
  err["param"] = e.param.empty() ? json(nullptr) : json(e.param);
  err["code"] = e.code.empty() ? json(e.status) : json(e.code);
  return json{{"error", std::move(err)}};
}

ApiError engine_validation_error(const std::string& message, const std::string& prompt_param) {
  // Fields whose name starts the engine's message; the longest names first where one is a
  // prefix of another (max_tokens / max_temperature are not, but top_k / top_p share "top_").
  static const std::array<const char*, 16> kFields = {
      "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
      "repetition_penalty", "logit_bias", "max_tokens", "min_tokens", "stop_token_ids", "stop",
      "n", "logprobs", "seed", "priority"};
  std::string param;
  for (const char* f : kFields) {
    const std::string field = f;
    if (message.rfind(field, 0) == 0 && message.size() > field.size() &&
        (message[field.size()] == ' ' || message[field.size()] == '[')) {
      param = field;
      break;
    }
  }
  if (param.empty() && message.find("plus max_tokens") != std::string::npos) param = "max_tokens";
  if (param.empty() && message.rfind("the prompt", 0) == 0) param = prompt_param;
  if (param.empty() && message.rfind("prompt token", 0) == 0) param = prompt_param;
  return bad_request(message, param);
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace latentserve::server::openai
