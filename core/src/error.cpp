// Error code names, exactly as protocol.md spells them.
#include "waymark/error.h"

#include <array>

namespace waymark {
namespace {
constexpr std::array<std::pair<ErrorCode, std::string_view>, 8> kNames{{
    {ErrorCode::bad_frame, "bad_frame"},
    {ErrorCode::unknown_type, "unknown_type"},
    {ErrorCode::invalid, "invalid"},
    {ErrorCode::too_large, "too_large"},
    {ErrorCode::unauthorized, "unauthorized"},
    {ErrorCode::forbidden, "forbidden"},
    {ErrorCode::rate_limited, "rate_limited"},
    {ErrorCode::unavailable, "unavailable"},
}};
}  // namespace

std::string_view to_string(ErrorCode code) {
  for (const auto& [value, name] : kNames)
    if (value == code) return name;
  return "invalid";
}

std::optional<ErrorCode> error_code_from_string(std::string_view text) {
  for (const auto& [value, name] : kNames)
    if (name == text) return value;
  return std::nullopt;
}

}  // namespace waymark
