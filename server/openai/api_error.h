// API errors of the OpenAI-compatible front end: an HTTP status with OpenAI's error JSON
// ({"error": {"message", "type", "param", "code"}}), and ApiResult<T> for functions that fail with one.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

namespace latentserve::server::openai {

struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // the request field at fault; "" when none
  std::string code;   // OpenAI's machine-readable code ("model_not_found"); "" when none

  std::string type() const;  // "invalid_request_error", "not_found_error", ...
};

ApiError bad_request(std::string message, std::string param = "");

// {"error": {...}} as the HTTP API and the batch output send it.
nlohmann::ordered_json error_json(const ApiError& error);

// An engine::Engine::validate / SamplingParams::validate message as a 400, with the field it
// names (its messages begin with the field: "temperature must be in ...").
ApiError engine_validation_error(const std::string& message, const std::string& prompt_param);

// JSON text that never throws: invalid UTF-8 (which parsed requests cannot contain) is replaced.
std::string dump(const nlohmann::ordered_json& j);

template <class T>
class [[nodiscard]] ApiResult {
 public:
  ApiResult(T value) : state_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  ApiResult(ApiError error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return state_.index() == 0; }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T* operator->() { return &value(); }
  T& operator*() & { return value(); }
  const ApiError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, ApiError> state_;
};

}  // namespace latentserve::server::openai
