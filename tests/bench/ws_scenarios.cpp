// The scenarios against a WebSocket server: the Waymark edge (for relay: a relay and its
// root), or (ingest and idle only) the lws echo server that sets the transport ceiling. Frames
// are built and parsed with the core's codec. Every subscriber checks its conversation's seqs: each msg must be cursor + 1
// (a lower one is a repeat, a higher one a gap), across reconnects.
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "bench_options.h"
#include "bench_report.h"
#include "fault_proxy.h"
#include "overloaded.h"
#include "frame_peek.h"
#include "ws_driver.h"

namespace waymark::bench {
namespace {

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}
double seconds_since(std::int64_t start_ns) { return static_cast<double>(now_ns() - start_ns) / 1e9; }

std::string hello_text(const std::string& user, const std::vector<SubRequest>& subs) {
  Hello hello;
  hello.token = "dev:" + user;
  hello.device = "bench";
  hello.subs = subs;
  return serialize(Frame{std::move(hello)});
}

std::string sub_text(const std::string& conv, Seq after, std::optional<std::uint32_t> limit = {}) {
  Sub sub;
  sub.request.conv = conv;
  sub.request.after = after;
  sub.request.limit = limit;
  return serialize(Frame{std::move(sub)});
}

// The filler that makes a body about `payload` bytes: {"t0":<send time ns>,"p":"<filler>"}.
std::string body_filler(std::size_t payload) {
  std::size_t overhead = 32;
  return std::string(payload > overhead ? payload - overhead : 1, 'x');
}

// A send frame built as text, as the Redis peer builds its command: no DOM per message.
std::string send_text(const std::string& conv, const std::string& id, const std::string& filler,
                      std::int64_t t0) {
  std::string text = R"({"t":"send","conv":)";
  text += json_quote(conv);
  text += R"(,"id":)";
  text += json_quote(id);
  text += R"(,"body":{"t0":)";
  text += std::to_string(t0);
  text += R"(,"p":")";
  text += filler;
  text += R"("}})";
  return text;
}

// A harness message id: kind ('c' ingest connection, 'p' publisher), who, 'n', the counter in 20
// digits. Zero-padded, so that one sender's ids ascend as the SDK's do (ULID-like: the time
// first, make_message_id), and about as long (24 characters against 26): the store's id index
// sees what real clients send, not ids that sort out of order ("c1n10" < "c1n9").
std::string message_id(char kind, std::size_t who, std::int64_t counter) {
  std::string id(1, kind);
  id += std::to_string(who);
  id += 'n';
  std::string digits = std::to_string(counter);
  id.append(digits.size() < 20 ? 20 - digits.size() : 0, '0');
  id += digits;
  return id;
}

// The number after the last 'n' of a harness id ("c12n345" -> 345).
std::int64_t counter_of(const std::string& id) {
  auto at = id.rfind('n');
  if (at == std::string::npos) return -1;
  std::int64_t value = 0;
  for (std::size_t i = at + 1; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') return -1;
    value = value * 10 + (id[i] - '0');
  }
  return value;
}

// How the servers closed sockets and how many connects failed: the first thing to read when a
// run with thousands of clients does not finish.
void report_closes(const WsDriver& driver, Summary& summary) {
  std::string codes;
  for (const auto& [code, count] : driver.close_codes())
    codes += (codes.empty() ? "" : ",") + std::to_string(code) + ":" + std::to_string(count);
  summary.set("server_close_codes", codes.empty() ? std::string("none") : codes);
  summary.set("connect_failures", driver.connect_failures());
}

// Per-subscriber seq bookkeeping shared by fanout, storm and replay.
struct Cursor {
  Seq cursor = 0;
  std::uint64_t gaps = 0;
  std::uint64_t repeats = 0;
  std::uint64_t received = 0;
  // Returns true when the msg was the next one.
  bool take(Seq seq) {
    ++received;
    if (seq <= cursor) {
      ++repeats;
      return false;
    }
    if (seq > cursor + 1) ++gaps;
    cursor = seq;
    return true;
  }
};

// ---- ingest: C connections x W sends in flight ------------------------------------------------

class Ingest final : public WsHandler {
 public:
  Ingest(const BenchOptions& options, bool echo, std::string conv_prefix, bool shared_conv)
      : options_(options), echo_(echo), conv_prefix_(std::move(conv_prefix)),
        shared_conv_(shared_conv), filler_(body_filler(options.payload)) {}

  struct Conn {
    std::string conv;
    std::int64_t next = 0;
    int in_flight = 0;
    bool ready = false;
    std::vector<std::int64_t> sent_at;  // by counter
  };

  void attach(WsDriver& driver) {
    driver_ = &driver;
    conns_.resize(driver.size());
    for (std::size_t i = 0; i < conns_.size(); ++i)
      conns_[i].conv = shared_conv_ ? conv_prefix_ : conv_prefix_ + "-" + std::to_string(i);
  }

  std::string hello(WsConn& conn) override {
    if (echo_) return {};
    return hello_text("bench-ingest-" + std::to_string(conn.index), {});
  }
  void on_open(WsConn& conn) override {
    if (echo_) ready(conn);
  }
  void on_frame(WsConn& conn, Frame& frame) override {
    std::visit(Overloaded{
                   [&](Welcome&) { ready(conn); },
                   [&](Ack& ack) {
                     if (!ack.seq) ++unsequenced_acks_;  // a relay's "stored here, will be relayed"
                     completed(conn, ack.id, ack.seq.value_or(0), true);
                   },
                   [&](Send& echoed) { completed(conn, echoed.id, 0, true); },
                   [&](Nack& nack) {
                     if (nacks_ < 5)
                       std::fprintf(stderr, "nack: %s %s\n", nack.msg.c_str(), nack.id.c_str());
                     completed(conn, nack.id, 0, false);
                   },
                   [&](Err& err) {
                     ++errors_;
                     if (errors_ < 5) std::fprintf(stderr, "err: %s\n", err.msg.c_str());
                   },
                   [&](Bye&) { ++byes_; },
                   [](auto&) {},
               },
               frame);
  }
  void on_closed(WsConn&) override { ++closed_; }

  void ready(WsConn& conn) {
    Conn& state = conns_[conn.index];
    if (state.ready) return;
    state.ready = true;
    ++ready_;
    fill(conn);
  }

