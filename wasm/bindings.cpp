// Embind bindings: WasmSession wraps the unchanged core ClientSession for waymark.js.
// Glue only: values cross as numbers, strings and JSON text; every protocol rule stays in the core.
#include <emscripten/bind.h>

#include <boost/throw_exception.hpp>

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <variant>

#include "waymark/auth.h"
#include "waymark/client_session.h"
#include "waymark/codec.h"
#include "waymark/identifiers.h"
#include "waymark/row_list.h"
#include "json_write.h"  // not public API: waymark_core_internal (core/CMakeLists.txt)
#include "overloaded.h"  // not public API: waymark_core_internal (core/CMakeLists.txt)

#ifdef BOOST_NO_EXCEPTIONS
// Built without exceptions (for size): Boost asks the program to say what a throw becomes.
// The core never lets Boost throw on purpose (it checks kinds before get_*, parses with
// error codes), so reaching these is a bug or out-of-memory: stop the module loudly.
namespace boost {
void throw_exception(const std::exception&) { std::abort(); }
void throw_exception(const std::exception&, const source_location&) { std::abort(); }
}  // namespace boost
#endif

namespace waymark {
namespace {

// JS numbers are doubles; times, seqs and limits are integers well inside 2^53.
TimeMs to_time(double ms) { return static_cast<TimeMs>(std::llround(ms)); }
std::optional<Seq> to_optional_seq(double value) {
  if (!(value >= 0)) return std::nullopt;  // -1 (or NaN) means "none"
  return static_cast<Seq>(std::llround(value));
}
std::uint64_t join_u32(double high, double low) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(high)) << 32) |
         static_cast<std::uint32_t>(low);
}

// The session's randomness: crypto.getRandomValues seeds SplitMix64 (waymark::SeededRandom).

// Replays exactly the two given draws: how a tab that forwards a send to the leader tab makes
// its message id with the core's rule (make_message_id) and its own crypto randomness.
class FixedDraws final : public RandomSource {
 public:
  FixedDraws(std::uint64_t first, std::uint64_t second) : draws_{first, second} {}
  std::uint64_t next_u64() override { return draws_[index_++ % 2]; }

 private:
  std::uint64_t draws_[2];
  std::size_t index_ = 0;
};

std::string error_json(const Error& error) {
  return JsonObject().str("code", to_string(error.code)).str("msg", error.message).done();
}

// ---- events without a body ----

std::string plain_event_json(const ConnectionEvent& e) {
  JsonObject o;
  o.str("type", "connection").str("state", to_string(e.state)).str("reason", e.reason);
  if (e.next_retry_at) o.num("nextRetryAt", *e.next_retry_at);
  if (e.token_refused) o.boolean("needsToken", true);
  return o.done();
}
std::string plain_event_json(const PresenceEvent& e) {
  return JsonObject().str("type", "presence").str("conv", e.conv).str("user", e.user).boolean("on", e.on).done();
}
std::string plain_event_json(const TypingEvent& e) {
  return JsonObject().str("type", "typing").str("conv", e.conv).str("user", e.user).boolean("on", e.on).done();
}
std::string plain_event_json(const ReceiptEvent& e) {
  return JsonObject().str("type", "receipt").str("conv", e.conv).str("user", e.user).num("seq", e.seq)
      .str("kind", to_string(e.kind)).done();
}
std::string plain_event_json(const UnreadEvent& e) {
  return JsonObject().str("type", "unread").str("conv", e.conv).num("count", e.count).done();
}
std::string plain_event_json(const CursorEvent& e) {
  return JsonObject().str("type", "cursor").str("conv", e.conv).num("seq", e.seq).done();
}
std::string plain_event_json(const HeadEvent& e) {  // relay links only; never in a browser
  return JsonObject().str("type", "head").str("conv", e.conv).num("head", e.head).done();
}
std::string plain_event_json(const ErrorEvent& e) {
  JsonObject o;
  o.str("type", "error").raw("error", error_json(e.error));
  if (e.rid) o.str("rid", *e.rid);
  return o.done();
}
std::string plain_event_json(const StateChangedEvent&) { return JsonObject().str("type", "state").done(); }
std::string plain_event_json(const TokenWantedEvent&) { return JsonObject().str("type", "token").done(); }

