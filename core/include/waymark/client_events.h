// What a ClientSession asks its host to do (IoAction) and tells its UI (ClientEvent).
// Pure data; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

using ConnectionId = std::uint64_t;  // numbers one socket of a session; 0 is never used

// ---- I/O the host performs --------------------------------------------------------------
struct OpenSocket {      // open a WebSocket; report with on_open / on_close(connection)
  ConnectionId connection = 0;
};
struct WriteFrame {      // write this text frame on the open socket
  ConnectionId connection = 0;
  std::string text;
};
struct CloseSocket {     // close it; the session already treats it as gone
  ConnectionId connection = 0;
  int code = 1000;
};
using IoAction = std::variant<OpenSocket, WriteFrame, CloseSocket>;

// ---- events for the UI ------------------------------------------------------------------
// A row's life: queued -> stored -> sequenced -> delivered -> read, or failed.
// Own rows reach delivered/read through other users' receipts; others' rows arrive as
// delivered and become read when this user's read cursor passes them.
enum class RowState { queued, stored, sequenced, delivered, read, failed };
std::string_view to_string(RowState state);

struct RowEvent {
  std::string conv;
  std::string id;
  RowState state = RowState::queued;
  std::optional<Seq> seq;
  bool own = false;                       // sent by this user
  std::optional<Error> error;             // set when failed, and on a retryable nack
  std::optional<JsonText> body;          // set when the row first appears (queued/imported,
                                          // or a relay's provisional msg)
  std::optional<std::string> trace;
  std::optional<TimeMs> at;               // the time of this transition (host clock)
  // A relay's provisional msg (stored there, no seq yet; config.provisional) that is not an
  // answer to this session's own send: the row appears as stored with its body, sender and
  // send time, so a UI can show it before the root sequences it.
  std::optional<std::string> from;
  std::optional<TimeMs> cts;
};

// A message reached the app: per conversation, in seq order, each seq exactly once.
struct MessageEvent {
  Msg msg;
  bool own = false;
};

enum class ConnectionState { connecting, online, offline };
std::string_view to_string(ConnectionState state);

struct ConnectionEvent {
  ConnectionState state = ConnectionState::offline;
  std::optional<TimeMs> next_retry_at;  // offline and retrying: when
  std::string reason;                   // why offline: "closed", "dead", "bye:shutdown", ...
  // Offline because the edge refused the token (err unauthorized, bye token_expired, close
  // 4001): the session waits for set_token + connect_now and does not retry by itself.
  bool token_refused = false;
  // Online: the welcome's path (set only for a relay link: the upstream's nodes up to its root).
  std::vector<std::string> path;
};

struct PresenceEvent { std::string conv, user; bool on = false; };
struct TypingEvent { std::string conv, user; bool on = false; };
struct ReceiptEvent { std::string conv, user; Seq seq = 0; ReceiptKind kind = ReceiptKind::read; };
struct UnreadEvent { std::string conv; std::uint64_t count = 0; };
struct CursorEvent { std::string conv; Seq seq = 0; };  // the conversation's cursor advanced
// A relay link only: the upstream's head of a conversation, from its subd (the relay's
// replication lag is this minus its own head).
struct HeadEvent { std::string conv; Seq head = 0; };

// The answer to request_history.
struct HistoryEvent {
  std::string rid;
  std::string conv;
  std::vector<Msg> msgs;
  bool more = false;
  std::optional<Error> error;
};

// An err from the edge that no request of the session's owns.
struct ErrorEvent { Error error; std::optional<std::string> rid; };

// The outbox or cursors changed: a host that persists state should export_state() now.
struct StateChangedEvent {};

// Token refresh is on (ClientSession::set_token_refresh) and the session needs a new token:
// get one now (getToken) and answer with token_fetched or token_fetch_failed.
struct TokenWantedEvent {};

using ClientEvent = std::variant<RowEvent, MessageEvent, ConnectionEvent, PresenceEvent,
                                 TypingEvent, ReceiptEvent, UnreadEvent, CursorEvent,
                                 HistoryEvent, ErrorEvent, StateChangedEvent, TokenWantedEvent,
                                 HeadEvent>;

}  // namespace waymark