  // Sends while the window (and the rate, if any) allows.
  void fill(WsConn& conn) {
    Conn& state = conns_[conn.index];
    while (sending_ && state.ready && state.in_flight < options_.window && allowed() &&
           (limit_ == 0 || sent_ < limit_)) {
      std::int64_t counter = state.next++;
      std::int64_t t = now_ns();
      state.sent_at.push_back(t);
      driver_->send(conn, send_text(state.conv, message_id('c', conn.index, counter), filler_, t));
      ++state.in_flight;
      ++sent_;
    }
  }
  bool allowed() const {
    if (options_.rate <= 0) return true;
    return static_cast<double>(sent_) < options_.rate * seconds_since(start_ns_) + 1;
  }

  void completed(WsConn& conn, const std::string& id, Seq seq, bool acked) {
    Conn& state = conns_[conn.index];
    std::int64_t counter = counter_of(id);
    if (counter < 0 || counter >= static_cast<std::int64_t>(state.sent_at.size())) {
      ++unknown_;
      return;
    }
    --state.in_flight;
    std::int64_t now = now_ns();
    if (acked) {
      ++acked_;
      max_seq_ = std::max(max_seq_, seq);
      if (now >= measure_from_ && now < measure_until_) {
        ++acked_in_window_;
        latency_.record(now - state.sent_at[static_cast<std::size_t>(counter)]);
      }
    } else {
      ++nacks_;
    }
    fill(conn);
  }

  // Paced sends: called every tick so a rate-limited run keeps going without acks.
  void tick() {
    if (options_.rate <= 0 || !sending_) return;
    for (std::size_t i = 0; i < conns_.size() && allowed(); ++i) {
      std::size_t index = (rr_ + i) % conns_.size();
      fill(driver_->conn(index));
    }
    ++rr_;
  }

  const BenchOptions& options_;
  bool echo_;
  std::string conv_prefix_;
  bool shared_conv_;
  std::string filler_;
  WsDriver* driver_ = nullptr;
  std::vector<Conn> conns_;
  bool sending_ = true;
  std::uint64_t limit_ = 0;  // stop after this many sends (0: no limit)
  std::int64_t start_ns_ = now_ns();
  std::int64_t measure_from_ = 0;
  std::int64_t measure_until_ = 0;
  std::uint64_t ready_ = 0, sent_ = 0, acked_ = 0, acked_in_window_ = 0, nacks_ = 0;
  std::uint64_t errors_ = 0, byes_ = 0, closed_ = 0, unknown_ = 0, unsequenced_acks_ = 0;
  Seq max_seq_ = 0;
  std::size_t rr_ = 0;
  LatencyRecorder latency_;
};

bool connect_all(WsDriver& driver, const std::function<bool()>& all_ready, Progress& progress,
                 const std::function<std::string()>& status, double timeout_s) {
  for (std::size_t i = 0; i < driver.size(); ++i) driver.connect(i);
  return driver.run_until(all_ready, ms(timeout_s), [&] { progress.maybe_print(status()); });
}

// What the relay scenario needs from an ingest run beyond its summary.
struct IngestTail {
  std::uint64_t acked = 0;
  std::uint64_t unsequenced = 0;  // acks without seq: staged at a relay
  std::int64_t drained_ns = 0;    // when the last send was answered after sending stopped
  double root_cpu_pct = 0;        // options.root_pid during the measured window
};

bool ingest(const BenchOptions& options, Summary& summary, IngestTail* tail = nullptr) {
  bool echo = options.target == "echo";
  Ingest scenario(options, echo, "ingest-" + options.run_id, false);
  WsDriver driver({options.host, options.port, options.connect_window,
                   echo ? Direction::from_client : Direction::from_edge},
                  scenario);
  if (!driver.ok()) return false;
  driver.add(static_cast<std::size_t>(options.conns));
  scenario.attach(driver);
  Progress progress("ingest " + options.target);
  scenario.sending_ = false;  // connect everyone first
  if (!connect_all(driver, [&] { return scenario.ready_ == scenario.conns_.size(); }, progress,
                   [&] { return "connected " + std::to_string(scenario.ready_); }, options.timeout_s)) {
    summary.problems.push_back("not every connection was welcomed");
    return true;
  }
  scenario.sending_ = true;
  scenario.start_ns_ = now_ns();
  scenario.measure_from_ = scenario.start_ns_ + static_cast<std::int64_t>(options.warmup_s * 1e9);
  scenario.measure_until_ = scenario.measure_from_ + static_cast<std::int64_t>(options.duration_s * 1e9);
  for (std::size_t i = 0; i < driver.size(); ++i) scenario.fill(driver.conn(i));
  double edge_cpu_start = 0, own_cpu_start = 0, root_cpu_start = 0;
  bool cpu_sampled = false;
  std::uint64_t last_acked = 0;
  std::int64_t last_ns = now_ns();
  driver.run_until([&] { return now_ns() >= scenario.measure_until_; }, ms(options.timeout_s), [&] {
    if (!cpu_sampled && now_ns() >= scenario.measure_from_) {
      cpu_sampled = true;
      edge_cpu_start = process_cpu_seconds(options.edge_pid);
      own_cpu_start = own_cpu_seconds();
      if (tail) root_cpu_start = process_cpu_seconds(options.root_pid);
    }
    std::int64_t now = now_ns();
    if (now - last_ns >= 1'000'000'000) {
      double rate = static_cast<double>(scenario.acked_ - last_acked) / (static_cast<double>(now - last_ns) / 1e9);
      last_acked = scenario.acked_;
      last_ns = now;
      progress.maybe_print("acked " + std::to_string(scenario.acked_) + " (" +
                           std::to_string(static_cast<std::int64_t>(rate)) + "/s), in flight " +
                           std::to_string(scenario.sent_ - scenario.acked_ - scenario.nacks_));
    }
    scenario.tick();
  });
  double edge_cpu = process_cpu_seconds(options.edge_pid) - edge_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  double root_cpu = tail ? process_cpu_seconds(options.root_pid) - root_cpu_start : 0;
  // Stop sending; everything sent must come back acked.
  scenario.sending_ = false;
  driver.run_until([&] { return scenario.acked_ + scenario.nacks_ >= scenario.sent_; }, ms(30));
  if (tail) {
    tail->acked = scenario.acked_;
    tail->unsequenced = scenario.unsequenced_acks_;
    tail->drained_ns = now_ns();
    tail->root_cpu_pct = 100 * root_cpu / options.duration_s;
  }

  set_ingest_summary(summary, options,
                     IngestCounts{scenario.sent_, scenario.acked_, scenario.nacks_,
                                  scenario.acked_in_window_, edge_cpu, own_cpu},
                     scenario.latency_, "sends");
  if (scenario.nacks_) summary.problems.push_back(std::to_string(scenario.nacks_) + " sends nacked");
  if (scenario.errors_) summary.problems.push_back(std::to_string(scenario.errors_) + " err frames");
  if (scenario.closed_) summary.problems.push_back(std::to_string(scenario.closed_) + " sockets closed");
  if (scenario.unknown_) summary.problems.push_back(std::to_string(scenario.unknown_) + " acks for unknown ids");
  return true;
}

