// client_session_test: ClientSession driven as a host drives it (OpenSocket -> on_open -> frames
// -> on_frame), on a manual clock, against edge frames crafted by hand from protocol.md.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waymark/client_session.h"
#include "waymark/codec.h"
#include "waymark/identifiers.h"
#include "waymark/row_list.h"
#include "json_body.h"

namespace json = boost::json;
using waymark::testing::body_of;
using namespace waymark;

namespace {

constexpr TimeMs kStart = 1'700'000'000'000;
constexpr std::size_t kNoLimit = static_cast<std::size_t>(-1);

// ---- frames an edge would send ----------------------------------------------------------

Welcome welcome_frame(const std::string& user = "alice", std::int64_t hb = 15000,
                      std::int64_t max_frame = 65536) {
  Welcome w;
  w.session = "session-1";
  w.node = "edge-test";
  w.user = user;
  w.ts = kStart;
  w.hb = hb;
  w.max_frame = max_frame;
  return w;
}

Msg msg_frame(const std::string& conv, Seq seq, const std::string& id, const std::string& from,
              const std::string& text = "hi") {
  Msg m;
  m.conv = conv;
  m.seq = seq;
  m.id = id;
  m.from = from;
  m.ts = kStart;
  m.body = body_of(json::object{{"text", text}});
  return m;
}

Ack ack_frame(const std::string& conv, const std::string& id, std::optional<Seq> seq,
              bool dup = false) {
  Ack a;
  a.conv = conv;
  a.id = id;
  a.seq = seq;
  a.ts = kStart;
  a.dup = dup;
  return a;
}

Nack nack_frame(const std::string& conv, const std::string& id, ErrorCode code, bool retry) {
  Nack n;
  n.conv = conv;
  n.id = id;
  n.code = code;
  n.msg = "refused";
  n.retry = retry;
  return n;
}

Subd subd_frame(const std::string& conv, Seq head, Seq read = 0,
                std::vector<std::string> present = {}, bool more = false) {
  Subd s;
  s.conv = conv;
  s.head = head;
  s.read = read;
  s.present = std::move(present);
  s.more = more;
  return s;
}

Page page_frame(const std::string& conv, std::vector<Msg> msgs, bool more,
                std::optional<std::string> rid) {
  Page p;
  p.conv = conv;
  p.msgs = std::move(msgs);
  p.more = more;
  p.rid = std::move(rid);
  return p;
}

Rcpt rcpt_frame(const std::string& conv, const std::string& user, Seq seq, ReceiptKind kind) {
  Rcpt r;
  r.conv = conv;
  r.user = user;
  r.seq = seq;
  r.kind = kind;
  return r;
}

Typing typing_frame(const std::string& conv, const std::string& user, bool on) {
  Typing t;
  t.conv = conv;
  t.user = user;
  t.on = on;
  return t;
}

Err err_frame(ErrorCode code, const std::string& message, std::optional<std::string> rid = {}) {
  Err e;
  e.code = code;
  e.msg = message;
  e.rid = std::move(rid);
  return e;
}

// ---- filters ----------------------------------------------------------------------------

template <typename T>
std::vector<T> only(const std::vector<ClientEvent>& events) {
  std::vector<T> out;
  for (const auto& event : events)
    if (const T* e = std::get_if<T>(&event)) out.push_back(*e);
  return out;
}

template <typename T>
std::vector<T> only(const std::vector<Frame>& frames) {
  std::vector<T> out;
  for (const auto& frame : frames)
    if (const T* f = std::get_if<T>(&frame)) out.push_back(*f);
  return out;
}

std::vector<RowEvent> rows_of(const std::vector<ClientEvent>& events, const std::string& id) {
  std::vector<RowEvent> out;
  for (const auto& row : only<RowEvent>(events))
    if (row.id == id) out.push_back(row);
  return out;
}

std::vector<Seq> seqs_of(const std::vector<MessageEvent>& messages) {
  std::vector<Seq> out;
  for (const auto& m : messages) out.push_back(m.msg.seq.value_or(0));
  return out;
}

// ---- the host -----------------------------------------------------------------------------

// Plays the host: performs (records) the session's I/O, hands it transport events and timer
// wakeups on a manual clock, and parses every written frame as the edge would.
struct Harness {
  explicit Harness(std::uint64_t seed = 1, ClientConfig config = {},
                   std::string token = "dev:alice")
      : random(seed), session(config, std::move(token), std::string("tab-1"), random) {}

  SeededRandom random;
  ClientSession session;
  TimeMs now = kStart;
  ConnectionId conn = 0;  // the socket the latest OpenSocket named
  std::vector<ConnectionId> opened;
  std::vector<CloseSocket> closed;
  std::vector<std::pair<ConnectionId, Frame>> written;
  std::vector<ClientEvent> events;

  void collect() {
    for (auto& action : session.take_io()) {
      if (const auto* open = std::get_if<OpenSocket>(&action)) {
        REQUIRE(open->connection != 0);
        opened.push_back(open->connection);
        conn = open->connection;
      } else if (const auto* write = std::get_if<WriteFrame>(&action)) {
        auto parsed = parse_frame(write->text, Direction::from_client, ParseLimits{kNoLimit});
        INFO("written: " << write->text);
        REQUIRE(parsed.ok());
        written.emplace_back(write->connection, std::move(parsed.value()));
      } else {
        closed.push_back(std::get<CloseSocket>(action));
      }
    }
    for (auto& event : session.take_events()) events.push_back(std::move(event));
  }

  // Frames written since the last call; every one must be on the current socket.
  std::vector<Frame> frames() {
    collect();
    std::vector<Frame> out;
    for (auto& [connection, frame] : written) {
      CHECK(connection == conn);
      out.push_back(std::move(frame));
    }
    written.clear();
    return out;
  }
  std::vector<ClientEvent> take_events() {
    collect();
    std::vector<ClientEvent> out;
    out.swap(events);
    return out;
  }
  std::vector<ConnectionId> take_opened() {
    collect();
    std::vector<ConnectionId> out;
    out.swap(opened);
    return out;
  }
  std::vector<CloseSocket> take_closed() {
    collect();
    std::vector<CloseSocket> out;
    out.swap(closed);
    return out;
  }
  void clear() {
    collect();
    opened.clear();
    closed.clear();
    written.clear();
    events.clear();
  }

  void start() {
    session.start(now);
    collect();
  }
  void open() {
    session.on_open(conn, now);
    collect();
  }
  void feed(const Frame& frame) { feed_text(serialize(frame)); }
  void feed_text(std::string_view text) {
    session.on_frame(conn, text, now);
    collect();
  }
  void feed_on(ConnectionId connection, const Frame& frame) {
    session.on_frame(connection, serialize(frame), now);
    collect();
  }
  void close_socket() {
    session.on_close(conn, now);
    collect();
  }
  void timer_at(TimeMs t) {
    now = t;
    session.on_timer(now);
    collect();
  }
  // Fires every deadline up to `t` in order, as a host's timer would, then sets the clock to t.
  void run_until(TimeMs t) {
    for (int guard = 0;; ++guard) {
      REQUIRE(guard < 100000);
      auto deadline = session.next_deadline();
      if (!deadline || *deadline > t) break;
      now = std::max(now, *deadline);
      session.on_timer(now);
      collect();
    }
    now = t;
  }

  // OpenSocket -> on_open -> welcome; returns the frames written on the way (hello first).
  std::vector<Frame> handshake(const std::string& user = "alice", std::int64_t hb = 15000,
                               std::int64_t max_frame = 65536) {
    open();
    feed(welcome_frame(user, hb, max_frame));
    return frames();
  }
  std::vector<Frame> connect(const std::string& user = "alice", std::int64_t hb = 15000,
                             std::int64_t max_frame = 65536) {
    start();
    REQUIRE(take_opened().size() == 1);
    auto out = handshake(user, hb, max_frame);
    events.clear();
    return out;
  }
  // Waits out the reconnect delay, then handshakes the new socket.
  std::vector<Frame> reconnect(const std::string& user = "alice") {
    clear();  // what was written on the old socket is not part of the answer
    auto deadline = session.next_deadline();
    REQUIRE(deadline);
    timer_at(*deadline);
    REQUIRE(take_opened().size() == 1);
    auto out = handshake(user);
    events.clear();
    return out;
  }
  // subscribe + subd, online: the conversation is synced at `head`.
  void subscribed(const std::string& conv, Seq head, Seq read = 0) {
    session.subscribe(conv, std::nullopt, now);
    auto subs = only<Sub>(frames());
    REQUIRE(subs.size() == 1);
    feed(subd_frame(conv, head, read));
    clear();
  }
  // A send that the edge acks with `seq`.
  std::string sent_and_acked(const std::string& conv, Seq seq, const std::string& text = "x") {
    std::string id = session.send(conv, body_of(json::object{{"text", text}}), now);
    REQUIRE(only<Send>(frames()).size() == 1);
    feed(ack_frame(conv, id, seq));
    clear();
    return id;
  }
};

}  // namespace

// ---- connecting ---------------------------------------------------------------------------

TEST_CASE("hello is the first frame and carries token, device and every cursor; the outbox waits for welcome",
          "[client_session]") {
  Harness h;
  h.session.subscribe("ops", Seq{41}, h.now);
  h.session.subscribe("dev", std::nullopt, h.now);
  std::string first = h.session.send("ops", body_of(json::object{{"text", "one"}}), h.now);
  std::string second = h.session.send("ops", body_of(json::object{{"text", "two"}}), h.now);
  CHECK(h.frames().empty());  // no socket yet

  h.start();
  CHECK(h.take_opened() == std::vector<ConnectionId>{h.conn});
  auto connecting = only<ConnectionEvent>(h.take_events());
  REQUIRE(connecting.size() == 1);
  CHECK(connecting[0].state == ConnectionState::connecting);
  CHECK(h.session.connection_state() == ConnectionState::connecting);
  CHECK(h.frames().empty());  // nothing until the socket is open

  h.now += 40;
  h.open();
  auto hello_frames = h.frames();
  REQUIRE(hello_frames.size() == 1);
  const Hello* hello = std::get_if<Hello>(&hello_frames[0]);
  REQUIRE(hello);
  CHECK(hello->token == "dev:alice");
  CHECK(hello->device == std::optional<std::string>("tab-1"));
  std::map<std::string, std::optional<Seq>> subs;
  for (const auto& sub : hello->subs) subs[sub.conv] = sub.after;
  CHECK(subs == std::map<std::string, std::optional<Seq>>{{"dev", std::nullopt}, {"ops", Seq{41}}});

  // A frame before the welcome (a pong) does not release the outbox.
  h.feed(Pong{h.now, std::nullopt});
  CHECK(h.frames().empty());
  CHECK(h.session.connection_state() == ConnectionState::connecting);

  h.feed(welcome_frame());
  auto online = only<ConnectionEvent>(h.take_events());
  REQUIRE(online.size() == 1);
  CHECK(online[0].state == ConnectionState::online);
  CHECK(h.session.connection_state() == ConnectionState::online);
  CHECK(h.session.user() == "alice");
  auto sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 2);
  CHECK(sends[0].id == first);
  CHECK(sends[1].id == second);
  CHECK(sends[0].body == body_of(json::object{{"text", "one"}}));
  CHECK(sends[1].body == body_of(json::object{{"text", "two"}}));
}

// ---- sending ------------------------------------------------------------------------------

