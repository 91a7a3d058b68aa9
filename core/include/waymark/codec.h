// The wire codec: JSON text <-> Frame, by direction. Every protocol.md validation rule that
// concerns one frame's shape lives here. Pure functions; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

// Who sent the text: rcpt and typing differ by direction, and each side accepts only the
// frame types the other side may send (a "welcome" from a client is unknown_type).
enum class Direction { from_client, from_edge };

struct ParseLimits {
  std::size_t max_frame = 65536;  // bytes; longer text is too_large
};

// Parses one text frame. Errors carry protocol.md's code and a message naming the field.
// A parse that fails on a frame with a usable "rid" reports it through rid_of_bad_frame.
Result<Frame> parse_frame(std::string_view text, Direction direction,
                          const ParseLimits& limits = {});

// The "rid" of a frame that failed to parse, when it is a valid rid (so the err can echo it).
std::optional<std::string> rid_of_bad_frame(std::string_view text);

// The frame type name ("hello", "msg", ...).
std::string_view frame_type(const Frame& frame);

// Serializes to compact JSON. Optional fields are omitted when absent.
std::string serialize(const Frame& frame);

// A page frame built from stored msg frames (already JSON text), without re-parsing them.
std::string serialize_page(std::string_view conv, const std::vector<std::string>& stored_msgs,
                           bool more, const std::optional<std::string>& rid);

// Helpers shared by the codec and the edge's hand-assembled frames.
std::string_view to_string(ReceiptKind kind);
// A JSON string literal, quotes included.
std::string json_quote(std::string_view text);

}  // namespace waymark
