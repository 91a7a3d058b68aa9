// StoredRecord: the log's compact form of a sequenced msg (layout in stored_record.h).
#include "waymark/stored_record.h"

#include <array>
#include <cstdint>
#include <limits>
#include <variant>

#include "codec_internal.h"
#include "waymark/codec.h"
#include "waymark/identifiers.h"
#include "waymark/varint.h"

namespace waymark {
namespace {

constexpr char kVersion = 0x01;
enum Flag : std::uint8_t { kCts = 1, kTraceText = 2, kTraceBinary = 4 };
constexpr std::size_t kTraceBytes = 26;  // version, 16-byte trace id, 8-byte span id, flags
constexpr std::size_t kTraceTextBytes = 55;
constexpr char kHex[] = "0123456789abcdef";

std::uint64_t zigzag(std::int64_t value) {
  return (static_cast<std::uint64_t>(value) << 1) ^ static_cast<std::uint64_t>(value >> 63);
}
std::int64_t unzigzag(std::uint64_t value) {
  return static_cast<std::int64_t>(value >> 1) ^ -static_cast<std::int64_t>(value & 1);
}

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

// REQUIRES: is_valid_traceparent(trace): lower-case hex at fixed places.
void put_trace_bytes(std::string& out, std::string_view trace) {
  for (std::size_t i = 0; i < kTraceTextBytes; i += 2) {
    if (trace[i] == '-') ++i;
    out.push_back(static_cast<char>(hex_value(trace[i]) << 4 | hex_value(trace[i + 1])));
  }
}

// The 55 characters back: vv-<32>-<16>-ff.
void trace_text(std::string_view bytes, std::array<char, kTraceTextBytes>& text) {
  std::size_t at = 0;
  for (std::size_t i = 0; i < kTraceBytes; ++i) {
    if (i == 1 || i == 17 || i == 25) text[at++] = '-';
    auto byte = static_cast<unsigned char>(bytes[i]);
    text[at++] = kHex[byte >> 4];
    text[at++] = kHex[byte & 15];
  }
}

Error not_a_record(std::string_view what) {
  return make_error(ErrorCode::invalid, "record: " + std::string(what));
}

// Reads a record front to back; every read is bounds-checked, so bytes that are not a record
// are an error, never a read past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool varint(std::uint64_t& value) { return read_varint(bytes_, at_, value); }
  bool take(std::size_t size, std::string_view& out) {
    if (bytes_.size() - at_ < size) return false;
    out = bytes_.substr(at_, size);
    at_ += size;
    return true;
  }
  bool counted(std::string_view& out) {
    std::uint64_t size = 0;
    return varint(size) && size <= bytes_.size() && take(static_cast<std::size_t>(size), out);
  }
  std::string_view rest() {
    std::string_view out = bytes_.substr(at_);
    at_ = bytes_.size();
    return out;
  }

 private:
  std::string_view bytes_;
  std::size_t at_ = 0;
};

// The fields of a record, as views into it (the trace's text into `trace_buffer`).
struct Decoded {
  std::int64_t ts = 0;
  std::optional<std::int64_t> cts;
  std::optional<std::string_view> trace;
  std::string_view id, from, body;
};

Result<Decoded> decode(std::string_view record, std::array<char, kTraceTextBytes>& trace_buffer) {
  Reader in(record);
  std::string_view head;
  if (!in.take(2, head) || head[0] != kVersion) return not_a_record("unknown version");
  const auto flags = static_cast<std::uint8_t>(head[1]);
  if (flags & ~(kCts | kTraceText | kTraceBinary) || (flags & kTraceText && flags & kTraceBinary))
    return not_a_record("unknown flags");
  Decoded out;
  std::uint64_t value = 0;
  if (!in.varint(value)) return not_a_record("ts cut short");
  out.ts = unzigzag(value);
  if (flags & kCts) {
    if (!in.varint(value)) return not_a_record("cts cut short");
    out.cts = unzigzag(value);
  }
  std::string_view trace;
  if (flags & kTraceBinary) {
    if (!in.take(kTraceBytes, trace)) return not_a_record("trace cut short");
    trace_text(trace, trace_buffer);
    out.trace = std::string_view(trace_buffer.data(), trace_buffer.size());
  } else if (flags & kTraceText) {
    if (!in.counted(trace)) return not_a_record("trace cut short");
    out.trace = trace;
  }
  if (!in.counted(out.id)) return not_a_record("id cut short");
  if (!in.counted(out.from)) return not_a_record("from cut short");
  out.body = in.rest();
  if (out.body.empty()) return not_a_record("no body");
  return out;
}

}  // namespace

std::string encode_record(const Msg& msg) {
  std::string out;
  out.reserve(48 + msg.id.size() + msg.from.size() + msg.body.text.size());
  const bool binary_trace = msg.trace && is_valid_traceparent(*msg.trace);
  std::uint8_t flags = 0;
  if (msg.cts) flags |= kCts;
  if (msg.trace) flags |= binary_trace ? kTraceBinary : kTraceText;
  out.push_back(kVersion);
  out.push_back(static_cast<char>(flags));
  append_varint(out, zigzag(msg.ts));
  if (msg.cts) append_varint(out, zigzag(*msg.cts));
  if (binary_trace) {
    put_trace_bytes(out, *msg.trace);
  } else if (msg.trace) {
    append_varint(out, msg.trace->size());
    out += *msg.trace;
  }
  append_varint(out, msg.id.size());
  out += msg.id;
  append_varint(out, msg.from.size());
  out += msg.from;
  out += msg.body.text;
  return out;
}

Result<Msg> decode_record(std::string_view record, std::string_view conv, Seq seq) {
  std::array<char, kTraceTextBytes> trace_buffer{};
  auto decoded = decode(record, trace_buffer);
  if (!decoded.ok()) return decoded.error();
  const Decoded& d = decoded.value();
  Msg msg;
  msg.conv = std::string(conv);
  msg.seq = seq;
  msg.id = std::string(d.id);
  msg.from = std::string(d.from);
  msg.ts = d.ts;
  msg.cts = d.cts;
  if (d.trace) msg.trace = std::string(*d.trace);
  msg.body.text = std::string(d.body);
  return msg;
}

Result<std::string> record_frame(std::string_view record, std::string_view conv, Seq seq) {
  std::array<char, kTraceTextBytes> trace_buffer{};
  auto decoded = decode(record, trace_buffer);
  if (!decoded.ok()) return decoded.error();
  const Decoded& d = decoded.value();
  return serialize_msg_fields(
      MsgFields{conv, seq, false, d.id, d.from, d.ts, d.cts, d.trace, d.body});
}

Result<std::string_view> record_id(std::string_view record) {
  std::array<char, kTraceTextBytes> trace_buffer{};
  auto decoded = decode(record, trace_buffer);
  if (!decoded.ok()) return decoded.error();
  return decoded.value().id;
}

Result<std::string> record_from_frame(std::string_view frame) {
  // The frame was within its edge's max_frame when it was stored; no limit of ours applies.
  auto parsed = parse_frame(frame, Direction::from_edge,
                            ParseLimits{std::numeric_limits<std::size_t>::max()});
  if (!parsed.ok()) return static_cast<const Error&>(parsed.error());
  const Msg* msg = std::get_if<Msg>(&parsed.value());
  if (!msg) return not_a_record("stored frame is not a msg");
  if (!msg->seq || msg->provisional) return not_a_record("stored msg has no seq");
  return encode_record(*msg);
}

}  // namespace waymark