TEST_CASE("send returns an id at once, queues the row, and the ack sequences it", "[client_session]") {
  Harness h(7);
  const TimeMs sent_at = h.now;
  std::string id = h.session.send("ops", body_of(json::object{{"text", "db failover done"}}), h.now);
  CHECK(id.size() == 26);
  CHECK(is_valid_message_id(id));

  auto events = h.take_events();
  auto rows = rows_of(events, id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::queued);
  CHECK(rows[0].own);
  CHECK(rows[0].conv == "ops");
  CHECK_FALSE(rows[0].seq);
  REQUIRE(rows[0].body);
  CHECK(*rows[0].body == body_of(json::object{{"text", "db failover done"}}));
  REQUIRE(rows[0].trace);
  CHECK(is_valid_traceparent(*rows[0].trace));
  CHECK(only<StateChangedEvent>(events).size() == 1);
  CHECK(h.session.outbox_size() == 1);

  h.now += 500;
  auto frames = h.connect();
  auto sends = only<Send>(frames);
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].conv == "ops");
  CHECK(sends[0].id == id);
  CHECK(sends[0].trace == rows[0].trace);
  CHECK(sends[0].cts == std::optional<TimeMs>(sent_at));
  CHECK(sends[0].body == body_of(json::object{{"text", "db failover done"}}));

  h.feed(ack_frame("ops", id, Seq{44}));
  events = h.take_events();
  rows = rows_of(events, id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::sequenced);
  CHECK(rows[0].seq == std::optional<Seq>(44));
  CHECK(rows[0].own);
  CHECK(h.session.outbox_size() == 0);
  CHECK(only<StateChangedEvent>(events).size() == 1);
  CHECK(h.frames().empty());  // nothing to resend
}

TEST_CASE("a send while online goes out at once; an unacked send is resent with the same id after a reconnect",
          "[client_session]") {
  Harness h(8);
  h.connect();
  std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
  auto sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == id);

  h.close_socket();  // lost before the ack
  CHECK(h.session.outbox_size() == 1);
  auto resent = only<Send>(h.reconnect());
  REQUIRE(resent.size() == 1);
  CHECK(resent[0].id == id);
  CHECK(resent[0].trace == sends[0].trace);
  CHECK(resent[0].cts == sends[0].cts);
}

TEST_CASE("no more than max_in_flight sends are unacked on one connection", "[client_session]") {
  ClientConfig config;
  config.max_in_flight = 2;
  Harness h(9, config);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(h.session.send("ops", body_of(json::object{{"n", i}}), h.now));
  auto sends = only<Send>(h.connect());
  REQUIRE(sends.size() == 2);
  CHECK(sends[0].id == ids[0]);
  CHECK(sends[1].id == ids[1]);
  h.feed(ack_frame("ops", ids[0], Seq{1}));
  sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == ids[2]);
}

TEST_CASE("the in-flight window: an ack, a nack and a reconnect each free what they answer",
          "[client_session]") {
  ClientConfig config;
  config.max_in_flight = 2;
  Harness h(10, config);
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(h.session.send("ops", body_of(json::object{{"n", i}}), h.now));
  auto sends = only<Send>(h.connect());
  REQUIRE(sends.size() == 2);

  // A retryable nack frees its slot at once (the next queued send goes out) and the nacked
  // send waits out its backoff: the window stays at two on the wire, never three.
  h.feed(nack_frame("ops", ids[0], ErrorCode::unavailable, true));
  sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == ids[2]);
  // A repeated ack of one in flight frees one slot, not two.
  h.feed(ack_frame("ops", ids[1], Seq{1}));
  h.feed(ack_frame("ops", ids[1], Seq{1}));
  sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == ids[3]);

  // A new connection has nothing in flight: the first two unanswered go out again, in order
  // (the nacked one too, its backoff waited out first).
  h.timer_at(h.now + 60000);
  CHECK(only<Send>(h.frames()).empty());  // its retry is due, but the window is full
  h.close_socket();
  sends = only<Send>(h.reconnect());
  REQUIRE(sends.size() == 2);
  CHECK(sends[0].id == ids[0]);
  CHECK(sends[1].id == ids[2]);
  h.feed(ack_frame("ops", ids[0], Seq{2}));
  h.feed(ack_frame("ops", ids[2], Seq{3}));
  sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 2);
  CHECK(sends[0].id == ids[3]);
  CHECK(sends[1].id == ids[4]);
  // A permanent refusal frees its slot too; the browser keeps the failed entry for a retry.
  h.feed(nack_frame("ops", ids[3], ErrorCode::forbidden, false));
  h.feed(ack_frame("ops", ids[4], Seq{4}));
  CHECK(only<Send>(h.frames()).empty());
  CHECK(h.session.outbox_size() == 1);
}

TEST_CASE("duplicate acks and a msg carrying the own id resolve a send exactly once", "[client_session]") {
  Harness h(11);
  h.connect();
  h.subscribed("ops", 0);

  SECTION("a repeated ack, and an ack with dup:true, change nothing") {
    std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
    h.clear();
    h.feed(ack_frame("ops", id, Seq{1}));
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::sequenced);
    CHECK(rows[0].seq == std::optional<Seq>(1));

    h.feed(ack_frame("ops", id, Seq{1}));
    h.feed(ack_frame("ops", id, Seq{1}, true));
    CHECK(rows_of(h.take_events(), id).empty());
    CHECK(h.session.outbox_size() == 0);

    // The echo of the own message is delivered, but the row is not sequenced a second time.
    h.feed(msg_frame("ops", 1, id, "alice"));
    auto events = h.take_events();
    auto messages = only<MessageEvent>(events);
    REQUIRE(messages.size() == 1);
    CHECK(messages[0].own);
    CHECK(rows_of(events, id).empty());
    CHECK(only<UnreadEvent>(events).empty());  // own messages are never unread
    CHECK(h.session.unread("ops") == 0);
  }

  SECTION("the first ack may be dup:true (the send was stored before a reconnect)") {
    std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
    h.clear();
    h.feed(ack_frame("ops", id, Seq{1}, true));
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::sequenced);
    CHECK(rows[0].seq == std::optional<Seq>(1));
    CHECK(h.session.outbox_size() == 0);
  }

  SECTION("a msg with the own id before the ack resolves the send") {
    std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
    h.clear();
    h.feed(msg_frame("ops", 1, id, "alice", "a"));
    auto events = h.take_events();
    auto rows = rows_of(events, id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::sequenced);
    CHECK(rows[0].seq == std::optional<Seq>(1));
    REQUIRE(only<MessageEvent>(events).size() == 1);
    CHECK(only<MessageEvent>(events)[0].own);
    CHECK(h.session.outbox_size() == 0);

    h.feed(ack_frame("ops", id, Seq{1}));  // the late ack
    CHECK(rows_of(h.take_events(), id).empty());

    h.close_socket();  // nothing is left to resend
    CHECK(only<Send>(h.reconnect()).empty());
  }
}

TEST_CASE("an ack without seq (a relaying edge) marks the row stored; the msg sequences it",
          "[client_session]") {
  Harness h(12);
  h.connect();
  h.subscribed("ops", 0);
  std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
  h.clear();
  h.feed(ack_frame("ops", id, std::nullopt));
  auto rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::stored);
  CHECK(h.session.outbox_size() == 0);

  h.feed(msg_frame("ops", 1, id, "alice"));
  rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::sequenced);
  CHECK(rows[0].seq == std::optional<Seq>(1));
}

TEST_CASE("an own provisional msg whose ack was lost answers the send: stored, never queued again",
          "[client_session][relay]") {
  ClientConfig config;
  config.provisional = true;
  Harness h(13, config);
  h.connect();
  h.subscribed("ops", 0);
  std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
  h.clear();
  // The relay committed it, its ack was lost; the provisional copy (no seq) comes instead.
  Msg provisional = msg_frame("ops", 1, id, "alice");
  provisional.seq.reset();
  provisional.provisional = true;
  h.feed(provisional);
  auto rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::stored);
  CHECK(h.session.outbox_size() == 0);  // stored at the relay: nothing to resend
  // A late nack of a resend (a failed commit there) no longer turns the row back to queued.
  h.feed(nack_frame("ops", id, ErrorCode::unavailable, true));
  CHECK(rows_of(h.take_events(), id).empty());
  h.feed(msg_frame("ops", 1, id, "alice"));
  rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::sequenced);
  // Someone else's provisional msg is a stored row that is not own, shown once.
  Msg other = msg_frame("ops", 2, "01HF7YB36EWZEAH7RH2FF4ETVQ", "bob");
  other.seq.reset();
  other.provisional = true;
  h.feed(other);
  h.feed(other);
  rows = rows_of(h.take_events(), other.id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::stored);
  CHECK_FALSE(rows[0].own);
}

TEST_CASE("others' provisional msgs: rows with body, sender and times, in place once sequenced",
          "[client_session][relay]") {
  ClientConfig config;
  config.provisional = true;
  Harness h(14, config);
  auto hello = only<Hello>(h.connect());
  REQUIRE(hello.size() == 1);
  CHECK(hello[0].provisional);
  h.subscribed("ops", 0);
  RowList list("ops");
  auto apply = [&list](const std::vector<ClientEvent>& events) {
    for (const auto& event : events) {
      if (const auto* row = std::get_if<RowEvent>(&event)) list.apply(*row);
      if (const auto* message = std::get_if<MessageEvent>(&event)) list.apply(*message);
    }
  };
  auto ordered_ids = [&list] {
    std::vector<std::string> out;
    for (const Row* row : list.ordered()) out.push_back(row->id);
    return out;
  };
  auto provisional = [](Seq seq, const std::string& id, const std::string& from,
                        const std::string& text) {
    Msg m = msg_frame("ops", seq, id, from, text);
    m.seq.reset();
    m.provisional = true;
    m.cts = kStart - 5;
    m.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    return m;
  };
  const std::string b1 = "01HF7YB36EWZEAH7RH2FF4ETV1", c1 = "01HF7YB36EWZEAH7RH2FF4ETV2";
  const std::string a1 = "01HF7YB36EWZEAH7RH2FF4ETV3";
  h.feed(msg_frame("ops", 1, a1, "dave", "sequenced first"));
  h.feed(provisional(0, c1, "carol", "carol's"));
  h.feed(provisional(0, b1, "bob", "bob's"));
  auto events = h.take_events();
  CHECK(only<MessageEvent>(events).size() == 1);  // a provisional msg is no MessageEvent
  auto rows = rows_of(events, b1);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::stored);
  CHECK_FALSE(rows[0].seq);
  CHECK_FALSE(rows[0].own);
  REQUIRE(rows[0].body);
  CHECK(*rows[0].body == body_of(json::object{{"text", "bob's"}}));
  CHECK(rows[0].from == std::optional<std::string>("bob"));
  CHECK(rows[0].cts == std::optional<TimeMs>(kStart - 5));
  CHECK(rows[0].trace);
  CHECK(rows[0].at == std::optional<TimeMs>(h.now));
  CHECK(h.session.unread("ops") == 1);  // only the sequenced one counts
  CHECK(h.session.cursor("ops") == std::optional<Seq>(1));
  apply(events);
  // Provisional rows after the sequenced ones, in arrival order.
  CHECK(ordered_ids() == std::vector<std::string>{a1, c1, b1});
  CHECK(row_is_provisional(*list.find(b1)));
  CHECK(list.find(b1)->from == "bob");
  CHECK_FALSE(row_is_provisional(*list.find(a1)));

  // The root ordered bob's before carol's: each row takes its seq's place, shown once.
  h.feed(msg_frame("ops", 2, b1, "bob", "bob's"));
  events = h.take_events();
  rows = rows_of(events, b1);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::delivered);
  CHECK(rows[0].seq == std::optional<Seq>(2));
  apply(events);
  CHECK(ordered_ids() == std::vector<std::string>{a1, b1, c1});
  CHECK_FALSE(row_is_provisional(*list.find(b1)));
  CHECK(row_is_provisional(*list.find(c1)));
  h.feed(msg_frame("ops", 3, c1, "carol", "carol's"));
  apply(h.take_events());
  CHECK(ordered_ids() == std::vector<std::string>{a1, b1, c1});
  CHECK(list.find(c1)->seq == std::optional<Seq>(3));
  CHECK(list.find(c1)->state == RowState::delivered);
  CHECK(list.size() == 3);

  // A provisional copy again after a reconnect (the relay repeats its staged sends on every
  // sub) is not a new row, and neither is a late one for a row already sequenced.
  h.feed(provisional(0, b1, "bob", "bob's"));
  for (const auto& row : rows_of(h.take_events(), b1)) list.apply(row);
  CHECK(list.find(b1)->state == RowState::delivered);
  CHECK(ordered_ids() == std::vector<std::string>{a1, b1, c1});

  // A conversation not subscribed: nothing, and a copy once it is subscribed shows.
  Msg elsewhere = provisional(0, "01HF7YB36EWZEAH7RH2FF4ETV4", "bob", "x");
  elsewhere.conv = "sales";
  h.feed(elsewhere);
  CHECK(rows_of(h.take_events(), elsewhere.id).empty());
  h.subscribed("sales", 0);
  h.feed(elsewhere);
  rows = rows_of(h.take_events(), elsewhere.id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].conv == "sales");
}