// ---- subscribers: fanout, storm, replay ----------------------------------------------------------

// Subscribers that resume from their cursor after any close, and a few publishers.
class Subscribers final : public WsHandler {
 public:
  struct Sub {
    std::string user;
    std::string conv;
    Cursor cursor;
    bool subscribed = false;  // subd seen on the current socket
    std::uint64_t sockets = 0;
  };
  struct Pub {
    int in_flight = 0;
    std::int64_t next = 0;
    bool ready = false;
  };

  Subscribers(const BenchOptions& options, std::size_t subscribers, std::size_t publishers)
      : options_(options), subs_(subscribers), pubs_(publishers),
        filler_(body_filler(options.payload)) {}

  bool is_pub(const WsConn& conn) const { return conn.index >= subs_.size(); }
  Pub& pub(const WsConn& conn) { return pubs_[conn.index - subs_.size()]; }

  std::string hello(WsConn& conn) override {
    if (is_pub(conn)) return hello_text("bench-pub-" + std::to_string(conn.index), {});
    Sub& sub = subs_[conn.index];
    sub.subscribed = false;
    ++sub.sockets;
    SubRequest request;
    request.conv = sub.conv;
    request.after = sub.cursor.cursor;
    if (replay_limit_) request.limit = replay_limit_;
    return hello_text(sub.user, {request});
  }

  void on_frame(WsConn& conn, Frame& frame) override {
    if (is_pub(conn)) {
      Pub& state = pub(conn);
      std::visit(Overloaded{
                     [&](Welcome&) {
                       state.ready = true;
                       ++pubs_ready_;
                     },
                     [&](Ack& ack) {
                       --state.in_flight;
                       ++acked_;
                       Seq seq = ack.seq.value_or(0);
                       Seq& head = heads_[ack.conv];
                       head = std::max(head, seq);
                     },
                     [&](Nack&) {
                       --state.in_flight;
                       ++nacked_;
                     },
                     [&](Err&) { ++errors_; },
                     [](auto&) {},
                 },
                 frame);
      return;
    }
    Sub& sub = subs_[conn.index];
    std::visit(Overloaded{
                   [&](Msg& msg) {
                     Seq seq = msg.seq.value_or(0);
                     if (!sub.cursor.take(seq)) return;
                     ++delivered_;
                     std::int64_t now = now_ns();
                     if (now >= measure_from_ && now < measure_until_) {
                       ++delivered_in_window_;
                       if (std::int64_t t0 = peek_t0(msg.body.text)) latency_.record(now - t0);
                     }
                   },
                   [&](Subd& subd) {
                     if (subd.more) {
                       ++more_rounds_;
                       driver_->send(conn, sub_text(sub.conv, sub.cursor.cursor, replay_limit_));
                       return;
                     }
                     if (!sub.subscribed) {
                       sub.subscribed = true;
                       ++subscribed_;
                     }
                   },
                   [&](Err&) { ++errors_; },
                   [&](Bye&) { ++byes_; },
                   [](auto&) {},
               },
               frame);
  }

  void on_closed(WsConn& conn) override {
    if (is_pub(conn)) {
      ++pub_closed_;
      return;
    }
    Sub& sub = subs_[conn.index];
    if (sub.subscribed) --subscribed_;
    sub.subscribed = false;
    ++unplanned_closes_;
    driver_->connect(conn.index);  // resume from the cursor
  }

  // Drops every subscriber socket and reconnects it at once (the storm).
  void drop_and_reconnect_all() {
    for (std::size_t i = 0; i < subs_.size(); ++i) {
      Sub& sub = subs_[i];
      if (sub.subscribed) --subscribed_;
      sub.subscribed = false;
      driver_->drop(driver_->conn(i));
      driver_->connect(i);
    }
  }

  // Publishes at `rate` msgs/s in total, round robin over convs, until `limit` have been sent.
  void publish(double rate, std::int64_t limit, const std::vector<std::string>& convs) {
    if (!publishing_) return;
    double allowed = rate * seconds_since(publish_start_) + 1;
    for (std::size_t p = 0; p < pubs_.size(); ++p) {
      WsConn& conn = driver_->conn(subs_.size() + p);
      Pub& state = pubs_[p];
      while (state.ready && state.in_flight < 256 && static_cast<double>(sent_) < allowed &&
             (limit <= 0 || static_cast<std::int64_t>(sent_) < limit)) {
        const std::string& conv = convs[sent_ % convs.size()];
        driver_->send(conn, send_text(conv, message_id('p', p, state.next++), filler_, now_ns()));
        ++state.in_flight;
        ++sent_;
      }
    }
  }

  bool all_caught_up() const {
    for (const Sub& sub : subs_) {
      auto head = heads_.find(sub.conv);
      Seq target = head == heads_.end() ? 0 : head->second;
      if (sub.cursor.cursor < target || !sub.subscribed) return false;
    }
    return true;
  }
  std::size_t caught_up_count() const {
    std::size_t count = 0;
    for (const Sub& sub : subs_) {
      auto head = heads_.find(sub.conv);
      Seq target = head == heads_.end() ? 0 : head->second;
      if (sub.cursor.cursor >= target && sub.subscribed) ++count;
    }
    return count;
  }
  void check(Summary& summary) const {
    std::uint64_t gaps = 0, repeats = 0;
    for (const Sub& sub : subs_) {
      gaps += sub.cursor.gaps;
      repeats += sub.cursor.repeats;
    }
    summary.set("gaps", gaps);
    summary.set("repeats", repeats);
    if (gaps) summary.problems.push_back(std::to_string(gaps) + " gaps");
    if (repeats) summary.problems.push_back(std::to_string(repeats) + " repeats");
    if (nacked_) summary.problems.push_back(std::to_string(nacked_) + " sends nacked");
    if (errors_) summary.problems.push_back(std::to_string(errors_) + " err frames");
    if (pub_closed_) summary.problems.push_back("a publisher's socket closed");
  }

