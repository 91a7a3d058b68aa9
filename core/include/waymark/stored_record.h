// StoredRecord: a sequenced msg as the log stores it, in one compact form: its fields once,
// without conv and seq (the store's key holds them), the body last and as sent, so a body can
// later be cut away from its metadata. Pure functions; any thread.
//
// Layout (version 1), every integer a LEB128 varint, signed ones zigzagged:
//   0x01, flags (1: cts, 2: trace as text, 4: trace as 26 bytes), ts, [cts],
//   [trace: length + text | version, 16-byte trace id, 8-byte span id, flags],
//   id length + id, from length + from, body (the rest).
// The first byte is never '{', so a msg frame written by an older edge tells itself apart.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

// REQUIRES: msg.seq is set and msg is not provisional (a relay's staged sends keep their frame).
std::string encode_record(const Msg& msg);

// The msg back, conv and seq from the store's key; `invalid` when the bytes are not a record.
Result<Msg> decode_record(std::string_view record, std::string_view conv, Seq seq);

// The msg frame, byte for byte what serialize(decode_record(...)) writes, without the Msg.
Result<std::string> record_frame(std::string_view record, std::string_view conv, Seq seq);

// The id alone, without copying the rest out (a store rebuilding its id index).
Result<std::string_view> record_id(std::string_view record);

// A msg frame as an edge stored it before records (a JSON object), as a record.
Result<std::string> record_from_frame(std::string_view frame);

}  // namespace waymark