TEST_CASE("a session that did not opt in says nothing of provisional in hello",
          "[client_session][relay]") {
  Harness h(15);
  auto hello = only<Hello>(h.connect());
  REQUIRE(hello.size() == 1);
  CHECK_FALSE(hello[0].provisional);
}

TEST_CASE("nack retry:true backs off and resends the same id; retry:false fails until retry()",
          "[client_session]") {
  ClientConfig config;
  config.send_retry_base_ms = 1000;
  config.send_retry_cap_ms = 3000;
  Harness h(21, config);
  h.connect();
  std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
  auto first = only<Send>(h.frames());
  REQUIRE(first.size() == 1);
  h.take_events();

  SECTION("retry:true") {
    for (std::uint32_t attempt = 0; attempt < 4; ++attempt) {
      INFO("attempt " << attempt);
      const TimeMs nacked_at = h.now;
      h.feed(nack_frame("ops", id, ErrorCode::unavailable, true));
      auto rows = rows_of(h.take_events(), id);
      REQUIRE(rows.size() == 1);
      CHECK(rows[0].state == RowState::queued);
      REQUIRE(rows[0].error);
      CHECK(rows[0].error->code == ErrorCode::unavailable);
      CHECK(h.session.outbox_size() == 1);

      auto resent = only<Send>(h.frames());
      auto deadline = h.session.next_deadline();
      REQUIRE(deadline);
      if (resent.empty()) {
        // Not before the backoff deadline, which lies within the jitter window.
        CHECK(*deadline > nacked_at);
        CHECK(*deadline - nacked_at <= std::min<TimeMs>(3000, 1000 << attempt));
        h.timer_at(*deadline - 1);
        CHECK(only<Send>(h.frames()).empty());
        h.timer_at(*deadline);
        resent = only<Send>(h.frames());
      }
      REQUIRE(resent.size() == 1);
      CHECK(resent[0].id == id);
      CHECK(resent[0].trace == first[0].trace);
    }
    h.feed(ack_frame("ops", id, Seq{5}));
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::sequenced);
    CHECK(h.session.outbox_size() == 0);
  }

  SECTION("retry:false") {
    h.feed(nack_frame("ops", id, ErrorCode::forbidden, false));
    auto events = h.take_events();
    auto rows = rows_of(events, id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::failed);
    REQUIRE(rows[0].error);
    CHECK(rows[0].error->code == ErrorCode::forbidden);
    CHECK(only<StateChangedEvent>(events).size() == 1);
    CHECK(h.session.outbox_size() == 1);  // kept for the retry button

    // Never resent on this connection, nor after a reconnect.
    for (int i = 0; i < 10; ++i) {
      h.feed(Pong{h.now, std::nullopt});
      h.run_until(h.now + 14000);
    }
    CHECK(only<Send>(h.frames()).empty());
    h.close_socket();
    CHECK(only<Send>(h.reconnect()).empty());
    CHECK(rows_of(h.take_events(), id).empty());

    CHECK_FALSE(h.session.retry("ops", "no-such-id", h.now));
    CHECK_FALSE(h.session.retry("other", id, h.now));
    CHECK(h.session.retry("ops", id, h.now));
    rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::queued);
    CHECK_FALSE(rows[0].error);
    auto resent = only<Send>(h.frames());
    REQUIRE(resent.size() == 1);
    CHECK(resent[0].id == id);
    CHECK_FALSE(h.session.retry("ops", id, h.now));  // not failed any more

    h.feed(ack_frame("ops", id, Seq{3}));
    rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::sequenced);
    CHECK(h.session.outbox_size() == 0);
  }
}

TEST_CASE("a send over max_frame fails at once as too_large and is never written", "[client_session]") {
  Harness h(31);

  SECTION("against the welcome's max_frame") {
    h.connect("alice", 15000, 1024);
    std::string big(2000, 'x');
    std::string id = h.session.send("ops", body_of(json::object{{"text", big}}), h.now);
    CHECK(is_valid_message_id(id));
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::failed);
    REQUIRE(rows[0].error);
    CHECK(rows[0].error->code == ErrorCode::too_large);
    CHECK(h.frames().empty());
    CHECK(h.session.outbox_size() == 0);

    std::string small(800, 'x');  // a frame that fits is still sent
    std::string ok = h.session.send("ops", body_of(json::object{{"text", small}}), h.now);
    auto sends = only<Send>(h.frames());
    REQUIRE(sends.size() == 1);
    CHECK(sends[0].id == ok);
  }

  SECTION("against the default before any welcome") {
    std::string id = h.session.send("ops", body_of(json::object{{"text", std::string(70000, 'x')}}), h.now);
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::failed);
    REQUIRE(rows[0].error);
    CHECK(rows[0].error->code == ErrorCode::too_large);
    CHECK(h.session.outbox_size() == 0);
    CHECK(only<Send>(h.connect()).empty());
  }

  SECTION("queued offline, then the welcome announces a smaller max_frame") {
    // Writing it would make the edge close the socket with 1009 on every reconnect.
    std::string id = h.session.send("ops", body_of(json::object{{"text", std::string(2000, 'x')}}), h.now);
    h.take_events();
    h.start();
    CHECK(only<Send>(h.handshake("alice", 15000, 1024)).empty());
    auto rows = rows_of(h.take_events(), id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::failed);
    REQUIRE(rows[0].error);
    CHECK(rows[0].error->code == ErrorCode::too_large);
    CHECK(h.session.outbox_size() == 1);  // kept as failed, like any refused row
    h.close_socket();
    CHECK(only<Send>(h.reconnect()).empty());
  }
}

// ---- receiving ----------------------------------------------------------------------------

TEST_CASE("msgs are delivered in seq order exactly once; a gap is filled with hist", "[client_session]") {
  Harness h(41);
  h.session.subscribe("ops", std::nullopt, h.now);
  auto frames = h.connect();
  auto hello = only<Hello>(frames);
  REQUIRE(hello.size() == 1);
  REQUIRE(hello[0].subs.size() == 1);
  CHECK_FALSE(hello[0].subs[0].after);  // live from the head

  std::vector<ClientEvent> all;
  auto keep = [&](std::vector<ClientEvent> events) {
    all.insert(all.end(), events.begin(), events.end());
    return events;
  };

  h.feed(subd_frame("ops", 0));
  keep(h.take_events());
  CHECK(h.session.cursor("ops") == std::optional<Seq>(0));

  h.feed(msg_frame("ops", 1, "m1", "bob"));
  auto events = keep(h.take_events());
  CHECK(seqs_of(only<MessageEvent>(events)) == std::vector<Seq>{1});
  CHECK_FALSE(only<MessageEvent>(events)[0].own);
  auto row = rows_of(events, "m1");
  REQUIRE(row.size() == 1);
  CHECK(row[0].state == RowState::delivered);
  CHECK_FALSE(row[0].own);
  h.frames();

  h.feed(msg_frame("ops", 1, "m1", "bob"));  // a repeat
  CHECK(only<MessageEvent>(keep(h.take_events())).empty());

  h.feed(msg_frame("ops", 3, "m3", "bob"));  // 2 is missing
  CHECK(only<MessageEvent>(keep(h.take_events())).empty());
  frames = h.frames();
  auto hists = only<Hist>(frames);
  REQUIRE(hists.size() == 1);
  CHECK(hists[0].conv == "ops");
  CHECK(hists[0].after == std::optional<Seq>(1));
  CHECK_FALSE(hists[0].before);
  CHECK(hists[0].limit == std::optional<std::uint32_t>(1));
  REQUIRE(hists[0].rid);
  CHECK(only<Rcpt>(frames).empty());  // nothing new is contiguous yet

  // Another 3 and a page answering some other request do not fill the gap.
  h.feed(msg_frame("ops", 3, "m3", "bob"));
  h.feed(page_frame("ops", {msg_frame("ops", 2, "m2", "bob")}, false, std::string("not-ours")));
  CHECK(only<MessageEvent>(keep(h.take_events())).empty());
  CHECK(h.session.cursor("ops") == std::optional<Seq>(1));

  h.feed(page_frame("ops", {msg_frame("ops", 2, "m2", "bob")}, false, hists[0].rid));
  events = keep(h.take_events());
  CHECK(seqs_of(only<MessageEvent>(events)) == std::vector<Seq>{2, 3});
  CHECK(h.session.cursor("ops") == std::optional<Seq>(3));
  frames = h.frames();
  CHECK(only<Hist>(frames).empty());  // nothing missing any more
  auto receipts = only<Rcpt>(frames);
  REQUIRE(receipts.size() == 1);
  CHECK(receipts[0].kind == ReceiptKind::delivered);
  CHECK(receipts[0].seq == 3);

  h.feed(msg_frame("ops", 2, "m2", "bob"));
  h.feed(msg_frame("ops", 3, "m3", "bob"));
  h.feed(msg_frame("ops", 4, "m4", "bob"));
  events = keep(h.take_events());
  CHECK(seqs_of(only<MessageEvent>(events)) == std::vector<Seq>{4});

  // Over the whole run: each seq once, in order, and the cursor only ever moved forward.
  CHECK(seqs_of(only<MessageEvent>(all)) == std::vector<Seq>{1, 2, 3, 4});
  std::vector<Seq> cursors;
  for (const auto& c : only<CursorEvent>(all)) {
    CHECK(c.conv == "ops");
    cursors.push_back(c.seq);
  }
  CHECK(cursors == std::vector<Seq>{0, 1, 2, 3, 4});
}

