// Every frame of protocol.md as a typed struct, and Frame, the variant of them all.
// Pure data; any thread. The codec (codec.h) turns text into these and back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "waymark/error.h"

namespace waymark {

using Seq = std::uint64_t;     // 1, 2, 3, ... per conversation; 0 means "before the first"
using TimeMs = std::int64_t;   // milliseconds since the Unix epoch

enum class ReceiptKind { delivered, read };

// A JSON value exactly as its sender wrote it (a message body). The codec validates it once,
// where it enters (parse_frame, parse_json_text); after that it is copied, stored and written
// as this text, never re-serialized, so it reaches every reader byte for byte as it was sent.
// INVARIANT: text is one valid JSON value with finite numbers.
struct JsonText {
  std::string text = "null";
  bool operator==(const JsonText&) const = default;
};

// ---- client -> edge -------------------------------------------------------------------

struct SubRequest {  // one entry of hello.subs, and the body of a sub frame
  std::string conv;
  std::optional<Seq> after;           // absent: live only, from the head
  std::optional<std::uint32_t> limit;  // replay cap; absent: the edge's default

  bool operator==(const SubRequest&) const = default;
};

// hello.relay: the connection is a relaying edge's upstream link for one tenant
// (docs/protocol.md, "Relays"); its token must be a node token naming that tenant.
struct RelayHello {
  std::string node;    // the relay's node name (its welcome.node to its own clients)
  std::string tenant;  // the tenant this link relays for
  bool operator==(const RelayHello&) const = default;
};

struct Hello {
  std::string token;
  std::optional<std::string> device;
  std::vector<SubRequest> subs;
  std::optional<std::string> rid;
  // Opt-in: the client wants a relaying edge's provisional msgs (no seq, prov:true).
  bool provisional = false;
  std::optional<RelayHello> relay;
  bool operator==(const Hello&) const = default;
};

struct Sub {
  SubRequest request;
  std::optional<std::string> rid;
  bool operator==(const Sub&) const = default;
};

struct Unsub {
  std::string conv;
  std::optional<std::string> rid;
  bool operator==(const Unsub&) const = default;
};

struct Hist {
  std::string conv;
  std::optional<Seq> before;  // at most one of before/after; neither means "the newest"
  std::optional<Seq> after;
  std::optional<std::uint32_t> limit;
  std::optional<std::string> rid;
  bool operator==(const Hist&) const = default;
};

struct Send {
  std::string conv;
  std::string id;
  JsonText body;
  std::optional<TimeMs> cts;
  std::optional<std::string> trace;
  std::optional<std::string> rid;
  std::optional<std::string> as;  // a relay link's send: the user it speaks for
  bool operator==(const Send&) const = default;
};

struct Ping {
  std::optional<TimeMs> ts;
  std::optional<std::string> rid;
  bool operator==(const Ping&) const = default;
};

// rcpt and typing travel both ways; `user` is set (and required) only edge -> client;
// `as` only on a relay link (client -> edge): the user the relay speaks for.
struct Rcpt {
  std::string conv;
  Seq seq = 0;
  ReceiptKind kind = ReceiptKind::read;
  std::optional<std::string> user;
  std::optional<std::string> rid;
  std::optional<std::string> as;
  bool operator==(const Rcpt&) const = default;
};

struct Typing {
  std::string conv;
  bool on = false;
  std::optional<std::string> user;
  std::optional<std::string> rid;
  std::optional<std::string> as;
  bool operator==(const Typing&) const = default;
};

// ---- edge -> client -------------------------------------------------------------------

struct Welcome {
  std::string session;
  std::string node;
  std::string user;
  TimeMs ts = 0;
  std::int64_t hb = 15000;
  std::int64_t max_frame = 65536;
  std::optional<std::string> rid;
  // To a relay link only: the node names from this node up to its root, this node first
  // (cycle detection, docs/protocol.md "Relays").
  std::vector<std::string> path;
  bool operator==(const Welcome&) const = default;
};

struct Msg {
  std::string conv;
  std::optional<Seq> seq;  // absent only on a relaying edge's provisional msg
  std::string id;
  std::string from;
  TimeMs ts = 0;
  std::optional<TimeMs> cts;
  std::optional<std::string> trace;
  JsonText body;
  bool provisional = false;  // prov:true: stored at a relay, not yet sequenced (no seq)
  bool operator==(const Msg&) const = default;
};

struct Subd {
  std::string conv;
  Seq head = 0;
  Seq read = 0;
  std::vector<std::string> present;
  bool more = false;
  std::optional<std::string> rid;
  bool operator==(const Subd&) const = default;
};

struct Page {
  std::string conv;
  std::vector<Msg> msgs;
  bool more = false;
  std::optional<std::string> rid;
  bool operator==(const Page&) const = default;
};

struct Ack {
  std::string conv;
  std::string id;
  std::optional<Seq> seq;  // absent: stored here, will be relayed
  TimeMs ts = 0;
  std::optional<std::string> trace;
  bool dup = false;
  std::optional<std::string> rid;
  bool operator==(const Ack&) const = default;
};

struct Nack {
  std::string conv;
  std::string id;
  ErrorCode code = ErrorCode::unavailable;
  std::string msg;
  bool retry = false;
  std::optional<std::string> rid;
  bool operator==(const Nack&) const = default;
};

struct Presence {
  std::string conv;
  std::string user;  // from an edge: whose presence ("" in a relay's)
  bool on = false;
  // From a relay link only: the relay's local user this presence is of (docs/protocol.md,
  // "Relays"); then user is empty.
  std::optional<std::string> as;
  bool operator==(const Presence&) const = default;
};

struct Pong {
  TimeMs ts = 0;
  std::optional<std::string> rid;
  bool operator==(const Pong&) const = default;
};

struct Bye {
  std::string reason;
  TimeMs retry_min_ms = 0;
  TimeMs retry_max_ms = 0;
  bool operator==(const Bye&) const = default;
};

struct Err {
  ErrorCode code = ErrorCode::invalid;
  std::string msg;
  std::optional<std::string> rid;
  bool operator==(const Err&) const = default;
};

using Frame = std::variant<Hello, Sub, Unsub, Hist, Send, Ping, Rcpt, Typing,  // client
                           Welcome, Msg, Subd, Page, Ack, Nack, Presence, Pong, Bye, Err>;

}  // namespace waymark
