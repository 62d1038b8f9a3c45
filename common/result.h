// Result<T> and Status: how every function that can fail on its input reports it.
// An Error carries a message saying what was wrong and where; callers add context as it travels up.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace latentserve {

struct Error {
  std::string message;

  // Prefixes context ("loading shard x.safetensors: ") so the final message reads outside-in.
  Error with_context(const std::string& context) const { return Error{context + ": " + message}; }
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}     // NOLINT(google-explicit-constructor)

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace latentserve

// Returns the error of a Status/Result expression from the enclosing function.
#define LS_RETURN_IF_ERROR(expr)                       \
  do {                                                 \
    auto _ls_status = (expr);                          \
    if (!_ls_status.ok()) return _ls_status.error();   \
  } while (0)

#define LS_CONCAT_INNER(a, b) a##b
#define LS_CONCAT(a, b) LS_CONCAT_INNER(a, b)
// LS_ASSIGN_OR_RETURN(auto x, f()) : binds the value or returns the error.
#define LS_ASSIGN_OR_RETURN(decl, expr) \
  LS_ASSIGN_OR_RETURN_IMPL(LS_CONCAT(_ls_result_, __LINE__), decl, expr)
#define LS_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.error();              \
  decl = std::move(tmp).value()