// Events cross as JSON text. A msg is the codec's msg frame ("t":"msg" and all), and a body
// is its JsonText spliced in as sent: no second JSON shape of a message, no re-serialized body.
std::string event_json(const ClientEvent& event) {
  return std::visit(
      Overloaded{
          [](const RowEvent& e) -> std::string { return row_event_json(e); },
          [](const MessageEvent& e) -> std::string {
            return JsonObject().str("type", "message").boolean("own", e.own)
                .raw("msg", serialize(Frame{e.msg})).done();
          },
          [](const HistoryEvent& e) -> std::string {
            JsonObject o;
            o.str("type", "history").str("rid", e.rid).str("conv", e.conv).boolean("more", e.more);
            if (e.error) o.raw("error", error_json(*e.error));
            JsonArray msgs;
            for (const Msg& msg : e.msgs) msgs.raw(serialize(Frame{msg}));
            return o.raw("msgs", msgs.done()).done();
          },
          [](const auto& other) -> std::string { return plain_event_json(other); },
      },
      event);
}
std::string io_json(const IoAction& action) {
  return std::visit(
      Overloaded{
          [](const OpenSocket& a) -> std::string {
            return JsonObject().str("type", "open").num("conn", a.connection).done();
          },
          [](const WriteFrame& a) -> std::string {
            return JsonObject(32 + a.text.size()).str("type", "write").num("conn", a.connection)
                .str("text", a.text).done();
          },
          [](const CloseSocket& a) -> std::string {
            return JsonObject().str("type", "close").num("conn", a.connection).num("code", a.code).done();
          },
      },
      action);
}

std::optional<std::string> optional_device(const std::string& device) {
  if (device.empty()) return std::nullopt;
  return device;
}

}  // namespace

// One ClientSession and its randomness. Connection ids cross as doubles (they count sockets).
class WasmSession {
 public:
  WasmSession(std::string token, std::string device, double seed_high, double seed_low)
      : WasmSession(std::move(token), std::move(device), seed_high, seed_low, false) {}
  // provisional: hello.provisional (connect({provisional})): a relay's provisional msgs are rows.
  WasmSession(std::string token, std::string device, double seed_high, double seed_low,
              bool provisional)
      : random_(join_u32(seed_high, seed_low)),
        session_(config_with(provisional), std::move(token), optional_device(device), random_) {}

  void start(double now) { session_.start(to_time(now)); }
  void close(double now) { session_.close(to_time(now)); }
  void connect_now(double now) { session_.connect_now(to_time(now)); }
  void set_token(std::string token) { session_.set_token(std::move(token)); }
  void wake(double now) { session_.wake(to_time(now)); }
  void set_token_refresh(bool on) { session_.set_token_refresh(on); }
  bool token_fetched(std::string token, double now) {
    return session_.token_fetched(std::move(token), to_time(now));
  }
  void token_fetch_failed(double now, std::string reason) {
    session_.token_fetch_failed(to_time(now), reason);
  }

  void on_open(double conn, double now) { session_.on_open(connection(conn), to_time(now)); }
  void on_frame(double conn, std::string text, double now) {
    session_.on_frame(connection(conn), text, to_time(now));
  }
  // `code`: the WebSocket close code (CloseEvent.code), or -1 when there is none.
  void on_close(double conn, double now, double code) {
    std::optional<int> close_code;
    if (code >= 0 && code <= 65535) close_code = static_cast<int>(code);
    session_.on_close(connection(conn), to_time(now), close_code);
  }
  void on_timer(double now) { session_.on_timer(to_time(now)); }

  // body_json: JSON.stringify of the app's body, sent as this text. Returns the new message
  // id; a body the core refuses fails its row (a row event with the error).
  std::string send(std::string conv, std::string body_json, double now) {
    return session_.send(conv, JsonText{std::move(body_json)}, to_time(now));
  }
  // A send forwarded by another tab, with the id that tab made (message_id_for).
  std::string send_with_id(std::string conv, std::string body_json, double now, std::string id) {
    return session_.send(conv, JsonText{std::move(body_json)}, to_time(now), std::move(id));
  }

