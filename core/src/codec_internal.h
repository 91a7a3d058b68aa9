// The codec's internals shared with its neighbours: the general path on its own, for the tests
// that hold parse_frame's send fast path to it, and the msg frame's one writer.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "waymark/codec.h"

namespace waymark {

// parse_frame without the send fast path: check_json, then every frame's rules read from the
// checked text (json_read.h).
Result<Frame, FrameError> parse_frame_general(std::string_view text, Direction direction,
                                          const ParseLimits& limits = {});

// A msg frame's fields as views, for writers that hold them elsewhere than in a Msg (a stored
// record): serialize(const Msg&) and record_frame write through the one function below.
struct MsgFields {
  std::string_view conv;
  std::optional<Seq> seq;
  bool provisional = false;
  std::string_view id;
  std::string_view from;
  TimeMs ts = 0;
  std::optional<TimeMs> cts;
  std::optional<std::string_view> trace;
  std::string_view body;  // JSON text
};
std::string serialize_msg_fields(const MsgFields& fields);

}  // namespace waymark
