// fuzz_codec: libFuzzer target for the wire codec (core/include/waymark/codec.h). The input is
// one text frame. It is parsed in both directions; every frame that parses must serialize to
// text that parses back to the same frame and serializes to the same text again, exactly (a
// body is kept as the text it was sent as, so no number may drift). A body is a piece of the
// input that reads as the same JSON value as the parser's own. Errors must carry a protocol.md
// code and a message, and only a valid rid; json_quote must produce a JSON string literal that
// reads back as its input.
// Any broken property aborts with a message on stderr (libFuzzer reports it as a crash).
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "codec_internal.h"
#include "waymark/codec.h"
#include "waymark/identifiers.h"

namespace json = boost::json;
using namespace waymark;

namespace {

[[noreturn]] void fail(std::string_view what, std::string_view text) {
  std::fprintf(stderr, "fuzz_codec: %.*s\n  input (%zu bytes): %.*s\n", static_cast<int>(what.size()),
               what.data(), text.size(), static_cast<int>(std::min<std::size_t>(text.size(), 2000)),
               text.data());
  std::abort();
}

// The message is only built when the check fails.
#define FUZZ_CHECK(condition, message, text) \
  do {                                       \
    if (!(condition)) fail(message, text);   \
  } while (0)

// Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF): exactly what a JSON
// parser must accept inside a string.
bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto byte = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0, min = 0;
    if (byte < 0x80) {
      ++i;
      continue;
    } else if ((byte & 0xE0) == 0xC0) {
      extra = 1, code = byte & 0x1F, min = 0x80;
    } else if ((byte & 0xF0) == 0xE0) {
      extra = 2, code = byte & 0x0F, min = 0x800;
    } else if ((byte & 0xF8) == 0xF0) {
      extra = 3, code = byte & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

bool is_protocol_parse_error(ErrorCode code) {
  return code == ErrorCode::bad_frame || code == ErrorCode::unknown_type ||
         code == ErrorCode::invalid || code == ErrorCode::too_large;
}

// Which side may send a parsed frame: rcpt and typing travel both ways, with `user` set
// only edge -> client.
bool sendable_by(const Frame& frame, Direction direction) {
  bool client_only = std::holds_alternative<Hello>(frame) || std::holds_alternative<Sub>(frame) ||
                     std::holds_alternative<Unsub>(frame) || std::holds_alternative<Hist>(frame) ||
                     std::holds_alternative<Send>(frame) || std::holds_alternative<Ping>(frame);
  if (const auto* rcpt = std::get_if<Rcpt>(&frame))
    return rcpt->user.has_value() == (direction == Direction::from_edge);
  if (const auto* typing = std::get_if<Typing>(&frame))
    return typing->user.has_value() == (direction == Direction::from_edge);
  return client_only == (direction == Direction::from_client);
}

// The same JSON value, where two readings of one number text may differ in their last bits:
// Boost.JSON 1.81 reads a long decimal exactly to the double only sometimes (its fast path
// depends on how many bytes follow the number in the buffer, so "20.666666663333333333333333333"
// alone and inside a frame give neighbouring doubles). The codec keeps the text itself, so no
// reader of the wire sees a drift; the check is that the piece is the same value.
bool same_value(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    double x = a.get_double(), y = b.get_double();
    return x == y || std::fabs(x - y) <= 1e-14 * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &x = a.get_array(), &y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!same_value(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &x = a.get_object(), &y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& member : x) {
      const json::value* other = y.if_contains(member.key());
      if (!other || !same_value(member.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

void round_trip(std::string_view text, Direction direction) {
  const char* side = direction == Direction::from_client ? "from_client" : "from_edge";
  const ParseLimits limits;  // the protocol's default max_frame
  auto parsed = parse_frame(text, direction, limits);
  {  // the send fast path and the general path: the same frame, or the same refusal
    auto general = parse_frame_general(text, direction, limits);
    FUZZ_CHECK(parsed.ok() == general.ok(), std::string(side) + ": fast path and general path disagree on acceptance", text);
    if (parsed.ok())
      FUZZ_CHECK(parsed.value() == general.value(), std::string(side) + ": fast path and general path read different frames", text);
    else
      FUZZ_CHECK(parsed.error().code == general.error().code && parsed.error().message == general.error().message &&
                     parsed.error().type == general.error().type && parsed.error().rid == general.error().rid,
                 std::string(side) + ": fast path and general path refuse differently", text);
  }
  if (!parsed.ok()) {
    const FrameError& error = parsed.error();
    FUZZ_CHECK(is_protocol_parse_error(error.code), std::string(side) + ": parse error with a code parsing never gives", text);
    FUZZ_CHECK(!error.message.empty(), std::string(side) + ": parse error without a message", text);
    FUZZ_CHECK((text.size() > limits.max_frame) == (error.code == ErrorCode::too_large),
          std::string(side) + ": too_large exactly when over max_frame", text);
    FUZZ_CHECK(!error.rid || is_valid_rid(*error.rid), std::string(side) + ": a refusal carried an invalid rid", text);
    return;
  }
  const Frame& frame = parsed.value();
  FUZZ_CHECK(sendable_by(frame, direction), std::string(side) + ": accepted a frame of the other side", text);
  FUZZ_CHECK(!frame_type(frame).empty(), "frame_type is empty", text);

  // Escapes can make the serialization longer than the input: re-parse without a size cap.
  const ParseLimits roomy{std::size_t{1} << 30};
  const std::string once = serialize(frame);
  auto again = parse_frame(once, direction, roomy);
  if (!again.ok())
    fail(std::string(side) + ": serialized frame does not parse (" + again.error().message + "): " + once, text);
  FUZZ_CHECK(again.value().index() == frame.index(), std::string(side) + ": round trip changed the frame type", text);
  const std::string twice = serialize(again.value());
  FUZZ_CHECK(again.value() == frame && twice == once,
             std::string(side) + ": round trip changed the frame: " + once + " then " + twice, text);

  // A body is cut from the input as it was sent: the same JSON value as the DOM's "body".
  const JsonText* body = nullptr;
  if (const auto* send = std::get_if<Send>(&frame)) body = &send->body;
  if (const auto* msg = std::get_if<Msg>(&frame)) body = &msg->body;
  if (body) {
    FUZZ_CHECK(text.find(body->text) != std::string_view::npos, std::string(side) + ": body is not a piece of the input", text);
    json::parse_options deep;
    deep.max_depth = 64;
    json::value whole = json::parse(text, {}, deep);
    FUZZ_CHECK(same_value(json::parse(body->text, {}, deep), whole.as_object().at("body")),
               std::string(side) + ": body text reads as another value than the frame's body: " + body->text, text);
  }

  // A tighter limit must refuse exactly the frames longer than it.
  if (!text.empty()) {
    auto tight = parse_frame(text, direction, ParseLimits{text.size() - 1});
    FUZZ_CHECK(!tight.ok() && tight.error().code == ErrorCode::too_large,
          std::string(side) + ": max_frame one byte short did not give too_large", text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  round_trip(text, Direction::from_client);
  round_trip(text, Direction::from_edge);

  const std::string quoted = json_quote(text);
  FUZZ_CHECK(quoted.size() >= 2 + text.size() && quoted.front() == '"' && quoted.back() == '"',
        "json_quote did not produce a quoted string at least as long as its input", text);
  if (is_valid_utf8(text)) {
    json::error_code ec;
    json::value value = json::parse(quoted, ec);
    if (ec) fail("json_quote of valid UTF-8 is not JSON (" + ec.message() + "): " + quoted, text);
    FUZZ_CHECK(value.is_string() && value.get_string() == text, "json_quote does not read back as its input", text);
  }
  return 0;
}