  void subscribe(std::string conv, double after, double now) {
    session_.subscribe(conv, to_optional_seq(after), to_time(now));
  }
  void unsubscribe(std::string conv, double now) { session_.unsubscribe(conv, to_time(now)); }
  void mark_read(std::string conv, double seq, double now) {
    if (auto s = to_optional_seq(seq)) session_.mark_read(conv, *s, to_time(now));
  }
  void set_typing(std::string conv, bool on, double now) {
    session_.set_typing(conv, on, to_time(now));
  }
  std::string request_history(std::string conv, double before, double after, double limit,
                              double now) {
    auto max = to_optional_seq(limit);
    return session_.request_history(conv, to_optional_seq(before), to_optional_seq(after),
                                    max ? static_cast<std::uint32_t>(*max) : 0, to_time(now));
  }
  bool retry(std::string conv, std::string id, double now) {
    return session_.retry(conv, id, to_time(now));
  }
  // An own row another tab queued that the imported outbox lacks; false if kept already or
  // its body is not JSON.
  bool requeue(std::string conv, std::string id, std::string body_json, double cts,
               std::string trace, double now) {
    auto body = parse_json_text(body_json);
    if (!body.ok()) return false;
    return session_.requeue(conv, id, std::move(body.value()), to_time(cts), std::move(trace),
                            to_time(now));
  }

  std::string take_io() {
    JsonArray out;
    for (const IoAction& action : session_.take_io()) out.raw(io_json(action));
    return out.done();
  }
  std::string take_events() {
    JsonArray out;
    for (const ClientEvent& event : session_.take_events()) out.raw(event_json(event));
    return out.done();
  }
  double next_deadline() const {
    auto deadline = session_.next_deadline();
    return deadline ? static_cast<double>(*deadline) : -1;
  }

  std::string export_state() const { return session_.export_state(); }
  // "" when imported, else the error's message.
  std::string import_state(std::string state, double now) {
    auto result = session_.import_state(state, to_time(now));
    return result.ok() ? std::string() : result.error().message;
  }

  std::string connection_state() const { return std::string(to_string(session_.connection_state())); }
  double cursor(std::string conv) const {
    auto seq = session_.cursor(conv);
    return seq ? static_cast<double>(*seq) : -1;
  }
  double unread(std::string conv) const { return static_cast<double>(session_.unread(conv)); }
  std::string present(std::string conv) const {
    JsonArray users;
    for (const auto& user : session_.present(conv)) users.str(user);
    return users.done();
  }
  std::string user() const { return session_.user(); }
  double outbox_size() const { return static_cast<double>(session_.outbox_size()); }

 private:
  static ConnectionId connection(double conn) { return static_cast<ConnectionId>(conn); }
  static ClientConfig config_with(bool provisional) {
    ClientConfig config;
    config.provisional = provisional;
    return config;
  }

  SeededRandom random_;
  ClientSession session_;
};

// One conversation's rows (the core's RowList) for a tab, leader or follower: rows and events
// cross as JSON text, in the shapes waymark.js uses (row_json, row_event_json, msg frames).
class WasmRowList {
 public:
  explicit WasmRowList(std::string conv) : list_(std::move(conv)) {}

  // A {type:"row"} event's JSON: the row afterwards, or "" when the text is no row event.
  std::string apply_row(std::string event_json) {
    auto event = row_event_from_json(event_json);
    if (!event || event->conv != list_.conv()) return {};
    return row_json(list_.apply(*event));
  }
  // A msg frame's JSON (a message event's msg): the row afterwards, or "".
  std::string apply_message(std::string msg_json, bool own) {
    auto msg = parse_msg(msg_json);
    if (!msg) return {};
    return row_json(list_.apply(MessageEvent{std::move(*msg), own}));
  }
  // A msg frame of a history page, for this tab's user: the row afterwards, or "".
  std::string add_history(std::string msg_json, std::string user) {
    auto msg = parse_msg(msg_json);
    if (!msg) return {};
    bool own = !user.empty() && msg->from == user;
    return row_json(list_.add_history(*msg, own));
  }
  bool restore(std::string row_text) {
    auto row = row_from_json(row_text);
    return row && row->conv == list_.conv() && list_.restore(std::move(*row));
  }
  bool replace(std::string row_text) {
    auto row = row_from_json(row_text);
    return row && row->conv == list_.conv() && list_.replace(std::move(*row));
  }
  std::string rows() const {
    JsonArray out;
    for (const Row* row : list_.ordered()) out.raw(row_json(*row));
    return out.done();
  }
  std::string row(std::string id) const {
    const Row* found = list_.find(id);
    return found && found->state ? row_json(*found) : std::string();
  }