  const BenchOptions& options_;
  WsDriver* driver_ = nullptr;
  std::vector<Sub> subs_;
  std::vector<Pub> pubs_;
  std::string filler_;
  std::optional<std::uint32_t> replay_limit_;
  std::unordered_map<std::string, Seq> heads_;  // highest acked seq per conv
  bool publishing_ = false;
  std::int64_t publish_start_ = 0;
  std::int64_t measure_from_ = 0, measure_until_ = 0;
  std::uint64_t subscribed_ = 0, pubs_ready_ = 0, sent_ = 0, acked_ = 0, nacked_ = 0;
  std::uint64_t delivered_ = 0, delivered_in_window_ = 0, more_rounds_ = 0;
  std::uint64_t errors_ = 0, byes_ = 0, unplanned_closes_ = 0, pub_closed_ = 0;
  LatencyRecorder latency_;
};

bool fanout(const BenchOptions& options, Summary& summary) {
  auto subs = static_cast<std::size_t>(options.subs);
  auto pubs = static_cast<std::size_t>(options.publishers);
  Subscribers scenario(options, subs, pubs);
  std::string conv = "fanout-" + options.run_id;
  for (auto& sub : scenario.subs_) {
    sub.user = "bench-fanout-sub";
    sub.conv = conv;
  }
  WsDriver driver({options.host, options.port, options.connect_window}, scenario);
  if (!driver.ok()) return false;
  driver.add(subs + pubs);
  scenario.driver_ = &driver;
  Progress progress("fanout");
  if (!connect_all(driver,
                   [&] { return scenario.subscribed_ == subs && scenario.pubs_ready_ == pubs; },
                   progress, [&] { return "subscribed " + std::to_string(scenario.subscribed_); },
                   options.timeout_s)) {
    summary.problems.push_back("not every subscriber got subd");
    return true;
  }
  std::vector<std::string> convs{conv};
  scenario.publishing_ = true;
  scenario.publish_start_ = now_ns();
  scenario.measure_from_ = scenario.publish_start_ + static_cast<std::int64_t>(options.warmup_s * 1e9);
  scenario.measure_until_ = scenario.measure_from_ + static_cast<std::int64_t>(options.duration_s * 1e9);
  double edge_cpu_start = 0, own_cpu_start = 0;
  bool cpu_sampled = false;
  driver.run_until([&] { return now_ns() >= scenario.measure_until_; }, ms(options.timeout_s), [&] {
    if (!cpu_sampled && now_ns() >= scenario.measure_from_) {
      cpu_sampled = true;
      edge_cpu_start = process_cpu_seconds(options.edge_pid);
      own_cpu_start = own_cpu_seconds();
    }
    scenario.publish(options.fanout_rate, 0, convs);
    progress.maybe_print("published " + std::to_string(scenario.acked_) + ", delivered " +
                         std::to_string(scenario.delivered_) + ", reconnects " +
                         std::to_string(scenario.unplanned_closes_));
  });
  double edge_cpu = process_cpu_seconds(options.edge_pid) - edge_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  scenario.publishing_ = false;
  // Drain: every subscriber must reach the last acked seq.
  bool drained = driver.run_until(
      [&] { return scenario.acked_ + scenario.nacked_ >= scenario.sent_ && scenario.all_caught_up(); },
      ms(60), [&] {
        progress.maybe_print("draining: caught up " + std::to_string(scenario.caught_up_count()) + "/" +
                             std::to_string(subs));
      });
  summary.set("subs", options.subs);
  summary.set("publishers", options.publishers);
  summary.set("rate_target", options.fanout_rate);
  summary.set("payload", static_cast<std::uint64_t>(options.payload));
  summary.set("seconds", options.duration_s);
  summary.set("published", scenario.acked_);
  summary.set("deliveries_per_s", static_cast<double>(scenario.delivered_in_window_) / options.duration_s);
  summary.set_latency("deliver", scenario.latency_);
  summary.set("lagging_reconnects", scenario.unplanned_closes_);
  summary.set("server_cpu_pct", 100 * edge_cpu / options.duration_s);
  summary.set("bench_cpu_pct", 100 * own_cpu / options.duration_s);
  report_closes(driver, summary);
  scenario.check(summary);
  if (!drained)
    summary.problems.push_back("only " + std::to_string(scenario.caught_up_count()) + " of " +
                               std::to_string(subs) + " subscribers got every message");
  return true;
}

bool storm(const BenchOptions& options, Summary& summary) {
  auto clients = static_cast<std::size_t>(options.clients);
  Subscribers scenario(options, clients, 1);
  std::vector<std::string> convs;
  for (int c = 0; c < options.convs; ++c) convs.push_back("storm-" + options.run_id + "-" + std::to_string(c));
  for (std::size_t i = 0; i < clients; ++i) {
    // One user per conversation: presence changes once per conversation, not per client.
    scenario.subs_[i].conv = convs[i % convs.size()];
    scenario.subs_[i].user = "bench-storm-" + std::to_string(i % convs.size());
  }
  WsDriver driver({options.host, options.port, options.connect_window}, scenario);
  if (!driver.ok()) return false;
  driver.add(clients + 1);
  scenario.driver_ = &driver;
  Progress progress("storm");
  std::int64_t connect_start = now_ns();
  if (!connect_all(driver,
                   [&] { return scenario.subscribed_ == clients && scenario.pubs_ready_ == 1; },
                   progress, [&] { return "subscribed " + std::to_string(scenario.subscribed_); },
                   options.timeout_s)) {
    summary.problems.push_back("only " + std::to_string(scenario.subscribed_) + " of " +
                               std::to_string(clients) + " clients got subd before the storm");
    return true;
  }
  std::int64_t connected_ns = now_ns();
  // Publish K messages; a quarter of the way in, drop every subscriber socket at once and
  // reconnect them all (paced only by the connect window) while the rest is sent.
  scenario.publishing_ = true;
  scenario.publish_start_ = now_ns();
  std::int64_t drop_ns = 0, resubscribed_ns = 0;
  bool done = driver.run_until(
      [&] {
        return drop_ns && scenario.acked_ + scenario.nacked_ >= static_cast<std::uint64_t>(options.messages) &&
               scenario.all_caught_up();
      },
      ms(options.timeout_s), [&] {
        scenario.publish(options.storm_rate, options.messages, convs);
        if (!drop_ns && scenario.acked_ >= static_cast<std::uint64_t>(options.messages / 4)) {
          drop_ns = now_ns();
          scenario.drop_and_reconnect_all();
        }
        if (drop_ns && !resubscribed_ns && scenario.subscribed_ == clients) resubscribed_ns = now_ns();
        progress.maybe_print("acked " + std::to_string(scenario.acked_) + "/" + std::to_string(options.messages) +
                             ", subscribed " + std::to_string(scenario.subscribed_) + ", caught up " +
                             std::to_string(drop_ns ? scenario.caught_up_count() : 0));
      });
  std::int64_t end_ns = now_ns();
  summary.set("clients", options.clients);
  summary.set("convs", options.convs);
  summary.set("messages", options.messages);
  summary.set("connect_s", static_cast<double>(connected_ns - connect_start) / 1e9);
  summary.set("resubscribed_s", resubscribed_ns ? static_cast<double>(resubscribed_ns - drop_ns) / 1e9 : -1.0);
  summary.set("caught_up_s", done ? static_cast<double>(end_ns - drop_ns) / 1e9 : -1.0);
  summary.set("delivered", scenario.delivered_);
  summary.set("more_rounds", scenario.more_rounds_);
  summary.set("lagging_reconnects", scenario.unplanned_closes_);
  report_closes(driver, summary);
  scenario.check(summary);
  if (!done)
    summary.problems.push_back("only " + std::to_string(scenario.caught_up_count()) + " of " +
                               std::to_string(clients) + " clients caught up within the timeout");
  return true;
}

