// ClientSession: one Waymark client across connections and reconnects, sans-I/O.
// Feed it transport events and app calls with the current time; collect take_io() for the
// host, take_events() for the UI, next_deadline() for the timer. Not thread-safe: one owner
// thread (the browser's main thread, an edge's lws thread for its upstream link).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "waymark/client_config.h"
#include "waymark/client_events.h"
#include "waymark/error.h"
#include "waymark/frames.h"
#include "waymark/identifiers.h"

namespace waymark {

class ClientSession {
 public:
  // REQUIRES: random outlives the session.
  ClientSession(ClientConfig config, std::string token, std::optional<std::string> device,
                RandomSource& random);

  // ---- life cycle ----
  void start(TimeMs now);         // begin connecting (OpenSocket)
  void close(TimeMs now);         // the app is done: close the socket, stop reconnecting
  void connect_now(TimeMs now);   // "retry now", or the browser came online: skip the wait
  void set_token(std::string token);  // used from the next hello on
  // The browser came online or the tab became visible: as connect_now, except that a refused
  // token is not tried again by itself (with token refresh on, a new one is asked for now).
  void wake(TimeMs now);

  // The edge refusing the token (err unauthorized, bye token_expired, a close with 4001) stops
  // the session: it emits ConnectionEvent{offline, no next_retry_at, "unauthorized: ..."} and
  // never reconnects with the same token by itself. The host gets a new token, then calls
  // set_token and connect_now; the outbox (same ids) and the cursors carry over.
  //
  // Token refresh (for a host that can get tokens, e.g. the SDK's getToken): the session then
  // asks for a new token itself with a TokenWantedEvent, at once the first time since it was
  // last online and then on the token backoff (config token_retry_*), the offline
  // ConnectionEvent carrying the next try's time. connect_now (and wake) ask at once instead.
  void set_token_refresh(bool on) { token_refresh_ = on; }
  // The host's new token: true, and the session reconnects with it now; false when it is
  // empty or the very token the edge refused (the host then calls token_fetch_failed).
  bool token_fetched(std::string token, TimeMs now);
  // The host could not get a token: the next TokenWantedEvent comes after the token backoff,
  // announced as ConnectionEvent{offline, next_retry_at, "unauthorized: " + reason}.
  void token_fetch_failed(TimeMs now, const std::string& reason);

  // ---- transport events, for the connection an OpenSocket named; stale ones are ignored ----
  void on_open(ConnectionId connection, TimeMs now);
  void on_frame(ConnectionId connection, std::string_view text, TimeMs now);
  // `close_code`: the WebSocket close code when the host knows it. 4001 (unauthorized) stops
  // the session as an err unauthorized does; any other code, or none, is an ordinary loss.
  void on_close(ConnectionId connection, TimeMs now, std::optional<int> close_code = std::nullopt);
  void on_timer(TimeMs now);

  // ---- the app ----
  // Queues a message and returns its id at once; the row starts queued. `body` is the app's
  // JSON text, checked here with parse_json_text and sent exactly as given. A body that is not
  // JSON (invalid) or a frame that would exceed max_frame (too_large) fails the row at once.
  // `id`: a caller-chosen id (another tab of the same profile made it with make_message_id);
  // an invalid one fails the row at once (invalid). Absent: the session makes one.
  std::string send(const std::string& conv, JsonText body, TimeMs now,
                   std::optional<std::string> id = std::nullopt);
  // Delivers conv from the stored cursor, else from `after`, else live from the head.
  // REQUIRES: is_valid_conv(conv) (checked: a bad conv is ignored and reported as ErrorEvent).
  void subscribe(const std::string& conv, std::optional<Seq> after, TimeMs now);
  void unsubscribe(const std::string& conv, TimeMs now);
  void mark_read(const std::string& conv, Seq seq, TimeMs now);
  void set_typing(const std::string& conv, bool on, TimeMs now);
  // Asks for a page of history; the answer is a HistoryEvent with the returned rid.
  std::string request_history(const std::string& conv, std::optional<Seq> before,
                              std::optional<Seq> after, std::uint32_t limit, TimeMs now);
  // Puts a failed row back in the outbox (the UI's retry button). False if no such row.
  bool retry(const std::string& conv, const std::string& id, TimeMs now);
  // Puts an own message back in the outbox as it was queued (same id, body, cts and trace):
  // one a host saw queued whose outbox entry never reached the persisted state (another tab
  // queued it and closed before writing). The edge stores an id once, so if it was stored
  // after all it is acked as a duplicate. False when the outbox has it already, or it is not
  // valid (conv, id, trace).
  // `as`: on a relay link (config.relay), the user the relay speaks for.
  bool requeue(const std::string& conv, const std::string& id, JsonText body, TimeMs cts,
               std::string trace, TimeMs now, std::optional<std::string> as = std::nullopt);