 private:
  std::optional<Msg> parse_msg(const std::string& text) const {
    auto frame = parse_frame(text, Direction::from_edge, ParseLimits{static_cast<std::size_t>(-1)});
    if (!frame.ok()) return std::nullopt;
    const Msg* msg = std::get_if<Msg>(&frame.value());
    if (!msg || msg->conv != list_.conv()) return std::nullopt;
    return *msg;
  }

  RowList list_;
};

// A message id from the core's rule, with randomness the calling tab drew itself.
std::string message_id_for(double now, double a_high, double a_low, double b_high, double b_low) {
  FixedDraws draws(join_u32(a_high, a_low), join_u32(b_high, b_low));
  return make_message_id(to_time(now), draws);
}

bool valid_conv(std::string conv) { return is_valid_conv(conv); }
// The core's sentence for a bad name, "" when it is valid.
std::string conv_problem(std::string name) { return conv_name_problem(name).value_or(""); }
std::string user_problem(std::string name) { return user_name_problem(name).value_or(""); }
std::string identity_key(std::string token) { return local_identity_key(token); }
bool state_passed(std::string state, std::string step) {
  auto s = row_state_from_string(state), t = row_state_from_string(step);
  return s && t && row_state_passed(*s, *t);
}

}  // namespace waymark

EMSCRIPTEN_BINDINGS(waymark) {
  using namespace emscripten;
  using waymark::WasmSession;
  class_<WasmSession>("WasmSession")
      .constructor<std::string, std::string, double, double>()
      .constructor<std::string, std::string, double, double, bool>()
      .function("start", &WasmSession::start)
      .function("close", &WasmSession::close)
      .function("connectNow", &WasmSession::connect_now)
      .function("setToken", &WasmSession::set_token)
      .function("wake", &WasmSession::wake)
      .function("setTokenRefresh", &WasmSession::set_token_refresh)
      .function("tokenFetched", &WasmSession::token_fetched)
      .function("tokenFetchFailed", &WasmSession::token_fetch_failed)
      .function("onOpen", &WasmSession::on_open)
      .function("onFrame", &WasmSession::on_frame)
      .function("onClose", &WasmSession::on_close)
      .function("onTimer", &WasmSession::on_timer)
      .function("send", &WasmSession::send)
      .function("sendWithId", &WasmSession::send_with_id)
      .function("subscribe", &WasmSession::subscribe)
      .function("unsubscribe", &WasmSession::unsubscribe)
      .function("markRead", &WasmSession::mark_read)
      .function("setTyping", &WasmSession::set_typing)
      .function("requestHistory", &WasmSession::request_history)
      .function("retry", &WasmSession::retry)
      .function("requeue", &WasmSession::requeue)
      .function("takeIo", &WasmSession::take_io)
      .function("takeEvents", &WasmSession::take_events)
      .function("nextDeadline", &WasmSession::next_deadline)
      .function("exportState", &WasmSession::export_state)
      .function("importState", &WasmSession::import_state)
      .function("connectionState", &WasmSession::connection_state)
      .function("cursor", &WasmSession::cursor)
      .function("unread", &WasmSession::unread)
      .function("present", &WasmSession::present)
      .function("user", &WasmSession::user)
      .function("outboxSize", &WasmSession::outbox_size);
  function("messageIdFor", &waymark::message_id_for);
  function("isValidConv", &waymark::valid_conv);
  function("convProblem", &waymark::conv_problem);
  function("userProblem", &waymark::user_problem);
  function("localIdentityKey", &waymark::identity_key);
  function("rowStatePassed", &waymark::state_passed);
  using waymark::WasmRowList;
  class_<WasmRowList>("RowList")
      .constructor<std::string>()
      .function("applyRow", &WasmRowList::apply_row)
      .function("applyMessage", &WasmRowList::apply_message)
      .function("addHistory", &WasmRowList::add_history)
      .function("restore", &WasmRowList::restore)
      .function("replace", &WasmRowList::replace)
      .function("rows", &WasmRowList::rows)
      .function("row", &WasmRowList::row);
}