bool replay(const BenchOptions& options, Summary& summary) {
  std::string conv = "replay-" + options.run_id;
  Progress progress("replay");
  // Fill: the ingest load into one conversation until it holds replay_messages.
  {
    Ingest fill(options, false, conv, true);
    WsDriver driver({options.host, options.port, options.connect_window}, fill);
    if (!driver.ok()) return false;
    driver.add(static_cast<std::size_t>(options.conns));
    fill.attach(driver);
    auto target = static_cast<std::uint64_t>(options.replay_messages);
    fill.sending_ = false;
    if (!connect_all(driver, [&] { return fill.ready_ == fill.conns_.size(); }, progress,
                     [&] { return "fill: connected " + std::to_string(fill.ready_); }, options.timeout_s)) {
      summary.problems.push_back("fill: not every connection was welcomed");
      return true;
    }
    fill.sending_ = true;
    fill.limit_ = target;
    fill.start_ns_ = now_ns();
    for (std::size_t i = 0; i < driver.size(); ++i) fill.fill(driver.conn(i));
    driver.run_until([&] { return fill.acked_ + fill.nacks_ >= target && fill.sent_ == fill.acked_ + fill.nacks_; },
                     ms(options.timeout_s * 10), [&] {
                       fill.tick();
                       progress.maybe_print("fill: acked " + std::to_string(fill.acked_) + "/" + std::to_string(target));
                     });
    if (fill.acked_ < target) {
      summary.problems.push_back("fill: only " + std::to_string(fill.acked_) + " acked");
      return true;
    }
  }
  Subscribers scenario(options, 1, 0);
  scenario.subs_[0].user = "bench-replayer";
  scenario.subs_[0].conv = conv;
  scenario.replay_limit_ = static_cast<std::uint32_t>(options.replay_limit);
  scenario.heads_[conv] = static_cast<Seq>(options.replay_messages);
  WsDriver driver({options.host, options.port, options.connect_window}, scenario);
  if (!driver.ok()) return false;
  driver.add(1);
  scenario.driver_ = &driver;
  std::int64_t start = now_ns();
  double edge_cpu_start = process_cpu_seconds(options.edge_pid);
  driver.connect(0);
  bool done = driver.run_until([&] { return scenario.all_caught_up(); }, ms(options.timeout_s), [&] {
    progress.maybe_print("replayed " + std::to_string(scenario.delivered_));
  });
  double seconds = seconds_since(start);
  summary.set("messages", options.replay_messages);
  summary.set("limit", options.replay_limit);
  summary.set("seconds", seconds);
  summary.set("msgs_per_s", static_cast<double>(scenario.delivered_) / seconds);
  summary.set("sub_rounds", scenario.more_rounds_ + 1);
  summary.set("server_cpu_pct", 100 * (process_cpu_seconds(options.edge_pid) - edge_cpu_start) / seconds);
  scenario.check(summary);
  if (!done) summary.problems.push_back("replay did not reach the head within the timeout");
  return true;
}

// ---- relay: ingest through a relay against direct, and convergence after a partition ---------

// The relay's /metrics sample `name`, or -1 when it cannot be read.
double relay_metric(int port, const char* name) {
  auto text = http_get(port, "/metrics");
  if (!text) return -1;
  return metric_value(*text, name).value_or(-1);
}

bool has_phase(const BenchOptions& options, const char* phase) {
  std::string list = "," + options.relay_phases + ",";
  return list.find("," + std::string(phase) + ",") != std::string::npos;
}

