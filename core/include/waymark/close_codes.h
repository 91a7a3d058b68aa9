// The WebSocket close codes and bye reasons of protocol.md ("Leaving, and pacing reconnects"),
// named once for the edge node, the client session and the hosts. Pure constants; any thread.
#pragma once

#include <string_view>

namespace waymark {

namespace close_code {
inline constexpr int normal = 1000;        // the client is done
inline constexpr int going_away = 1001;    // shutdown (and a store the node cannot read)
inline constexpr int too_large = 1009;     // a frame over max_frame
inline constexpr int unauthorized = 4001;  // no hello first, a bad or expired token
inline constexpr int lagging = 4008;       // a reader past its queue bound
inline constexpr int abusive = 4008;       // repeated refusals, too many connections
}  // namespace close_code

// bye.reason values the edge sends; a client reads only token_expired specially.
namespace bye_reason {
inline constexpr std::string_view shutdown = "shutdown";
inline constexpr std::string_view lagging = "lagging";
inline constexpr std::string_view abusive = "abusive";
inline constexpr std::string_view too_many_connections = "too_many_connections";
inline constexpr std::string_view token_expired = "token_expired";
inline constexpr std::string_view unavailable = "unavailable";
}  // namespace bye_reason

}  // namespace waymark