TEST_CASE("a gap fill that goes unanswered is asked again after request_timeout_ms", "[client_session]") {
  Harness h(42);
  h.connect();
  h.subscribed("ops", 1);
  h.feed(msg_frame("ops", 4, "m4", "bob"));
  auto hists = only<Hist>(h.frames());
  REQUIRE(hists.size() == 1);
  CHECK(hists[0].after == std::optional<Seq>(1));
  CHECK(hists[0].limit == std::optional<std::uint32_t>(2));

  h.feed(Pong{h.now, std::nullopt});
  h.run_until(h.now + 10000);
  auto again = only<Hist>(h.frames());
  REQUIRE(again.size() == 1);
  CHECK(again[0].after == std::optional<Seq>(1));
  CHECK(again[0].rid != hists[0].rid);

  h.feed(page_frame("ops", {msg_frame("ops", 2, "m2", "bob"), msg_frame("ops", 3, "m3", "bob")},
                    false, again[0].rid));
  CHECK(seqs_of(only<MessageEvent>(h.take_events())) == std::vector<Seq>{2, 3, 4});
}

TEST_CASE("subd more:true subscribes again from the new cursor; subd sets an unknown cursor to head",
          "[client_session]") {
  Harness h(51);
  h.session.subscribe("ops", Seq{10}, h.now);
  h.session.subscribe("live", std::nullopt, h.now);
  h.connect();

  h.feed(msg_frame("ops", 11, "m11", "bob"));
  h.feed(msg_frame("ops", 12, "m12", "bob"));
  h.frames();
  h.feed(subd_frame("ops", 20, 0, {}, true));
  auto frames = h.frames();
  auto subs = only<Sub>(frames);
  REQUIRE(subs.size() == 1);
  CHECK(subs[0].request.conv == "ops");
  CHECK(subs[0].request.after == std::optional<Seq>(12));
  CHECK(only<Hist>(frames).empty());  // replay continues by sub, not by hist

  for (Seq seq = 13; seq <= 20; ++seq) h.feed(msg_frame("ops", seq, "m" + std::to_string(seq), "bob"));
  h.feed(subd_frame("ops", 20, 0, {}, false));
  frames = h.frames();
  CHECK(only<Sub>(frames).empty());
  CHECK(only<Hist>(frames).empty());
  CHECK(h.session.cursor("ops") == std::optional<Seq>(20));

  CHECK_FALSE(h.session.cursor("live"));
  h.take_events();
  h.feed(subd_frame("live", 57));
  auto events = h.take_events();
  CHECK(h.session.cursor("live") == std::optional<Seq>(57));
  bool saw_cursor = false;
  for (const auto& c : only<CursorEvent>(events))
    if (c.conv == "live") saw_cursor = c.seq == 57;
  CHECK(saw_cursor);
  CHECK(only<MessageEvent>(events).empty());
  h.feed(msg_frame("live", 58, "l58", "bob"));
  CHECK(seqs_of(only<MessageEvent>(h.take_events())) == std::vector<Seq>{58});

  // A later subd (a resubscribe) never moves the cursor back.
  h.feed(subd_frame("live", 10));
  CHECK(h.session.cursor("live") == std::optional<Seq>(58));
  CHECK(only<CursorEvent>(h.take_events()).empty());
}

TEST_CASE("msgs of a conversation nobody subscribed to are not delivered", "[client_session]") {
  Harness h(52);
  h.connect();
  h.subscribed("ops", 0);
  h.feed(msg_frame("elsewhere", 1, "e1", "bob"));
  CHECK(only<MessageEvent>(h.take_events()).empty());
  h.session.unsubscribe("ops", h.now);
  auto unsubs = only<Unsub>(h.frames());
  REQUIRE(unsubs.size() == 1);
  CHECK(unsubs[0].conv == "ops");
  h.feed(msg_frame("ops", 1, "o1", "bob"));
  CHECK(only<MessageEvent>(h.take_events()).empty());
}

// ---- connection health --------------------------------------------------------------------

TEST_CASE("ping every hb from the welcome; silence for 2 x hb closes and reconnects", "[client_session]") {
  Harness h(61);
  h.connect("alice", 5000);
  const TimeMs online_at = h.now;
  CHECK(h.session.next_deadline() == std::optional<TimeMs>(online_at + 5000));

  h.run_until(online_at + 4999);
  CHECK(h.frames().empty());
  h.run_until(online_at + 5000);
  auto pings = only<Ping>(h.frames());
  REQUIRE(pings.size() == 1);
  CHECK(pings[0].ts == std::optional<TimeMs>(online_at + 5000));

  h.now = online_at + 5001;
  h.feed(Pong{online_at + 5000, std::nullopt});
  h.run_until(online_at + 15000);
  pings = only<Ping>(h.frames());
  REQUIRE(pings.size() == 2);  // at +10000 and +15000
  CHECK(pings[0].ts == std::optional<TimeMs>(online_at + 10000));
  CHECK(pings[1].ts == std::optional<TimeMs>(online_at + 15000));
  CHECK(h.take_closed().empty());
  CHECK(h.session.connection_state() == ConnectionState::online);

  // Nothing heard since +5001: dead at +15001.
  h.run_until(online_at + 15001);
  auto closed = h.take_closed();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].connection == h.conn);
  auto offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(offline.size() == 1);
  CHECK(offline[0].state == ConnectionState::offline);
  CHECK(offline[0].reason == "dead");
  REQUIRE(offline[0].next_retry_at);
  CHECK(*offline[0].next_retry_at >= h.now);
  CHECK(*offline[0].next_retry_at <= h.now + 250);
  CHECK(h.session.next_deadline() == offline[0].next_retry_at);
  CHECK(h.session.connection_state() == ConnectionState::offline);

  ConnectionId old = h.conn;
  h.run_until(*offline[0].next_retry_at);
  CHECK(h.take_opened().size() == 1);
  CHECK(h.conn != old);
}

namespace {

// Refuses `failures` connection attempts in a row; returns each reconnect delay.
std::vector<TimeMs> refused_delays(Harness& h, int failures) {
  std::vector<TimeMs> delays;
  h.start();
  for (int i = 0; i < failures; ++i) {
    REQUIRE(h.take_opened().size() == 1);
    h.close_socket();
    auto offline = only<ConnectionEvent>(h.take_events());
    REQUIRE(!offline.empty());
    REQUIRE(offline.back().state == ConnectionState::offline);
    REQUIRE(offline.back().next_retry_at);
    delays.push_back(*offline.back().next_retry_at - h.now);
    REQUIRE(h.session.next_deadline() == offline.back().next_retry_at);
    h.timer_at(*offline.back().next_retry_at - 1);
    REQUIRE(h.take_opened().empty());
    h.timer_at(*offline.back().next_retry_at);
  }
  return delays;
}

}  // namespace

TEST_CASE("reconnect delays: full jitter within [0, min(cap, 250 * 2^n)]", "[client_session]") {
  constexpr int kAttempts = 10;
  std::vector<TimeMs> largest(kAttempts, 0);
  std::vector<std::set<TimeMs>> distinct(kAttempts);
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    Harness h(seed);
    auto delays = refused_delays(h, kAttempts);
    for (int n = 0; n < kAttempts; ++n) {
      INFO("seed " << seed << " attempt " << n);
      TimeMs ceiling = std::min<TimeMs>(30000, TimeMs{250} << n);
      CHECK(delays[n] >= 0);
      CHECK(delays[n] <= ceiling);
      largest[n] = std::max(largest[n], delays[n]);
      distinct[n].insert(delays[n]);
    }
  }
  CHECK(largest[0] <= 250);
  for (int n = 1; n < kAttempts; ++n) {
    INFO("attempt " << n);
    TimeMs previous_ceiling = std::min<TimeMs>(30000, TimeMs{250} << (n - 1));
    if (previous_ceiling < 30000) CHECK(largest[n] > previous_ceiling);  // the window grew
    CHECK(largest[n] <= 30000);
    CHECK(distinct[n].size() > 100);  // jittered, not a fixed step
  }
}

TEST_CASE("ten seconds online resets the reconnect backoff", "[client_session]") {
  TimeMs largest_short = 0, largest_healthy = 0;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    for (bool healthy : {false, true}) {
      Harness h(seed);
      refused_delays(h, 5);  // n = 5 now: the window is [0, 8000]
      REQUIRE(h.take_opened().size() == 1);
      h.handshake();
      h.clear();
      h.now += healthy ? 10000 : 9999;
      h.close_socket();
      auto offline = only<ConnectionEvent>(h.take_events());
      REQUIRE(offline.size() == 1);
      REQUIRE(offline[0].next_retry_at);
      TimeMs delay = *offline[0].next_retry_at - h.now;
      CHECK(delay >= 0);
      CHECK(delay <= (healthy ? 250 : 8000));
      TimeMs& largest = healthy ? largest_healthy : largest_short;
      largest = std::max(largest, delay);
    }
  }
  CHECK(largest_short > 250);  // a short-lived connection did not reset it
  CHECK(largest_healthy <= 250);
}

TEST_CASE("bye: the next connect falls inside the retry_ms window", "[client_session]") {
  std::set<TimeMs> offsets;
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    INFO("seed " << seed);
    Harness h(seed);
    h.connect();
    h.now += 1234;
    const TimeMs bye_at = h.now;
    h.feed(Bye{"shutdown", 2000, 5000});
    auto closed = h.take_closed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].connection == h.conn);
    auto offline = only<ConnectionEvent>(h.take_events());
    REQUIRE(offline.size() == 1);
    CHECK(offline[0].state == ConnectionState::offline);
    CHECK(offline[0].reason == "bye:shutdown");
    REQUIRE(offline[0].next_retry_at);
    TimeMs at = *offline[0].next_retry_at;
    CHECK(at >= bye_at + 2000);
    CHECK(at <= bye_at + 5000);
    offsets.insert(at - bye_at);
    CHECK(h.session.next_deadline() == std::optional<TimeMs>(at));
    h.timer_at(at - 1);
    CHECK(h.take_opened().empty());
    h.timer_at(at);
    CHECK(h.take_opened().size() == 1);
  }
  CHECK(offsets.size() > 50);  // spread across the window, not one fixed delay
}

TEST_CASE("a bye with an empty window and a later ordinary failure", "[client_session]") {
  Harness h(71);
  h.connect();
  h.feed(Bye{"overload", 0, 0});
  auto offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(offline.size() == 1);
  CHECK(offline[0].next_retry_at == std::optional<TimeMs>(h.now));
  h.timer_at(h.now);
  REQUIRE(h.take_opened().size() == 1);
  h.take_events();
  h.close_socket();  // refused: ordinary backoff again, the window was used up
  offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(offline.size() == 1);
  REQUIRE(offline[0].next_retry_at);
  CHECK(*offline[0].next_retry_at - h.now <= 500);
}

TEST_CASE("no welcome within handshake_timeout_ms closes the socket and retries", "[client_session]") {
  Harness h(81);

  SECTION("the socket never opens") {
    h.start();
    const TimeMs opened_at = h.now;
    REQUIRE(h.take_opened().size() == 1);
    CHECK(h.session.next_deadline() == std::optional<TimeMs>(opened_at + 10000));
    h.timer_at(opened_at + 9999);
    CHECK(h.take_closed().empty());
    h.timer_at(opened_at + 10000);
    auto closed = h.take_closed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].connection == h.conn);
    auto offline = only<ConnectionEvent>(h.take_events());
    REQUIRE(!offline.empty());
    CHECK(offline.back().state == ConnectionState::offline);
    REQUIRE(offline.back().next_retry_at);
    h.run_until(*offline.back().next_retry_at);
    CHECK(h.take_opened().size() == 1);
  }

  SECTION("the socket opens late and no welcome comes: the limit counts from OpenSocket") {
    h.start();
    const TimeMs opened_at = h.now;
    REQUIRE(h.take_opened().size() == 1);
    h.now = opened_at + 9000;
    h.open();
    REQUIRE(only<Hello>(h.frames()).size() == 1);
    CHECK(h.session.next_deadline() == std::optional<TimeMs>(opened_at + 10000));
    h.timer_at(opened_at + 10000);
    auto closed = h.take_closed();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].connection == h.conn);
    CHECK(h.session.connection_state() == ConnectionState::offline);
  }

  SECTION("a welcome in time cancels the timeout") {
    h.start();
    const TimeMs opened_at = h.now;
    h.now = opened_at + 9000;
    h.handshake();
    h.timer_at(opened_at + 10000);
    CHECK(h.take_closed().empty());
    CHECK(h.session.connection_state() == ConnectionState::online);
  }
}