// The same ingest load against the root, then against the relay; the relay's acks carry no
// seq (staged), so afterwards the relay's /metrics is polled until its outbox is empty and it
// has stored every one of those sends back as sequenced (waymark_relay_replicated_total).
void relay_ingest(const BenchOptions& options, Summary& summary) {
  BenchOptions direct = options;
  direct.port = options.root_port;
  direct.edge_pid = options.root_pid;
  direct.run_id = options.run_id + "-direct";
  Summary direct_summary;
  ingest(direct, direct_summary);

  BenchOptions via = options;
  via.run_id = options.run_id + "-relay";
  double replicated_before = std::max(0.0, relay_metric(options.port, "waymark_relay_replicated_total"));
  Summary relay_summary;
  IngestTail tail;
  ingest(via, relay_summary, &tail);
  double outbox_at_end = relay_metric(options.port, "waymark_upstream_outbox");
  Progress progress("relay drain");
  double sequenced_s = -1, replicated = 0, outbox = outbox_at_end;
  std::int64_t deadline = now_ns() + static_cast<std::int64_t>(options.timeout_s * 1e9);
  while (now_ns() < deadline) {
    outbox = relay_metric(options.port, "waymark_upstream_outbox");
    replicated = relay_metric(options.port, "waymark_relay_replicated_total") - replicated_before;
    if (outbox == 0 && replicated >= static_cast<double>(tail.acked)) {
      sequenced_s = static_cast<double>(now_ns() - tail.drained_ns) / 1e9;
      break;
    }
    progress.maybe_print("outbox " + std::to_string(static_cast<std::int64_t>(outbox)) + ", replicated " +
                         std::to_string(static_cast<std::int64_t>(replicated)) + "/" + std::to_string(tail.acked));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (const auto& field : direct_summary.fields) summary.fields["direct_" + std::string(field.key())] = field.value();
  for (const auto& field : relay_summary.fields) summary.fields["relay_" + std::string(field.key())] = field.value();
  for (const auto& problem : direct_summary.problems) summary.problems.push_back("direct ingest: " + problem);
  for (const auto& problem : relay_summary.problems) summary.problems.push_back("relay ingest: " + problem);
  double direct_rate = direct_summary.fields["msgs_per_s"].to_number<double>();
  double relay_rate = relay_summary.fields["msgs_per_s"].to_number<double>();
  summary.set("relay_vs_direct", direct_rate > 0 ? relay_rate / direct_rate : 0.0);
  summary.set("relay_root_cpu_pct", tail.root_cpu_pct);
  summary.set("relay_unsequenced_acks", tail.unsequenced);
  summary.set("relay_outbox_at_end", outbox_at_end);
  summary.set("sequenced_after_ingest_s", sequenced_s);
  if (tail.unsequenced != tail.acked)
    summary.problems.push_back("relay ingest: " + std::to_string(tail.acked - tail.unsequenced) +
                               " acks carried a seq (is --port a relay?)");
  // Slow, not lost: the staged sends are durable at the relay and still draining; reported as
  // numbers, not as a correctness problem.
  summary.set("outbox_left", sequenced_s < 0 ? outbox : 0.0);
  summary.set("replicated", replicated);
  if (sequenced_s < 0)
    std::fprintf(stderr, "relay: the root had not sequenced every staged send within %.0f s (outbox %.0f, "
                 "replicated %.0f of %llu)\n", options.timeout_s, outbox, replicated,
                 static_cast<unsigned long long>(tail.acked));
}

// The partition: a sender and a subscriber (provisional opt-in) at the relay, a subscriber at
// the root, one conversation. Connection 0 sends, 1 subscribes at the relay, 2 at the root.
class Partition final : public WsHandler {
 public:
  struct Watcher {
    Cursor cursor;
    std::vector<std::string> ids;  // sequenced ids in seq order
    std::unordered_set<std::string> seen;
    std::unordered_set<std::string> provisional;  // partition msgs seen provisional
    std::uint64_t id_repeats = 0, provisional_repeats = 0, batch = 0;  // batch: sequenced partition msgs
    std::int64_t first_batch_ns = 0, last_batch_ns = 0;
    bool subscribed = false;
  };

  Partition(const BenchOptions& options, std::string conv, std::int64_t warm)
      : options_(options), conv_(std::move(conv)), warm_(warm), filler_(body_filler(options.payload)) {}

  Watcher& watcher(const WsConn& conn) { return conn.index == 1 ? relay_ : root_; }

  std::string hello(WsConn& conn) override {
    Hello hello;
    hello.device = "bench";
    if (conn.index == 0) {
      hello.token = "dev:bench-relay-sender";
    } else {
      Watcher& w = watcher(conn);
      w.subscribed = false;
      hello.token = conn.index == 1 ? "dev:bench-relay-sub" : "dev:bench-root-sub";
      hello.provisional = conn.index == 1;
      SubRequest request;
      request.conv = conv_;
      request.after = w.cursor.cursor;
      hello.subs.push_back(request);
    }
    return serialize(Frame{std::move(hello)});
  }

  void on_frame(WsConn& conn, Frame& frame) override {
    if (conn.index == 0) {
      std::visit(Overloaded{
                     [&](Welcome&) { sender_ready_ = true; },
                     [&](Ack& ack) {
                       --in_flight_;
                       ++acked_;
                       if (ack.seq) ++sequenced_acks_;
                       if (ack.seq && partitioned_) ++sequenced_acks_while_cut_;
                     },
                     [&](Nack& nack) {
                       --in_flight_;
                       ++nacked_;
                       if (nacked_ <= 5) std::fprintf(stderr, "nack: %s %s\n", nack.id.c_str(), nack.msg.c_str());
                     },
                     [&](Err& err) {
                       if (++errors_ <= 5) std::fprintf(stderr, "err: %s\n", err.msg.c_str());
                     },
                     [](auto&) {},
                 },
                 frame);
      fill(conn);
      return;
    }
    Watcher& w = watcher(conn);
    std::visit(Overloaded{
                   [&](Msg& msg) {
                     if (!msg.seq) {
                       if (counter_of(msg.id) < warm_) return;  // warm-up: provisional, then sequenced at once
                       if (!w.provisional.insert(msg.id).second) ++w.provisional_repeats;
                       return;
                     }
                     if (!w.cursor.take(*msg.seq)) return;
                     if (!w.seen.insert(msg.id).second) ++w.id_repeats;
                     w.ids.push_back(msg.id);
                     if (counter_of(msg.id) >= warm_) {
                       ++w.batch;
                       std::int64_t now = now_ns();
                       if (!w.first_batch_ns) w.first_batch_ns = now;
                       w.last_batch_ns = now;
                     }
                   },
                   [&](Subd&) { w.subscribed = true; },
                   [&](Err& err) {
                     if (++errors_ <= 5) std::fprintf(stderr, "err: %s\n", err.msg.c_str());
                   },
                   [](auto&) {},
               },
               frame);
  }

  void on_closed(WsConn& conn) override {
    if (conn.index == 0) {
      ++sender_closed_;
      return;
    }
    ++(conn.index == 1 ? relay_sub_closes_ : root_sub_closes_);
    watcher(conn).subscribed = false;
    driver_->connect(conn.index);  // resume from the cursor
  }

  void fill(WsConn& conn) {
    while (sender_ready_ && in_flight_ < options_.window && sent_ < limit_) {
      driver_->send(conn, send_text(conv_, message_id('s', 0, sent_), filler_, now_ns()));
      ++in_flight_;
      ++sent_;
    }
  }

  const BenchOptions& options_;
  std::string conv_;
  std::int64_t warm_;
  std::string filler_;
  WsDriver* driver_ = nullptr;
  Watcher relay_, root_;
  bool sender_ready_ = false, partitioned_ = false;
  std::int64_t sent_ = 0, limit_ = 0;
  int in_flight_ = 0;
  std::uint64_t acked_ = 0, nacked_ = 0, errors_ = 0, sequenced_acks_ = 0, sequenced_acks_while_cut_ = 0;
  std::uint64_t sender_closed_ = 0, relay_sub_closes_ = 0, root_sub_closes_ = 0;
};

void relay_partition(const BenchOptions& options, FaultProxy& proxy, Summary& summary) {
  constexpr std::int64_t warm = 20;  // sent and sequenced before the cut: the link and interest are up
  int relay_port = options.partition_port ? options.partition_port : options.port;
  auto n = options.partition_messages;
  Partition scenario(options, "partition-" + options.run_id, warm);
  WsDriver driver({options.host, relay_port, options.connect_window}, scenario);
  if (!driver.ok()) {
    summary.problems.push_back("partition: no lws context");
    return;
  }
  driver.add(3);
  driver.conn(2).port = options.root_port;
  scenario.driver_ = &driver;
  Progress progress("relay partition");
  auto secs = [](std::int64_t from, std::int64_t to) {
    return from && to ? static_cast<double>(to - from) / 1e9 : -1.0;
  };
  std::string phase = "connect";
  auto fail = [&](const std::string& what) { summary.problems.push_back("partition: " + what); };
  auto status = [&] {
    return phase + ": sent " + std::to_string(scenario.sent_) + ", acked " + std::to_string(scenario.acked_) +
           ", provisional at relay " + std::to_string(scenario.relay_.provisional.size()) +
           ", sequenced at relay " + std::to_string(scenario.relay_.ids.size()) + ", at root " +
           std::to_string(scenario.root_.ids.size());
  };
  auto tick = [&] { progress.maybe_print(status()); };
  summary.set("partition_mode", options.partition_mode);
  summary.set("partition_s", options.partition_s);
  summary.set("partition_messages", n);
  for (std::size_t i = 0; i < 3; ++i) driver.connect(i);
  bool ok = driver.run_until(
      [&] { return scenario.sender_ready_ && scenario.relay_.subscribed && scenario.root_.subscribed; },
      ms(options.timeout_s), tick);
  if (!ok) return fail("the sender or a subscriber was not welcomed/subscribed");
  phase = "warm-up";
  scenario.limit_ = warm;
  scenario.fill(driver.conn(0));
  ok = driver.run_until(
      [&] {
        return scenario.acked_ >= static_cast<std::uint64_t>(warm) &&
               scenario.relay_.ids.size() >= static_cast<std::size_t>(warm) &&
               scenario.root_.ids.size() >= static_cast<std::size_t>(warm);
      },
      ms(options.timeout_s), tick);
  if (!ok) return fail("the warm-up messages did not reach both subscribers sequenced");

  phase = "partitioned";
  std::int64_t cut_ns = now_ns();
  proxy.set_mode(options.partition_mode == "stall" ? FaultProxy::Mode::stall : FaultProxy::Mode::cut);
  scenario.partitioned_ = true;
  std::int64_t heal_at = cut_ns + static_cast<std::int64_t>(options.partition_s * 1e9);
  scenario.limit_ = warm + n;
  scenario.fill(driver.conn(0));
  std::int64_t acked_ns = 0, provisional_ns = 0;
  driver.run_until([&] { return now_ns() >= heal_at; }, ms(options.partition_s + 5), [&] {
    if (!acked_ns && scenario.acked_ + scenario.nacked_ >= static_cast<std::uint64_t>(warm + n)) acked_ns = now_ns();
    if (!provisional_ns && scenario.relay_.provisional.size() >= static_cast<std::size_t>(n)) provisional_ns = now_ns();
    tick();
  });
  std::uint64_t acked_while_cut = scenario.acked_ - static_cast<std::uint64_t>(warm);
  std::size_t batch_before_heal = scenario.relay_.batch + scenario.root_.batch;
  double reconnects_before = relay_metric(relay_port, "waymark_upstream_reconnects_total");

  phase = "healed";
  scenario.partitioned_ = false;
  std::int64_t heal_ns = now_ns();
  proxy.set_mode(FaultProxy::Mode::forward);
  auto target = static_cast<std::uint64_t>(n);
  ok = driver.run_until(
      [&] { return scenario.relay_.batch >= target && scenario.root_.batch >= target; },
      ms(options.timeout_s), tick);
  std::int64_t done_ns = now_ns();
  double reconnects_after = relay_metric(relay_port, "waymark_upstream_reconnects_total");
  std::string health = http_get(relay_port, "/healthz").value_or("");

  summary.set("partition_acked", acked_while_cut);
  summary.set("partition_acked_s", secs(cut_ns, acked_ns));
  summary.set("partition_sequenced_acks", scenario.sequenced_acks_while_cut_);
  summary.set("provisional_delivered", static_cast<std::uint64_t>(scenario.relay_.provisional.size()));
  summary.set("provisional_s", secs(cut_ns, provisional_ns));
  summary.set("heal_to_reconnect_s", secs(heal_ns, proxy.first_accept_after_heal_ns()));
  summary.set("heal_to_upstream_reply_s", secs(heal_ns, proxy.first_reply_after_heal_ns()));
  summary.set("heal_to_first_sequenced_s", secs(heal_ns, scenario.relay_.first_batch_ns));
  summary.set("converged_s", ok ? secs(heal_ns, scenario.relay_.last_batch_ns) : -1.0);
  summary.set("root_stored_s", ok ? secs(heal_ns, scenario.root_.last_batch_ns) : -1.0);
  summary.set("converge_wall_s", secs(heal_ns, done_ns));
  summary.set("first_to_last_sequenced_s", secs(scenario.relay_.first_batch_ns, scenario.relay_.last_batch_ns));
  summary.set("link_reconnects_during", reconnects_before >= 0 ? reconnects_before : -1.0);
  summary.set("link_reconnects_total", reconnects_after);
  summary.set("proxy_accepted", proxy.accepted());
  summary.set("proxy_reset", proxy.reset());
  summary.set("relay_healthz", health);
  summary.set("relay_sub_sequenced", static_cast<std::uint64_t>(scenario.relay_.ids.size()));
  summary.set("root_sub_sequenced", static_cast<std::uint64_t>(scenario.root_.ids.size()));
  summary.set("relay_sub_reconnects", scenario.relay_sub_closes_);
  summary.set("root_sub_reconnects", scenario.root_sub_closes_);
  report_closes(driver, summary);
  std::uint64_t gaps = scenario.relay_.cursor.gaps + scenario.root_.cursor.gaps;
  std::uint64_t repeats = scenario.relay_.cursor.repeats + scenario.root_.cursor.repeats +
                          scenario.relay_.id_repeats + scenario.root_.id_repeats;
  summary.set("gaps", gaps);
  summary.set("repeats", repeats);
  bool same_order = scenario.relay_.ids == scenario.root_.ids;
  summary.set("same_order", same_order ? std::string("yes") : std::string("no"));
  if (!ok)
    fail("not converged within " + std::to_string(static_cast<int>(options.timeout_s)) + " s of the heal (" +
         status() + ")");
  if (acked_while_cut < target) fail("only " + std::to_string(acked_while_cut) + " of the sends acked during the partition");
  if (scenario.sequenced_acks_while_cut_)
    fail(std::to_string(scenario.sequenced_acks_while_cut_) + " acks carried a seq while the link was down");
  if (batch_before_heal) fail(std::to_string(batch_before_heal) + " partition msgs arrived sequenced before the heal");
  if (scenario.relay_.provisional.size() < target)
    fail("only " + std::to_string(scenario.relay_.provisional.size()) + " provisional msgs at the relay");
  if (scenario.relay_.provisional_repeats) fail(std::to_string(scenario.relay_.provisional_repeats) + " provisional repeats");
  if (gaps) fail(std::to_string(gaps) + " gaps");
  if (repeats) fail(std::to_string(repeats) + " repeats");
  if (ok && !same_order) fail("the relay's subscriber saw another order than the root's");
  if (ok && scenario.root_.ids.size() != static_cast<std::size_t>(warm + n))
    fail("the root holds " + std::to_string(scenario.root_.ids.size()) + " msgs, not " + std::to_string(warm + n));
  if (scenario.nacked_) fail(std::to_string(scenario.nacked_) + " sends nacked");
  if (scenario.errors_) fail(std::to_string(scenario.errors_) + " err frames");
  if (scenario.sender_closed_) fail("the sender's socket closed");
}

bool relay(const BenchOptions& options, Summary& summary) {
  if (options.root_port <= 0) {
    std::fprintf(stderr, "waymark-bench: relay needs --root-port\n");
    return false;
  }
  std::unique_ptr<FaultProxy> proxy;
  if (has_phase(options, "partition")) {
    if (options.proxy_port <= 0) {
      std::fprintf(stderr, "waymark-bench: the relay partition needs --proxy-port (the relay's upstream)\n");
      return false;
    }
    // Up before anything is sent: a relay opens its link on the first send or subscription.
    proxy = std::make_unique<FaultProxy>(options.proxy_port, options.host, options.root_port);
    if (!proxy->ok()) {
      std::fprintf(stderr, "waymark-bench: cannot listen on 127.0.0.1:%d for the fault proxy\n", options.proxy_port);
      return false;
    }
  }
  if (has_phase(options, "ingest")) relay_ingest(options, summary);
  if (proxy) relay_partition(options, *proxy, summary);
  return true;
}

// ---- idle: N connections subscribed and idle -------------------------------------------------

class Idle final : public WsHandler {
 public:
  Idle(const BenchOptions& options, bool echo) : options_(options), echo_(echo) {}
  std::string hello(WsConn& conn) override {
    if (echo_) return {};
    std::size_t conv = conn.index % static_cast<std::size_t>(options_.convs);
    SubRequest request;
    request.conv = "idle-" + options_.run_id + "-" + std::to_string(conv);
    return hello_text("bench-idle-" + std::to_string(conv), {request});
  }
  void on_open(WsConn&) override {
    if (echo_) ++ready_;
  }
  void on_frame(WsConn&, Frame& frame) override {
    if (std::holds_alternative<Subd>(frame)) ++ready_;
    if (auto* err = std::get_if<Err>(&frame); err && ++errors_ <= 5)
      std::fprintf(stderr, "err: %s\n", err->msg.c_str());
  }
  void on_closed(WsConn&) override { ++closed_; }

  const BenchOptions& options_;
  bool echo_;
  std::uint64_t ready_ = 0, errors_ = 0, closed_ = 0;
};

bool idle(const BenchOptions& options, Summary& summary) {
  bool echo = options.target == "echo";
  Idle scenario(options, echo);
  WsDriver driver({options.host, options.port, options.connect_window,
                   echo ? Direction::from_client : Direction::from_edge},
                  scenario);
  if (!driver.ok()) return false;
  auto clients = static_cast<std::size_t>(options.clients);
  driver.add(clients);
  Progress progress("idle " + options.target);
  std::uint64_t rss_before = process_rss_bytes(options.edge_pid);
  std::uint64_t tcp_before = kernel_tcp_mem_bytes();
  std::int64_t start = now_ns();
  double server_cpu_start = process_cpu_seconds(options.edge_pid), own_cpu_start = own_cpu_seconds();
  bool connected = connect_all(
      driver, [&] { return scenario.ready_ + scenario.closed_ >= clients; }, progress,
      [&] { return "ready " + std::to_string(scenario.ready_) + ", closed " + std::to_string(scenario.closed_); },
      options.timeout_s);
  double connect_s = seconds_since(start);
  double server_cpu = process_cpu_seconds(options.edge_pid) - server_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  std::int64_t settle_until = now_ns() + static_cast<std::int64_t>(options.settle_s * 1e9);
  driver.run_until([&] { return now_ns() >= settle_until; }, ms(options.settle_s + 1));
  std::uint64_t rss_after = process_rss_bytes(options.edge_pid);
  std::uint64_t tcp_after = kernel_tcp_mem_bytes();
  auto per_conn = [&](std::uint64_t after, std::uint64_t before) {
    return after > before ? static_cast<double>(after - before) / static_cast<double>(clients) : 0.0;
  };
  summary.set("clients", options.clients);
  summary.set("ready", scenario.ready_);
  summary.set("connect_s", connect_s);
  summary.set("connect_server_cpu_pct", 100 * server_cpu / connect_s);
  summary.set("connect_bench_cpu_pct", 100 * own_cpu / connect_s);
  report_closes(driver, summary);
  summary.set("server_rss_before_mib", static_cast<double>(rss_before) / 1048576.0);
  summary.set("server_rss_after_mib", static_cast<double>(rss_after) / 1048576.0);
  summary.set("server_rss_per_conn_kib", per_conn(rss_after, rss_before) / 1024.0);
  summary.set("kernel_tcp_per_conn_kib", per_conn(tcp_after, tcp_before) / 1024.0);
  if (!connected || scenario.ready_ < clients)
    summary.problems.push_back(std::to_string(clients - std::min<std::uint64_t>(scenario.ready_, clients)) +
                               " clients never subscribed (" + std::to_string(scenario.closed_) + " closed)");
  if (scenario.errors_) summary.problems.push_back(std::to_string(scenario.errors_) + " err frames");
  if (options.edge_pid <= 0) summary.problems.push_back("no --server-pid: RSS not measured");
  return true;
}

}  // namespace

bool run_ws_scenario(const BenchOptions& options, Summary& summary) {
  bool echo = options.target == "echo";
  if (options.scenario == "ingest") return ingest(options, summary);
  if (options.scenario == "idle") return idle(options, summary);
  if (echo) {
    std::fprintf(stderr, "waymark-bench: the echo target runs ingest and idle only\n");
    return false;
  }
  if (options.scenario == "fanout") return fanout(options, summary);
  if (options.scenario == "storm") return storm(options, summary);
  if (options.scenario == "replay") return replay(options, summary);
  if (options.scenario == "relay") return relay(options, summary);
  std::fprintf(stderr, "waymark-bench: unknown scenario %s\n", options.scenario.c_str());
  return false;
}

}  // namespace waymark::bench