  // ---- a relay link (config.relay) ----
  // A local user's receipt, passed on now if online and again on every reconnect until the
  // root's rcpt fanout for that user reaches it (the root keeps receipts monotonic).
  void pass_receipt(const std::string& conv, const std::string& user, ReceiptKind kind, Seq seq);
  // A local user's typing, passed on if online (best effort, as typing is).
  void pass_typing(const std::string& conv, const std::string& user, bool on);
  // A relay link: a local user became present (on) or absent in conv; said again on every
  // reconnect while on.
  void pass_presence(const std::string& conv, const std::string& user, bool on);
  // Delivers conv again from `after` although the cursor is past it: what was delivered
  // above `after` did not reach the relay's log.
  void rewind(const std::string& conv, Seq after, TimeMs now);

  // ---- outputs ----
  std::vector<IoAction> take_io();
  std::vector<ClientEvent> take_events();
  std::optional<TimeMs> next_deadline() const;

  // ---- durable state: outbox, cursors and subscriptions, as JSON ----
  std::string export_state() const;
  // REQUIRES: before start(). Rows of the imported outbox are announced as RowEvents.
  Result<std::monostate> import_state(std::string_view json, TimeMs now);

  // ---- queries ----
  ConnectionState connection_state() const;
  std::optional<Seq> cursor(const std::string& conv) const;
  std::size_t outbox_size() const { return outbox_.size(); }
  std::uint64_t unread(const std::string& conv) const;
  std::vector<std::string> present(const std::string& conv) const;
  const std::string& user() const { return user_; }

 private:
  enum class Phase { idle, connecting, handshaking, online, offline, stopped };

  struct OutboxEntry {
    std::string conv;
    std::string id;
    JsonText body;
    TimeMs cts = 0;
    std::string trace;
    std::optional<std::string> as;   // a relay link's: whom it speaks for
    bool failed = false;
    std::optional<Error> error;
    std::uint32_t attempts = 0;        // retryable nacks so far
    TimeMs not_before = 0;             // retry backoff
    ConnectionId sent_on = 0;          // in flight on this connection, 0 when not
  };

  struct OwnRow {  // an own message with a seq, until others' receipts make it read
    std::string id;
    RowState state = RowState::sequenced;
  };

  struct Conversation {
    bool wanted = false;                 // subscribed by the app
    bool requested = false;              // sub sent on this connection, subd not yet seen
    std::optional<Seq> cursor;           // last contiguous seq delivered to the app
    std::optional<Seq> initial_after;    // app's `after`, used when no cursor is known
    std::map<Seq, Msg> pending;          // msgs above a gap, waiting for it to fill
    std::optional<std::string> gap_rid;  // the hist filling the gap
    TimeMs gap_sent_at = 0;
    Seq read_cursor = 0;                 // this user's read cursor
    Seq delivered_sent = 0;              // highest delivered rcpt sent
    std::map<Seq, std::string> unread;   // others' messages above read_cursor: seq -> id
    Seq known_head = 0;                  // highest seq heard of (subd.head, msgs, acks)
    std::set<Seq> acked_undelivered;     // own seqs acked here, their msg not yet delivered
    std::map<std::string, TimeMs> typing;  // user -> expiry
    std::set<std::string> present;
    Seq others_delivered = 0;            // highest delivered/read receipt from any other user
    Seq others_read = 0;
    std::map<Seq, OwnRow> own_rows;
  };

  struct HistoryRequest { std::string conv; TimeMs sent_at = 0; };

  // transport
  void begin_connect(TimeMs now);
  void connection_lost(TimeMs now, std::string reason, bool ask_close, int close_code);
  void schedule_reconnect(TimeMs now, std::string reason);
  void stop_unauthorized(TimeMs now, const std::string& detail);
  void want_token(TimeMs now);
  void write(const Frame& frame);
  bool is_current(ConnectionId connection) const;