TEST_CASE("frames and closes of a stale connection are ignored", "[client_session]") {
  Harness h(91);
  h.session.subscribe("ops", Seq{0}, h.now);
  h.connect();
  h.feed(subd_frame("ops", 0));
  const ConnectionId old = h.conn;
  h.close_socket();
  h.reconnect();
  REQUIRE(h.conn != old);
  h.feed(subd_frame("ops", 0));
  std::string id = h.session.send("ops", body_of(json::object{{"text", "a"}}), h.now);
  h.clear();

  h.feed_on(old, msg_frame("ops", 1, "m1", "bob"));
  h.feed_on(old, ack_frame("ops", id, Seq{1}));
  h.feed_on(old, Bye{"shutdown", 0, 0});
  h.feed_on(old, err_frame(ErrorCode::unauthorized, "expired"));
  h.feed_on(old, page_frame("ops", {}, false, std::string("c1")));
  h.session.on_frame(old, "garbage", h.now);
  h.session.on_open(old, h.now);
  h.session.on_close(old, h.now);
  h.session.on_frame(0, serialize(msg_frame("ops", 1, "m1", "bob")), h.now);
  h.session.on_close(0, h.now);
  h.collect();
  CHECK(h.take_events().empty());
  CHECK(h.frames().empty());
  CHECK(h.take_closed().empty());
  CHECK(h.take_opened().empty());
  CHECK(h.session.connection_state() == ConnectionState::online);
  CHECK(h.session.outbox_size() == 1);
  CHECK(h.session.cursor("ops") == std::optional<Seq>(0));

  // The current socket still works.
  h.feed(msg_frame("ops", 1, "m1", "bob"));
  CHECK(seqs_of(only<MessageEvent>(h.take_events())) == std::vector<Seq>{1});
}

TEST_CASE("frames for a socket that is not yet open are ignored", "[client_session]") {
  Harness h(92);
  h.start();
  h.feed(welcome_frame());  // before on_open
  CHECK(h.session.connection_state() == ConnectionState::connecting);
  CHECK(only<ConnectionEvent>(h.take_events()).size() == 1);  // just the "connecting"
  h.open();
  CHECK(only<Hello>(h.frames()).size() == 1);
}

// ---- durable state ------------------------------------------------------------------------

TEST_CASE("export_state / import_state carry the outbox, cursors and failed rows", "[client_session]") {
  ClientConfig config;
  Harness a(101, config);
  a.connect();
  a.subscribed("ops", 5);
  a.feed(msg_frame("ops", 6, "m6", "bob"));
  a.feed(msg_frame("ops", 7, "m7", "bob"));
  a.session.mark_read("ops", 6, a.now);
  a.session.subscribe("quiet", Seq{3}, a.now);
  std::string acked = a.sent_and_acked("ops", 8);
  std::string pending = a.session.send("ops", body_of(json::object{{"text", "pending"}}), a.now);
  std::string refused = a.session.send("ops", body_of(json::object{{"text", "refused"}}), a.now);
  auto sends = only<Send>(a.frames());
  REQUIRE(sends.size() == 2);
  const std::optional<std::string> pending_trace = sends[0].trace;
  a.feed(nack_frame("ops", refused, ErrorCode::forbidden, false));
  auto a_events = a.take_events();
  REQUIRE(!only<StateChangedEvent>(a_events).empty());
  const std::string state = a.session.export_state();

  // A tab reload: a new session, a new random seed, the same stored state.
  Harness b(202, config);
  auto imported = b.session.import_state(state, b.now);
  REQUIRE(imported.ok());
  CHECK(b.session.export_state() == state);
  auto events = b.take_events();
  CHECK(rows_of(events, acked).empty());
  auto pending_rows = rows_of(events, pending);
  REQUIRE(pending_rows.size() == 1);
  CHECK(pending_rows[0].state == RowState::queued);
  CHECK(pending_rows[0].own);
  REQUIRE(pending_rows[0].body);
  CHECK(*pending_rows[0].body == body_of(json::object{{"text", "pending"}}));
  CHECK(pending_rows[0].trace == pending_trace);
  auto refused_rows = rows_of(events, refused);
  REQUIRE(refused_rows.size() == 1);
  CHECK(refused_rows[0].state == RowState::failed);
  REQUIRE(refused_rows[0].error);
  CHECK(refused_rows[0].error->code == ErrorCode::forbidden);
  CHECK(b.session.outbox_size() == 2);
  CHECK(b.session.cursor("ops") == std::optional<Seq>(7));
  CHECK(b.session.cursor("quiet") == std::optional<Seq>(3));

  b.start();
  REQUIRE(b.take_opened().size() == 1);
  b.open();
  auto hello = only<Hello>(b.frames());
  REQUIRE(hello.size() == 1);
  std::map<std::string, std::optional<Seq>> subs;
  for (const auto& sub : hello[0].subs) subs[sub.conv] = sub.after;
  CHECK(subs == std::map<std::string, std::optional<Seq>>{{"ops", Seq{7}}, {"quiet", Seq{3}}});
  b.feed(welcome_frame());
  auto resent = only<Send>(b.frames());
  REQUIRE(resent.size() == 1);  // the failed row waits for retry()
  CHECK(resent[0].id == pending);
  CHECK(resent[0].trace == pending_trace);
  CHECK(resent[0].body == body_of(json::object{{"text", "pending"}}));

  // The read cursor came along: subd with an older read makes the session tell the edge.
  b.feed(subd_frame("ops", 8, 0));
  auto receipts = only<Rcpt>(b.frames());
  bool told_read = false;
  for (const auto& r : receipts) told_read |= r.kind == ReceiptKind::read && r.seq == 6;
  CHECK(told_read);

  CHECK(b.session.retry("ops", refused, b.now));
  auto retried = only<Send>(b.frames());
  REQUIRE(retried.size() == 1);
  CHECK(retried[0].id == refused);
}

TEST_CASE("import_state refuses garbage and leaves the state as it was", "[client_session]") {
  Harness h(111);
  const std::string good =
      R"({"v":1,"outbox":[{"conv":"ops","id":"abc","cts":5,)"
      R"("trace":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",)"
      R"("failed":false,"body":{"text":"x"}}],)"
      R"("convs":{"ops":{"wanted":true,"read":2,"cursor":9}}})";
  REQUIRE(h.session.import_state(good, h.now).ok());
  h.clear();
  const std::string before = h.session.export_state();

  for (const std::string& bad : {std::string("not json"), std::string("[]"), std::string("{}"),
                                std::string(R"({"v":2,"outbox":[],"convs":{}})"),
                                std::string(R"({"v":"1","outbox":[],"convs":{}})"),
                                std::string(R"({"v":1,"outbox":{},"convs":{}})"),
                                std::string(R"({"v":1,"outbox":[{"conv":"ops"}],"convs":{}})"),
                                std::string(R"({"v":1,"outbox":[{"conv":"o p","id":"x","body":1}]})"),
                                std::string(R"({"v":1,"outbox":[],"convs":{"bad conv":{}}})"),
                                std::string(R"({"v":1,"outbox":[],"convs":[]})")}) {
    INFO(bad);
    auto result = h.session.import_state(bad, h.now);
    CHECK_FALSE(result.ok());
    CHECK(h.session.export_state() == before);
    CHECK(h.take_events().empty());
  }
  CHECK(h.session.outbox_size() == 1);
  CHECK(h.session.cursor("ops") == std::optional<Seq>(9));
}

// ---- authorisation ------------------------------------------------------------------------

TEST_CASE("err unauthorized stops reconnecting until set_token and connect_now", "[client_session]") {
  Harness h(121);
  h.start();
  REQUIRE(h.take_opened().size() == 1);
  h.open();
  h.frames();
  h.take_events();
  h.feed(err_frame(ErrorCode::unauthorized, "token expired"));
  auto closed = h.take_closed();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].connection == h.conn);
  auto events = h.take_events();
  auto offline = only<ConnectionEvent>(events);
  REQUIRE(!offline.empty());
  for (const auto& e : offline) {
    CHECK(e.state == ConnectionState::offline);
    CHECK_FALSE(e.next_retry_at);  // no event may promise a retry that never comes
  }
  CHECK(only<ErrorEvent>(events).empty());  // reported as the reason, not as a stray error
  CHECK(h.session.connection_state() == ConnectionState::offline);
  CHECK_FALSE(h.session.next_deadline());

  h.timer_at(h.now + 3'600'000);
  CHECK(h.take_opened().empty());

  h.session.set_token("dev:alice-renewed");
  h.session.connect_now(h.now);
  auto opened = h.take_opened();
  REQUIRE(opened.size() == 1);
  h.open();
  auto hello = only<Hello>(h.frames());
  REQUIRE(hello.size() == 1);
  CHECK(hello[0].token == "dev:alice-renewed");
  h.feed(welcome_frame());
  CHECK(h.session.connection_state() == ConnectionState::online);
}

