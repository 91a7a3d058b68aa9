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

// What parse_frame learned of a frame it refused, so that nobody parses it again: the
// protocol error, the frame's "t" when it was a string, and its "rid" when that was valid
// (the err that answers it echoes the rid).
struct FrameError : Error {
  std::string type;                // "" when the text had no string "t"
  std::optional<std::string> rid;  // a valid rid the frame carried
};

// Parses one text frame. Errors carry protocol.md's code and a message naming the field.
// A body is kept as its JsonText, cut from `text` exactly as sent.
Result<Frame, FrameError> parse_frame(std::string_view text, Direction direction,
                                      const ParseLimits& limits = {});

// The too_large error for a frame of `size` bytes over `max_frame`, or nullopt when it fits:
// protocol.md's size rule, for the edge's incoming frames and a client's outgoing ones alike.
std::optional<Error> check_frame_size(std::size_t size, std::size_t max_frame);

// Checks a JSON value an app hands over as text (a message body to send) by the rules a body
// in a frame meets: JSON, finite numbers, nesting that fits in a frame. Surrounding whitespace
// is dropped; the rest is kept byte for byte.
Result<JsonText> parse_json_text(std::string_view text);

// The frame type name ("hello", "msg", ...).
std::string_view frame_type(const Frame& frame);

// Serializes to compact JSON. Optional fields are omitted when absent; a body is written as
// its JsonText, last in its object.
std::string serialize(const Frame& frame);
// The same for a msg, without first copying it into a Frame (the edge writes one per message).
std::string serialize(const Msg& msg);

// A page frame built from stored msg frames (already JSON text), without re-parsing them.
std::string serialize_page(std::string_view conv, const std::vector<std::string>& stored_msgs,
                           bool more, const std::optional<std::string>& rid);

// Helpers shared by the codec and the hosts' hand-assembled JSON.
std::string_view to_string(ReceiptKind kind);
// A JSON string literal, quotes included.
std::string json_quote(std::string_view text);
// Appends the member "key":raw_value to the serialized JSON object in `object_json`.
// REQUIRES: object_json is one JSON object's text ending in '}'; raw_value is valid JSON.
void append_raw_member(std::string& object_json, std::string_view key, std::string_view raw_value);

}  // namespace waymark