  // incoming frames
  void handle(const Welcome& frame, TimeMs now);
  void handle(const Msg& frame, TimeMs now);
  void handle(const Subd& frame, TimeMs now);
  void handle(const Page& frame, TimeMs now);
  void handle(const Ack& frame, TimeMs now);
  void handle(const Nack& frame, TimeMs now);
  void handle(const Rcpt& frame, TimeMs now);
  void handle(const Typing& frame, TimeMs now);
  void handle(const Presence& frame, TimeMs now);
  void handle(const Bye& frame, TimeMs now);
  void handle(const Err& frame, TimeMs now);

  // conversations
  void send_sub(const std::string& conv, Conversation& c);
  void accept_msg(Msg msg, TimeMs now);
  void deliver(Conversation& c, Msg msg, TimeMs now);
  void request_gap_fill(const std::string& conv, Conversation& c, TimeMs now);
  void apply_others_receipt(const std::string& conv, Conversation& c, TimeMs now);
  void set_read_cursor(const std::string& conv, Conversation& c, Seq seq, TimeMs now);
  void flush_delivered_receipts();
  Conversation& conversation(const std::string& conv) { return conversations_[conv]; }

  // outbox
  void pump_outbox(TimeMs now);
  void resolve_sent(const std::string& conv, const std::string& id, std::optional<Seq> seq,
                    TimeMs now);
  void track_own_row(Conversation& c, Seq seq, const std::string& id);
  void drop_failed_relayed();
  void set_connection(ConnectionId connection);  // connection_ changes: nothing is in flight on it
  void forget_in_flight(const OutboxEntry& entry);  // entry leaves the flight (answered, erased)
  std::deque<OutboxEntry>::iterator find_outbox(const std::string& conv, const std::string& id);
  TimeMs full_jitter_backoff(TimeMs base, TimeMs cap, std::uint32_t attempt);

  void emit(ClientEvent event);
  void emit_row(const std::string& conv, const std::string& id, RowState state,
                std::optional<Seq> seq, bool own, TimeMs now);
  void mark_state_changed() { state_changed_ = true; }
  std::string next_rid();

  ClientConfig config_;
  std::string token_;
  std::optional<std::string> device_;
  RandomSource& random_;

  Phase phase_ = Phase::idle;
  ConnectionId connection_ = 0;       // the current socket, 0 when none
  ConnectionId last_connection_ = 0;  // numbers handed out so far
  TimeMs phase_since_ = 0;
  TimeMs last_heard_ = 0;
  TimeMs last_ping_ = 0;
  TimeMs next_connect_at_ = 0;
  std::optional<TimeMs> retry_wakeup_;  // earliest backed-off send, while online
  std::uint32_t failed_attempts_ = 0;
  // The edge refused token_ (stopped until a new one); with token refresh, how it goes on.
  bool token_refused_ = false;
  bool token_refresh_ = false;
  bool token_wanted_ = false;            // a TokenWantedEvent is unanswered
  std::optional<TimeMs> token_retry_at_; // when the next one comes
  std::uint32_t token_attempts_ = 0;     // tokens asked for since the session was last online
  std::optional<std::pair<TimeMs, TimeMs>> bye_window_;
  TimeMs heartbeat_ms_;
  std::size_t max_frame_;
  std::string user_;
  std::uint64_t rid_counter_ = 0;

  std::deque<OutboxEntry> outbox_;
  // Entries with sent_on == connection_: kept as a count so pump_outbox does not walk a relay
  // link's outbox (hundreds of thousands after a long partition) on every ack.
  std::size_t in_flight_ = 0;
  std::set<std::pair<std::string, std::string>> outbox_keys_;  // (conv, id) of outbox_
  std::map<std::string, Conversation> conversations_;
  std::map<std::string, HistoryRequest> history_requests_;  // rid -> request
  std::set<std::pair<std::string, std::string>> provisional_seen_;  // (conv, id) shown unsequenced
  // A relay link's receipts not yet echoed: (conv, user, kind) -> seq.
  std::map<std::tuple<std::string, std::string, ReceiptKind>, Seq> relayed_receipts_;
  std::set<std::pair<std::string, std::string>> relayed_presence_;  // (conv, user) present

  std::vector<IoAction> io_;
  std::vector<ClientEvent> events_;
  bool state_changed_ = false;
};

}  // namespace waymark