TEST_CASE("bye token_expired stops like unauthorized; a new token resumes the outbox and cursors",
          "[client_session]") {
  Harness h(123);
  h.connect();
  h.subscribed("ops", 5);
  h.feed(msg_frame("ops", 6, "m6", "bob"));
  REQUIRE(h.session.cursor("ops") == std::optional<Seq>(6));
  std::string acked = h.sent_and_acked("ops", 7, "acked before expiry");
  h.feed(msg_frame("ops", 7, acked, "alice", "acked before expiry"));
  REQUIRE(h.session.cursor("ops") == std::optional<Seq>(7));
  std::string in_flight = h.session.send("ops", body_of(json::object{{"text", "around expiry"}}), h.now);
  auto first_sends = only<Send>(h.frames());
  REQUIRE(first_sends.size() == 1);
  CHECK(first_sends[0].id == in_flight);
  h.take_events();

  h.now += 3000;
  h.feed(Bye{"token_expired", 0, 1000});
  auto closed = h.take_closed();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].connection == h.conn);
  auto events = h.take_events();
  auto offline = only<ConnectionEvent>(events);
  REQUIRE(offline.size() == 1);  // one event, and it names the token
  CHECK(offline[0].state == ConnectionState::offline);
  CHECK(offline[0].reason.rfind("unauthorized", 0) == 0);
  CHECK(offline[0].reason.find("expired") != std::string::npos);
  CHECK_FALSE(offline[0].next_retry_at);
  CHECK(only<ErrorEvent>(events).empty());
  CHECK(h.session.connection_state() == ConnectionState::offline);
  // The bye's retry window does not apply: nothing is scheduled with the expired token.
  CHECK_FALSE(h.session.next_deadline());
  h.timer_at(h.now + 1000);
  h.timer_at(h.now + 3'600'000);
  CHECK(h.take_opened().empty());

  // Sending while waiting for a token queues; nothing is written anywhere.
  std::string offline_id = h.session.send("ops", body_of(json::object{{"text", "while expired"}}), h.now);
  CHECK(h.frames().empty());
  CHECK(h.session.outbox_size() == 2);
  CHECK(h.session.cursor("ops") == std::optional<Seq>(7));

  h.session.set_token("dev:alice-renewed");
  h.session.connect_now(h.now);
  REQUIRE(h.take_opened().size() == 1);
  h.open();
  auto hello = only<Hello>(h.frames());
  REQUIRE(hello.size() == 1);
  CHECK(hello[0].token == "dev:alice-renewed");
  REQUIRE(hello[0].subs.size() == 1);
  CHECK(hello[0].subs[0].conv == "ops");
  CHECK(hello[0].subs[0].after == std::optional<Seq>(7));  // resumes after the own acked seq

  h.feed(welcome_frame());
  CHECK(h.session.connection_state() == ConnectionState::online);
  auto resent = only<Send>(h.frames());
  REQUIRE(resent.size() == 2);
  CHECK(resent[0].id == in_flight);  // same id: the edge stores it once, acks a dup
  CHECK(resent[0].trace == first_sends[0].trace);
  CHECK(resent[1].id == offline_id);
  for (const auto& send : resent) CHECK(send.id != acked);

  h.feed(subd_frame("ops", 7));
  h.feed(ack_frame("ops", in_flight, Seq{8}, true));
  h.feed(ack_frame("ops", offline_id, Seq{9}));
  CHECK(h.session.outbox_size() == 0);
  h.feed(msg_frame("ops", 8, in_flight, "alice", "around expiry"));
  h.feed(msg_frame("ops", 9, offline_id, "alice", "while expired"));
  auto messages = only<MessageEvent>(h.take_events());
  CHECK(seqs_of(messages) == std::vector<Seq>{8, 9});
  CHECK(h.session.cursor("ops") == std::optional<Seq>(9));
}

TEST_CASE("after token_expired, connect_now with the same token is refused and stops again",
          "[client_session]") {
  Harness h(124);
  h.connect();
  h.feed(Bye{"token_expired", 0, 1000});
  h.clear();
  h.session.connect_now(h.now);  // e.g. the browser came online; the host had no new token
  REQUIRE(h.take_opened().size() == 1);
  h.open();
  h.feed(err_frame(ErrorCode::unauthorized, "token: expired"));
  auto offline = only<ConnectionEvent>(h.take_events());
  REQUIRE_FALSE(offline.empty());
  CHECK(offline.back().reason == "unauthorized: token: expired");
  for (const auto& e : offline) CHECK_FALSE(e.next_retry_at);
  CHECK_FALSE(h.session.next_deadline());
}

TEST_CASE("a socket closed with 4001 and no err stops like unauthorized; other codes reconnect",
          "[client_session]") {
  Harness h(125);
  h.connect();
  std::string id = h.session.send("ops", body_of(json::object{{"text", "x"}}), h.now);
  REQUIRE(only<Send>(h.frames()).size() == 1);
  h.take_events();

  h.session.on_close(h.conn, h.now, 4001);
  h.collect();
  CHECK(h.take_closed().empty());  // it is closed already
  auto offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(offline.size() == 1);
  CHECK(offline[0].reason.rfind("unauthorized", 0) == 0);
  CHECK_FALSE(offline[0].next_retry_at);
  CHECK_FALSE(h.session.next_deadline());
  CHECK(h.session.outbox_size() == 1);

  h.session.set_token("dev:alice-renewed");
  h.session.connect_now(h.now);
  REQUIRE(h.take_opened().size() == 1);
  h.open();
  CHECK(only<Hello>(h.frames()).at(0).token == "dev:alice-renewed");
  h.feed(welcome_frame());
  auto resent = only<Send>(h.frames());
  REQUIRE(resent.size() == 1);
  CHECK(resent[0].id == id);

  // 1001 (shutdown) without a bye is an ordinary loss: a reconnect is scheduled.
  h.take_events();
  h.session.on_close(h.conn, h.now, 1001);
  h.collect();
  offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(offline.size() == 1);
  CHECK(offline[0].reason == "closed");
  CHECK(offline[0].next_retry_at);
  CHECK(h.session.next_deadline());
}

TEST_CASE("close() stops the session without promising a reconnect", "[client_session]") {
  Harness h(122);
  h.connect();
  h.session.close(h.now);
  auto closed = h.take_closed();
  REQUIRE(closed.size() == 1);
  CHECK(closed[0].connection == h.conn);
  auto offline = only<ConnectionEvent>(h.take_events());
  REQUIRE(!offline.empty());
  for (const auto& e : offline) CHECK_FALSE(e.next_retry_at);
  CHECK_FALSE(h.session.next_deadline());
  h.timer_at(h.now + 3'600'000);
  CHECK(h.take_opened().empty());
}

// ---- receipts, unread ---------------------------------------------------------------------

TEST_CASE("others' receipts move own rows to delivered and read, never backwards", "[client_session]") {
  Harness h(131);
  h.connect();
  h.subscribed("ops", 0);
  std::vector<std::string> ids;
  std::vector<ClientEvent> echo;
  for (Seq seq = 1; seq <= 3; ++seq) {
    ids.push_back(h.sent_and_acked("ops", seq));
    h.feed(msg_frame("ops", seq, ids.back(), "alice"));
    auto events = h.take_events();
    echo.insert(echo.end(), events.begin(), events.end());
  }
  CHECK(only<MessageEvent>(echo).size() == 3);
  for (const auto& id : ids) CHECK(rows_of(echo, id).empty());  // already sequenced by the ack

  std::vector<ClientEvent> all;
  h.feed(rcpt_frame("ops", "bob", 2, ReceiptKind::delivered));
  auto events = h.take_events();
  all.insert(all.end(), events.begin(), events.end());
  auto receipts = only<ReceiptEvent>(events);
  REQUIRE(receipts.size() == 1);
  CHECK(receipts[0].user == "bob");
  CHECK(receipts[0].seq == 2);
  CHECK(receipts[0].kind == ReceiptKind::delivered);
  for (int i : {0, 1}) {
    auto rows = rows_of(events, ids[i]);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::delivered);
    CHECK(rows[0].own);
    CHECK(rows[0].seq == std::optional<Seq>(i + 1));
  }
  CHECK(rows_of(events, ids[2]).empty());

  h.feed(rcpt_frame("ops", "bob", 1, ReceiptKind::read));
  events = h.take_events();
  all.insert(all.end(), events.begin(), events.end());
  auto rows = rows_of(events, ids[0]);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::read);

  // An older receipt, from anyone, changes no row.
  h.feed(rcpt_frame("ops", "carol", 1, ReceiptKind::delivered));
  h.feed(rcpt_frame("ops", "bob", 1, ReceiptKind::read));
  events = h.take_events();
  CHECK(only<RowEvent>(events).empty());

  h.feed(rcpt_frame("ops", "carol", 3, ReceiptKind::read));
  events = h.take_events();
  all.insert(all.end(), events.begin(), events.end());
  CHECK(rows_of(events, ids[0]).empty());
  rows = rows_of(events, ids[1]);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::read);
  rows = rows_of(events, ids[2]);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].state == RowState::delivered);
  CHECK(rows[1].state == RowState::read);

  // Per row, the states only ever went forward.
  for (const auto& id : ids) {
    auto history = rows_of(all, id);
    for (std::size_t i = 1; i < history.size(); ++i) CHECK(history[i - 1].state < history[i].state);
  }

  // A row acked after the receipts is upgraded at once.
  std::string late = h.session.send("ops", body_of(json::object{{"text", "late"}}), h.now);
  h.frames();
  h.take_events();
  h.feed(ack_frame("ops", late, Seq{2}));  // a seq already covered by carol's read
  rows = rows_of(h.take_events(), late);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].state == RowState::sequenced);
  CHECK(rows[1].state == RowState::delivered);
  CHECK(rows[2].state == RowState::read);
}

TEST_CASE("unread counts others' messages above the read cursor; mark_read and other devices lower it",
          "[client_session]") {
  Harness h(141);
  h.connect();
  h.subscribed("ops", 0);

  for (Seq seq = 1; seq <= 3; ++seq) {
    h.feed(msg_frame("ops", seq, "b" + std::to_string(seq), "bob"));
    auto events = h.take_events();
    auto unread = only<UnreadEvent>(events);
    REQUIRE(unread.size() == 1);
    CHECK(unread[0].conv == "ops");
    CHECK(unread[0].count == seq);
    // Delivered receipts follow the contiguous cursor, one per new cursor.
    auto receipts = only<Rcpt>(h.frames());
    REQUIRE(receipts.size() == 1);
    CHECK(receipts[0].kind == ReceiptKind::delivered);
    CHECK(receipts[0].seq == seq);
  }
  std::string own = h.session.send("ops", body_of(json::object{{"text", "mine"}}), h.now);
  h.frames();
  h.feed(msg_frame("ops", 4, own, "alice"));  // own messages are not unread
  CHECK(only<UnreadEvent>(h.take_events()).empty());
  CHECK(h.session.unread("ops") == 3);
  h.frames();

  h.session.mark_read("ops", 2, h.now);
  auto events = h.take_events();
  auto unread = only<UnreadEvent>(events);
  REQUIRE(unread.size() == 1);
  CHECK(unread[0].count == 1);
  CHECK(h.session.unread("ops") == 1);
  for (const char* id : {"b1", "b2"}) {
    auto rows = rows_of(events, id);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].state == RowState::read);
    CHECK_FALSE(rows[0].own);
  }
  auto receipts = only<Rcpt>(h.frames());
  REQUIRE(receipts.size() == 1);
  CHECK(receipts[0].conv == "ops");
  CHECK(receipts[0].kind == ReceiptKind::read);
  CHECK(receipts[0].seq == 2);

  h.session.mark_read("ops", 1, h.now);  // backwards: nothing
  CHECK(h.frames().empty());
  CHECK(h.session.unread("ops") == 1);

  // The same user read up to 4 on another device.
  h.feed(rcpt_frame("ops", "alice", 4, ReceiptKind::read));
  events = h.take_events();
  unread = only<UnreadEvent>(events);
  REQUIRE(unread.size() == 1);
  CHECK(unread[0].count == 0);
  CHECK(h.session.unread("ops") == 0);
  CHECK(rows_of(events, "b3").size() == 1);
  CHECK(only<Rcpt>(h.frames()).empty());  // the edge knows already

  // A message from bob after that is unread again, and arrives as delivered.
  h.feed(msg_frame("ops", 5, "b5", "bob"));
  events = h.take_events();
  CHECK(h.session.unread("ops") == 1);
  auto rows = rows_of(events, "b5");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::delivered);
}

TEST_CASE("mark_read never passes the cursor; subd.read sets the read cursor", "[client_session]") {
  Harness h(142);
  h.connect();
  h.session.subscribe("ops", Seq{0}, h.now);
  h.frames();
  h.feed(msg_frame("ops", 1, "b1", "bob"));
  h.feed(msg_frame("ops", 2, "b2", "bob"));
  h.feed(msg_frame("ops", 3, "b3", "bob"));
  h.feed(subd_frame("ops", 3, 1));  // read up to 1 elsewhere
  CHECK(h.session.unread("ops") == 2);
  h.frames();
  h.session.mark_read("ops", 99, h.now);
  auto receipts = only<Rcpt>(h.frames());
  REQUIRE(receipts.size() == 1);
  CHECK(receipts[0].seq == 3);
  CHECK(h.session.unread("ops") == 0);
}

