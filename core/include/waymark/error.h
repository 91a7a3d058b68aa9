// Protocol error codes and Result<T>: errors are values, never exceptions.
// Pure data; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace waymark {

// The codes of protocol.md "Errors and bad input", in that order.
enum class ErrorCode {
  bad_frame,     // not JSON, not an object, binary
  unknown_type,  // "t" names no frame this side accepts
  invalid,       // a field missing or malformed; the message names it
  too_large,     // over max_frame
  unauthorized,
  forbidden,
  rate_limited,
  unavailable,
};

std::string_view to_string(ErrorCode code);
std::optional<ErrorCode> error_code_from_string(std::string_view text);

struct Error {
  ErrorCode code = ErrorCode::invalid;
  std::string message;  // names the offending field first: "conv: must be 1-128 chars ..."

  bool operator==(const Error&) const = default;
};

// A value or an error (an Error, or a type that extends it). REQUIRES: value() only when
// ok(), error() only when !ok().
template <typename T, typename E = Error>
class Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  const E& error() const { return std::get<E>(state_); }

 private:
  std::variant<T, E> state_;
};

inline Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace waymark
