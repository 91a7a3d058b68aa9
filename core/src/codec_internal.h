// The codec's DOM path on its own, for the tests that hold parse_frame's fast path (a send read
// without a DOM) to it: every text must come out of both the same.
#pragma once

#include <string_view>

#include "waymark/codec.h"

namespace waymark {

// parse_frame without the send fast path: boost::json's DOM, then the frame's rules.
Result<Frame, FrameError> parse_frame_dom(std::string_view text, Direction direction,
                                          const ParseLimits& limits = {});

}  // namespace waymark