// ---- typing and presence ------------------------------------------------------------------

TEST_CASE("typing from others turns on and expires by itself; own echoes are ignored", "[client_session]") {
  Harness h(151);
  h.connect();
  h.subscribed("ops", 0);

  h.feed(typing_frame("ops", "alice", true));  // the own echo
  CHECK(only<TypingEvent>(h.take_events()).empty());

  h.feed(typing_frame("ops", "bob", true));
  auto typing = only<TypingEvent>(h.take_events());
  REQUIRE(typing.size() == 1);
  CHECK(typing[0].conv == "ops");
  CHECK(typing[0].user == "bob");
  CHECK(typing[0].on);

  h.now += 2000;
  h.feed(typing_frame("ops", "bob", true));  // a refresh: no new event, a later expiry
  CHECK(only<TypingEvent>(h.take_events()).empty());
  const TimeMs expiry = h.now + 6000;
  CHECK(h.session.next_deadline() == std::optional<TimeMs>(expiry));
  h.timer_at(expiry - 1);
  CHECK(only<TypingEvent>(h.take_events()).empty());
  h.timer_at(expiry);
  typing = only<TypingEvent>(h.take_events());
  REQUIRE(typing.size() == 1);
  CHECK(typing[0].user == "bob");
  CHECK_FALSE(typing[0].on);

  h.feed(typing_frame("ops", "carol", true));
  h.feed(typing_frame("ops", "carol", false));
  typing = only<TypingEvent>(h.take_events());
  REQUIRE(typing.size() == 2);
  CHECK(typing[0].on);
  CHECK_FALSE(typing[1].on);
  h.timer_at(h.now + 10000);
  CHECK(only<TypingEvent>(h.take_events()).empty());  // already off: no second "off"

  // The app's own typing goes out without a user.
  h.session.set_typing("ops", true, h.now);
  auto sent = only<Typing>(h.frames());
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].on);
  CHECK_FALSE(sent[0].user);
}

TEST_CASE("presence comes from subd.present and presence frames", "[client_session]") {
  Harness h(161);
  h.connect();
  h.session.subscribe("ops", std::nullopt, h.now);
  h.frames();
  h.feed(subd_frame("ops", 0, 0, {"bob", "carol"}));
  auto presence = only<PresenceEvent>(h.take_events());
  REQUIRE(presence.size() == 2);
  std::set<std::string> on;
  for (const auto& p : presence) {
    CHECK(p.conv == "ops");
    CHECK(p.on);
    on.insert(p.user);
  }
  CHECK(on == std::set<std::string>{"bob", "carol"});
  CHECK(h.session.present("ops") == std::vector<std::string>{"bob", "carol"});

  h.feed(Presence{"ops", "dave", true});
  h.feed(Presence{"ops", "bob", false});
  h.feed(Presence{"ops", "carol", true});  // already present
  h.feed(Presence{"ops", "erin", false});  // never present
  presence = only<PresenceEvent>(h.take_events());
  REQUIRE(presence.size() == 2);
  CHECK(presence[0].user == "dave");
  CHECK(presence[0].on);
  CHECK(presence[1].user == "bob");
  CHECK_FALSE(presence[1].on);
  CHECK(h.session.present("ops") == std::vector<std::string>{"carol", "dave"});
  CHECK(h.session.present("nowhere").empty());

  h.feed(Presence{"other", "zed", true});  // not subscribed
  CHECK(only<PresenceEvent>(h.take_events()).empty());
}

// ---- history ------------------------------------------------------------------------------

TEST_CASE("own messages of a history page are raised by others' receipts like live ones",
          "[client_session]") {
  Harness h(132);
  h.connect();
  h.subscribed("ops", 200);
  h.feed(rcpt_frame("ops", "bob", 71, ReceiptKind::read));      // bob read up to 71
  h.feed(rcpt_frame("ops", "carol", 73, ReceiptKind::delivered));  // carol got up to 73
  h.take_events();

  std::string rid = h.session.request_history("ops", Seq{80}, std::nullopt, 50, h.now);
  h.frames();
  h.feed(page_frame("ops",
                    {msg_frame("ops", 70, "h70", "alice"), msg_frame("ops", 71, "h71", "bob"),
                     msg_frame("ops", 72, "h72", "alice"), msg_frame("ops", 74, "h74", "alice")},
                    false, rid));
  auto events = h.take_events();
  REQUIRE(only<HistoryEvent>(events).size() == 1);
  auto h70 = rows_of(events, "h70");  // covered by bob's read: read at once, no delivered first
  REQUIRE(h70.size() == 1);
  CHECK(h70[0].state == RowState::read);
  CHECK(h70[0].own);
  auto h72 = rows_of(events, "h72");  // only carol's delivered covers it
  REQUIRE(h72.size() == 1);
  CHECK(h72[0].state == RowState::delivered);
  CHECK(rows_of(events, "h71").empty());  // bob's own message: not ours to raise
  CHECK(rows_of(events, "h74").empty());  // nobody's receipt reaches it yet

  h.feed(rcpt_frame("ops", "bob", 74, ReceiptKind::read));
  events = h.take_events();
  auto h74 = rows_of(events, "h74");
  REQUIRE_FALSE(h74.empty());
  CHECK(h74.back().state == RowState::read);
  auto again = rows_of(events, "h72");
  REQUIRE(again.size() == 1);
  CHECK(again[0].state == RowState::read);

  // The same page again (the app scrolled back): read rows are told read again, never delivered.
  rid = h.session.request_history("ops", Seq{80}, std::nullopt, 50, h.now);
  h.frames();
  h.feed(page_frame("ops", {msg_frame("ops", 70, "h70", "alice"), msg_frame("ops", 72, "h72", "alice")},
                    false, rid));
  events = h.take_events();
  for (const char* id : {"h70", "h72"})
    for (const RowEvent& row : rows_of(events, id)) CHECK(row.state == RowState::read);
}

TEST_CASE("others' receipts survive a reload: a history row once read is read again, not delivered",
          "[client_session]") {
  Harness a(133);
  a.connect();
  a.subscribed("ops", 10);
  a.feed(rcpt_frame("ops", "bob", 9, ReceiptKind::read));
  a.feed(rcpt_frame("ops", "carol", 12, ReceiptKind::delivered));
  REQUIRE(!only<StateChangedEvent>(a.take_events()).empty());  // the host persists it
  const std::string state = a.session.export_state();

  Harness b(134);
  REQUIRE(b.session.import_state(state, b.now).ok());
  b.connect();  // the imported subscription rides in the hello
  b.feed(subd_frame("ops", 12, 0));
  b.take_events();
  std::string rid = b.session.request_history("ops", Seq{13}, std::nullopt, 50, b.now);
  b.frames();
  b.feed(page_frame("ops", {msg_frame("ops", 9, "m9", "alice"), msg_frame("ops", 11, "m11", "alice")},
                    false, rid));
  auto events = b.take_events();
  auto m9 = rows_of(events, "m9");
  REQUIRE(m9.size() == 1);
  CHECK(m9[0].state == RowState::read);
  auto m11 = rows_of(events, "m11");
  REQUIRE(m11.size() == 1);
  CHECK(m11[0].state == RowState::delivered);
}

TEST_CASE("request_history sends hist and answers with a HistoryEvent", "[client_session]") {
  Harness h(171);

  SECTION("offline: an error at once") {
    std::string rid = h.session.request_history("ops", Seq{120}, std::nullopt, 50, h.now);
    auto history = only<HistoryEvent>(h.take_events());
    REQUIRE(history.size() == 1);
    CHECK(history[0].rid == rid);
    CHECK(history[0].conv == "ops");
    REQUIRE(history[0].error);
    CHECK(history[0].error->code == ErrorCode::unavailable);
    CHECK(h.frames().empty());
  }

  h.connect();
  h.subscribed("ops", 200);

  SECTION("a page answers it") {
    std::string rid = h.session.request_history("ops", Seq{120}, std::nullopt, 50, h.now);
    auto hists = only<Hist>(h.frames());
    REQUIRE(hists.size() == 1);
    CHECK(hists[0].conv == "ops");
    CHECK(hists[0].before == std::optional<Seq>(120));
    CHECK_FALSE(hists[0].after);
    CHECK(hists[0].limit == std::optional<std::uint32_t>(50));
    CHECK(hists[0].rid == std::optional<std::string>(rid));
    CHECK(h.take_events().empty());

    h.feed(page_frame("ops",
                      {msg_frame("ops", 70, "h70", "bob"), msg_frame("ops", 71, "h71", "alice"),
                       msg_frame("ops", 72, "h72", "bob")},
                      true, rid));
    auto events = h.take_events();
    auto history = only<HistoryEvent>(events);
    REQUIRE(history.size() == 1);
    CHECK(history[0].rid == rid);
    CHECK(history[0].conv == "ops");
    CHECK_FALSE(history[0].error);
    CHECK(history[0].more);
    REQUIRE(history[0].msgs.size() == 3);
    CHECK(history[0].msgs[0].seq == std::optional<Seq>(70));
    CHECK(history[0].msgs[2].id == "h72");
    CHECK(only<MessageEvent>(events).empty());  // history is not live delivery
    CHECK(h.session.cursor("ops") == std::optional<Seq>(200));

    h.feed(page_frame("ops", {}, false, rid));  // a second answer is not ours any more
    CHECK(only<HistoryEvent>(h.take_events()).empty());
  }

  SECTION("after instead of before") {
    std::string rid = h.session.request_history("ops", std::nullopt, Seq{10}, 20, h.now);
    auto hists = only<Hist>(h.frames());
    REQUIRE(hists.size() == 1);
    CHECK(hists[0].after == std::optional<Seq>(10));
    CHECK_FALSE(hists[0].before);
    CHECK(hists[0].rid == std::optional<std::string>(rid));
  }

  SECTION("an err with the rid answers it") {
    std::string rid = h.session.request_history("ops", Seq{120}, std::nullopt, 50, h.now);
    h.frames();
    h.feed(err_frame(ErrorCode::forbidden, "conv: not allowed", rid));
    auto events = h.take_events();
    auto history = only<HistoryEvent>(events);
    REQUIRE(history.size() == 1);
    REQUIRE(history[0].error);
    CHECK(history[0].error->code == ErrorCode::forbidden);
    CHECK(only<ErrorEvent>(events).empty());
    CHECK(h.session.connection_state() == ConnectionState::online);
  }

  SECTION("no answer within request_timeout_ms") {
    const TimeMs asked_at = h.now;
    std::string rid = h.session.request_history("ops", Seq{120}, std::nullopt, 50, h.now);
    h.frames();
    h.run_until(asked_at + 9999);
    CHECK(only<HistoryEvent>(h.take_events()).empty());
    h.run_until(asked_at + 10000);
    auto history = only<HistoryEvent>(h.take_events());
    REQUIRE(history.size() == 1);
    CHECK(history[0].rid == rid);
    REQUIRE(history[0].error);
    h.feed(page_frame("ops", {msg_frame("ops", 119, "h119", "bob")}, false, rid));  // too late
    auto late = h.take_events();
    CHECK(only<HistoryEvent>(late).empty());
    CHECK(only<MessageEvent>(late).empty());
  }

  SECTION("the connection drops first") {
    std::string rid = h.session.request_history("ops", Seq{120}, std::nullopt, 50, h.now);
    h.close_socket();
    auto history = only<HistoryEvent>(h.take_events());
    REQUIRE(history.size() == 1);
    CHECK(history[0].rid == rid);
    REQUIRE(history[0].error);
  }
}

