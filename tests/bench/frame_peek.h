// peek_frame: the harness's light read of the frames it sees most (msg, ack, an echoed send):
// the top-level members it needs, cut from the text without building a DOM, so that the
// harness does per delivery what the Redis peer does per entry (read the few fields it checks).
// Anything else, or anything unusual (an escape in a key or a string it keeps, a malformed
// member), returns nullopt and the caller parses the frame with the core's codec.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "waymark/frames.h"

namespace waymark::bench {

// Msg (conv, seq, id, body), Ack (conv, id, seq, dup) or Send (conv, id, body); other fields
// are left at their defaults.
std::optional<Frame> peek_frame(std::string_view text);

// The "t0" integer of a harness body ({"t0":<ns>,"p":"..."}); 0 when it has none.
std::int64_t peek_t0(std::string_view body);

}  // namespace waymark::bench