// ---- bad input from the edge -----------------------------------------------------------------

TEST_CASE("malformed or unexpected frames from the edge are reported and skipped", "[client_session]") {
  Harness h(181);
  h.connect();
  h.subscribed("ops", 0);

  struct Case {
    std::string text;
    ErrorCode code;
  };
  for (const auto& c : {Case{"garbage", ErrorCode::bad_frame}, Case{"[1,2]", ErrorCode::bad_frame},
                        Case{R"({"no":"type"})", ErrorCode::invalid},
                        Case{R"({"t":"hello","token":"x"})", ErrorCode::unknown_type},
                        Case{R"({"t":"send","conv":"ops","id":"a","body":1})", ErrorCode::unknown_type},
                        Case{R"({"t":"whatever"})", ErrorCode::unknown_type},
                        Case{R"({"t":"msg","conv":"ops"})", ErrorCode::invalid},
                        Case{R"({"t":"ack","conv":"ops","id":"bad id!","seq":1,"ts":0})", ErrorCode::invalid}}) {
    INFO(c.text);
    h.feed_text(c.text);
    auto errors = only<ErrorEvent>(h.take_events());
    REQUIRE(errors.size() == 1);
    if (c.code != ErrorCode::invalid) CHECK(errors[0].error.code == c.code);
    CHECK(h.session.connection_state() == ConnectionState::online);
    CHECK(h.take_closed().empty());
  }

  // An err the session owns no request for is passed on.
  h.feed(err_frame(ErrorCode::rate_limited, "slow down"));
  auto errors = only<ErrorEvent>(h.take_events());
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].error.code == ErrorCode::rate_limited);

  // A bad conv from the app is refused locally.
  h.session.subscribe("bad conv", std::nullopt, h.now);
  errors = only<ErrorEvent>(h.take_events());
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].error.code == ErrorCode::invalid);
  CHECK(h.frames().empty());

  // The session still works.
  h.feed(msg_frame("ops", 1, "m1", "bob"));
  CHECK(seqs_of(only<MessageEvent>(h.take_events())) == std::vector<Seq>{1});
  h.frames();
  std::string id = h.session.send("ops", body_of(json::object{{"text", "still here"}}), h.now);
  auto sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  h.feed(ack_frame("ops", id, Seq{2}));
  CHECK(h.session.outbox_size() == 0);
}

TEST_CASE("client session: a subscribe made while the hello is in flight goes out after welcome",
          "[client_session]") {
  Harness h;
  h.session.subscribe("ops", Seq{0}, h.now);
  h.start();
  h.open();
  auto hello = only<Hello>(h.frames());
  REQUIRE(hello.size() == 1);
  REQUIRE(hello[0].subs.size() == 1);
  h.session.subscribe("late", std::nullopt, h.now);  // after the hello, before the welcome
  h.collect();
  CHECK(only<Sub>(h.frames()).empty());  // not before the welcome: the edge has not said yes
  h.feed(welcome_frame());
  auto subs = only<Sub>(h.frames());
  REQUIRE(subs.size() == 1);  // "ops" came with the hello and is not asked for again
  CHECK(subs[0].request.conv == "late");
  CHECK_FALSE(subs[0].request.after);
}

TEST_CASE("client session: a caller-chosen id is used, checked, and queued once", "[client_session]") {
  Harness h;
  h.start();
  h.open();
  h.feed(welcome_frame());
  h.clear();
  std::string id = make_message_id(h.now, h.random);
  CHECK(h.session.send("ops", body_of(boost::json::object{{"n", 1}}), h.now, id) == id);
  CHECK(h.session.send("ops", body_of(boost::json::object{{"n", 1}}), h.now, id) == id);  // a repeat
  auto sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == id);
  CHECK(rows_of(h.take_events(), id).size() == 1);
  CHECK(h.session.outbox_size() == 1);

  std::string bad = h.session.send("ops", JsonText{"null"}, h.now, std::string("no spaces allowed"));
  auto rows = rows_of(h.take_events(), bad);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::failed);
  REQUIRE(rows[0].error);
  CHECK(rows[0].error->code == ErrorCode::invalid);
  CHECK(only<Send>(h.frames()).empty());
}

namespace {

std::size_t tokens_wanted(const std::vector<ClientEvent>& events) {
  return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [](const ClientEvent& e) {
    return std::holds_alternative<TokenWantedEvent>(e);
  }));
}

}  // namespace

TEST_CASE("token refresh: a refused token asks for a new one at once, then on the equal-jitter backoff",
          "[client_session]") {
  std::set<TimeMs> first_waits;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    INFO("seed " << seed);
    Harness h(seed);
    h.session.set_token_refresh(true);
    h.connect();
    h.feed(Bye{"token_expired", 0, 0});
    auto events = h.take_events();
    auto offline = only<ConnectionEvent>(events);
    REQUIRE(offline.size() == 1);
    CHECK(offline[0].token_refused);
    CHECK(offline[0].reason == "unauthorized: token expired");
    CHECK_FALSE(offline[0].next_retry_at);  // asked at once: no wait to announce
    CHECK(tokens_wanted(events) == 1);
    CHECK_FALSE(h.session.next_deadline());  // nothing until the host answers

    // The host's token source gives back the refused token, then fails: each retry waits at
    // least half of 1 s, 2 s, 4 s, ... and never reconnects with the refused token.
    CHECK_FALSE(h.session.token_fetched("dev:alice", h.now));
    CHECK_FALSE(h.session.token_fetched("", h.now));
    for (std::uint32_t n = 1; n <= 8; ++n) {
      INFO("retry " << n);
      h.session.token_fetch_failed(h.now, "getToken failed: boom");
      auto failed = h.take_events();
      auto announced = only<ConnectionEvent>(failed);
      REQUIRE(announced.size() == 1);
      CHECK(announced[0].reason == "unauthorized: getToken failed: boom");
      CHECK(announced[0].token_refused);
      REQUIRE(announced[0].next_retry_at);
      TimeMs wait = *announced[0].next_retry_at - h.now;
      TimeMs ceiling = std::min<TimeMs>(60000, TimeMs{1000} << (n - 1));
      CHECK(wait >= ceiling / 2);
      CHECK(wait <= ceiling);
      if (n == 1) first_waits.insert(wait);
      REQUIRE(h.session.next_deadline() == announced[0].next_retry_at);
      h.timer_at(*announced[0].next_retry_at - 1);
      CHECK(tokens_wanted(h.take_events()) == 0);
      h.timer_at(*announced[0].next_retry_at);
      CHECK(tokens_wanted(h.take_events()) == 1);
      CHECK(h.take_opened().empty());
    }
    // A new token reconnects at once; online resets the count: the next refusal asks at once.
    CHECK(h.session.token_fetched("dev:alice-2", h.now));
    REQUIRE(h.take_opened().size() == 1);
    auto hello = only<Hello>(h.handshake());
    REQUIRE(hello.size() == 1);
    CHECK(hello[0].token == "dev:alice-2");
    h.clear();
    h.feed(err_frame(ErrorCode::unauthorized, "token: expired"));
    CHECK(tokens_wanted(h.take_events()) == 1);
  }
  CHECK(first_waits.size() > 10);  // jittered
}

TEST_CASE("token refresh: a fetched token refused too waits before the next ask", "[client_session]") {
  Harness h(5);
  h.session.set_token_refresh(true);
  h.connect();
  h.feed(err_frame(ErrorCode::unauthorized, "token: bad signature"));
  REQUIRE(tokens_wanted(h.take_events()) == 1);
  REQUIRE(h.session.token_fetched("dev:alice-2", h.now));
  REQUIRE(h.take_opened().size() == 1);
  h.open();
  h.clear();
  h.feed(err_frame(ErrorCode::unauthorized, "token: bad signature"));  // refused before any welcome
  auto events = h.take_events();
  CHECK(tokens_wanted(events) == 0);
  auto offline = only<ConnectionEvent>(events);
  REQUIRE(offline.size() == 1);
  REQUIRE(offline[0].next_retry_at);
  CHECK(*offline[0].next_retry_at - h.now >= 500);
  CHECK(*offline[0].next_retry_at - h.now <= 1000);
  // connect_now (the app, or the browser coming online via wake) asks at once instead.
  h.session.wake(h.now);
  CHECK(tokens_wanted(h.take_events()) == 1);
  h.session.connect_now(h.now);  // already asked, not answered yet: nothing more
  CHECK(tokens_wanted(h.take_events()) == 0);
  CHECK(h.take_opened().empty());
}

TEST_CASE("wake: reconnects at once, but never with a refused token unless the app says so",
          "[client_session]") {
  Harness h(9);
  h.connect();
  h.close_socket();  // an ordinary loss: a backed-off reconnect is due
  REQUIRE(h.session.next_deadline());
  h.session.wake(h.now);
  REQUIRE(h.take_opened().size() == 1);  // at once
  h.handshake();
  h.feed(Bye{"token_expired", 0, 0});
  auto events = h.take_events();
  CHECK(tokens_wanted(events) == 0);  // no token refresh here
  h.session.wake(h.now + 1000);
  CHECK(h.take_opened().empty());
  h.session.connect_now(h.now + 2000);  // the app's explicit try with the same token
  CHECK(h.take_opened().size() == 1);
}

TEST_CASE("requeue puts an own message back with its id, body, cts and trace, once", "[client_session]") {
  Harness h(13);
  h.connect();
  h.clear();
  const std::string id = make_message_id(h.now, h.random);
  const std::string trace = make_traceparent(h.random);
  CHECK(h.session.requeue("ops", id, JsonText{R"({"text":"orphan"})"}, 1234, trace, h.now));
  CHECK_FALSE(h.session.requeue("ops", id, JsonText{R"({"text":"orphan"})"}, 1234, trace, h.now));
  CHECK_FALSE(h.session.requeue("bad conv", id, JsonText{"null"}, 1234, trace, h.now));
  CHECK_FALSE(h.session.requeue("ops", "bad id!", JsonText{"null"}, 1234, trace, h.now));
  CHECK_FALSE(h.session.requeue("ops", make_message_id(h.now, h.random), JsonText{"null"}, 1234, "no", h.now));
  CHECK_FALSE(h.session.requeue("ops", make_message_id(h.now, h.random), JsonText{"not json"}, 1234, trace, h.now));
  auto sends = only<Send>(h.frames());
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].id == id);
  CHECK(sends[0].body.text == R"({"text":"orphan"})");
  CHECK(sends[0].cts == std::optional<TimeMs>(1234));
  CHECK(sends[0].trace == std::optional<std::string>(trace));
  auto rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::queued);
  CHECK(h.session.outbox_size() == 1);
  CHECK(h.session.export_state().find(id) != std::string::npos);  // persisted like any send
}

TEST_CASE("a body that is not JSON fails its row at once, and the row carries no body", "[client_session]") {
  Harness h(17);
  h.connect();
  h.clear();
  std::string id = h.session.send("ops", JsonText{"not json"}, h.now);
  auto rows = rows_of(h.take_events(), id);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].state == RowState::failed);
  REQUIRE(rows[0].error);
  CHECK(rows[0].error->code == ErrorCode::invalid);
  CHECK_FALSE(rows[0].body);  // a JsonText holds valid JSON only
  CHECK(only<Send>(h.frames()).empty());
  CHECK(h.session.outbox_size() == 0);
}
