// fuzz_edge_node: libFuzzer target for the edge's frame handling (EdgeNode, edge_node.h) over
// a MemoryLogStore, dev tokens and a seeded random source, with the writer played by the
// harness so commits can be delayed, split, reported late or failed.
//
// The input is a script, one event per line: an op byte, a connection byte ('0'..'3'; any
// byte works, taken modulo 4) and a payload (the rest of the line):
//   c connect            d disconnect          t text frame (payload)   b binary frame
//   o oversized frame    h hello (dev token)   m a valid send           l drop_lagging
//   x shutdown           n advance the clock by the payload's number of ms (or to the
//                          node's next deadline for "nd") and run its timers, when it has them
//   w commit every pending write and report every finished batch to the node, in order
//   s commit the first k pending writes (k = payload byte) without reporting them yet
//   r report the oldest finished batch         f fail every pending write (a failing disk;
//                                                  reported like a commit, by w or r)
// Lines with an unknown op are skipped. E.g. "h0\nt0{\"t\":\"sub\",\"conv\":\"ops\"}\nm0\nw".
//
// After every event the node's outputs are checked against protocol.md and edge_node.h; a
// broken invariant aborts with a message on stderr (libFuzzer reports it as a crash):
//  - every EdgeWrite is a frame that parse_frame(Direction::from_edge) accepts;
//  - nothing is written to a connection that is not open, or after its EdgeClose, and a
//    connection is closed at most once; a bye is followed by its close;
//  - before its welcome a connection only gets err or bye, and at most one welcome;
//  - an ack only answers a committed write of that connection, reported in that step, with
//    the outcome's seq and dup; every reported commit of an open connection is acked, and
//    every send of an open connection in a failed batch gets a nack with retry:true;
//  - per connection and conversation, msg seqs go up by exactly one (the count restarts with
//    each sub or unsub the connection sends), every msg is byte for byte the frame of its
//    stored record, and msg, presence, rcpt and typing only reach connections that subscribed
//    to the conv;
//  - connection_count() matches the connections open; after its timers ran at `now`, the
//    node's next deadline (when it has one) is later than `now`;
//  - at the end, the store's log is dense per conversation and its id index matches it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "waymark/auth.h"
#include "waymark/codec.h"
#include "waymark/edge_node.h"
#include "waymark/identifiers.h"
#include "waymark/stored_record.h"
#include "core/memory_log_store.h"
#include "waymark/write_batch.h"

using namespace waymark;

// The message is only built when the check fails: building it every time costs more than the
// node's work.
#define FUZZ_CHECK(condition, message) \
  do {                                 \
    if (!(condition)) fail(message);   \
  } while (0)

namespace {

constexpr std::size_t kConnections = 4;
constexpr TimeMs kStart = 1'700'000'000'000;
const std::string kTenant = "dev";  // DevAuthenticator's tenant

// The limits of docs/security.md, where this EdgeConfig has them, small enough to be hit.
template <typename Config>
void tighten_limits(Config& config) {
  if constexpr (requires { config.rate_per_sec; config.rate_burst; }) {
    config.rate_per_sec = 50;
    config.rate_burst = 20;
  }
  if constexpr (requires { config.abuse_refusals; config.abuse_window_ms; }) {
    config.abuse_refusals = 8;
    config.abuse_window_ms = 2000;
  }
  if constexpr (requires { config.max_subs; }) config.max_subs = 3;
  if constexpr (requires { config.max_conns_per_user; }) config.max_conns_per_user = 2;
  if constexpr (requires { config.handshake_timeout_ms; }) config.handshake_timeout_ms = 3000;
}

// Small limits so that replay and page budgets, "more" and oversized frames are reached with
// a handful of messages.
EdgeConfig fuzz_config() {
  EdgeConfig config;
  config.node = "edge-fuzz";
  config.max_frame = 2048;
  config.replay_default = 4;
  config.replay_max = 6;
  config.hist_default = 3;
  config.hist_max = 5;
  config.page_max_bytes = 1024;
  tighten_limits(config);
  return config;
}

// Optional parts of EdgeNode's interface, used once they exist.
template <typename Node>
void run_timers(Node& node, TimeMs now) {
  if constexpr (requires { node.on_timer(now); }) node.on_timer(now);
}
template <typename Node>
std::optional<TimeMs> next_deadline(const Node& node) {
  if constexpr (requires { node.next_deadline(); })
    return node.next_deadline();
  else
    return std::nullopt;
}

struct ConnModel {
  bool open = false;         // between on_connect and on_disconnect
  bool closed = false;       // the node sent EdgeClose
  bool welcomed = false;
  std::uint64_t generation = 0;   // bumped on every connect: a reused id is a new connection
  std::set<std::string> subscribed;  // convs it sent sub (or hello.subs) for, minus unsubs
  std::map<std::string, Seq> last_msg;  // per conv: the last msg seq it got since its last sub
  int sends = 0;
};

struct PendingInfo {  // where an EdgePersist came from
  ConnId conn = 0;
  std::uint64_t generation = 0;
};

struct FinishedBatch {  // committed (or failed) by the writer, not yet reported to the node
  std::vector<WriteRequest> requests;
  Result<std::vector<WriteOutcome>> result;
};

class Harness {
 public:
  Harness() : node_(fuzz_config(), store_, auth_, random_) {}

  void run(std::string_view input) {
    std::size_t start = 0;
    while (start <= input.size()) {
      std::size_t end = input.find('\n', start);
      if (end == std::string_view::npos) end = input.size();
      step(input.substr(start, end - start));
      start = end + 1;
    }
    // The writer finishes what it holds, the node hears all of it, and the store is checked.
    event_ = "final commit";
    commit_pending(pending_.size());
    while (!finished_.empty()) report_oldest();
    check_store();
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_edge_node: %s\n  during: %s (now=%lld)\n", what.c_str(),
                 event_.c_str(), static_cast<long long>(now_ - kStart));
    std::abort();
  }

  static std::string excerpt(std::string_view text) {
    return std::string(text.substr(0, 300)) + (text.size() > 300 ? "..." : "");
  }

  void step(std::string_view line) {
    if (line.empty()) return;
    const char op = line[0];
    const std::size_t index = line.size() > 1 ? static_cast<unsigned char>(line[1] - '0') % kConnections : 0;
    const ConnId conn = index + 1;
    const std::string_view payload = line.size() > 2 ? line.substr(2) : std::string_view{};
    ConnModel& model = conns_[index];
    event_ = std::string(1, op) + " conn " + std::to_string(conn) + " " + excerpt(payload);
    ++now_;

    switch (op) {
      case 'c':
        if (model.open) return;  // a host never connects an id twice
        model = ConnModel{true, false, false, model.generation + 1, {}, {}, 0};
        node_.on_connect(conn, now_);
        break;
      case 'd':
        node_.on_disconnect(conn, now_);
        if (model.open) model = ConnModel{false, false, false, model.generation, {}, {}, 0};
        break;
      case 't':
        text(conn, model, payload);
        return;
      case 'h':
        text(conn, model, R"({"t":"hello","token":"dev:user)" + std::to_string(index % 2) + R"("})");
        return;
      case 'm': {
        const std::string conv = payload.empty() ? "ops" : "c" + std::to_string(static_cast<unsigned char>(payload[0]) % 3);
        text(conn, model, R"({"t":"send","conv":")" + conv + R"(","id":"m)" + std::to_string(index) + "-" +
                              std::to_string(++model.sends % 8) + R"(","body":{"n":)" +
                              std::to_string(model.sends) + "}}");
        return;
      }
      case 'b':
        node_.on_binary(conn, now_);
        break;
      case 'o':
        node_.on_oversized(conn, now_);
        break;
      case 'l':
        node_.drop_lagging(conn, now_);
        break;
      case 'x':
        node_.shutdown(now_);
        break;
      case 'n':
        advance_clock(payload);
        return;
      case 'w':
        commit_pending(pending_.size());
        while (!finished_.empty()) report_oldest();
        return;
      case 's':
        commit_pending(payload.empty() ? 1 : static_cast<unsigned char>(payload[0]) % (pending_.size() + 1));
        return;
      case 'r':
        if (!finished_.empty()) report_oldest();
        return;
      case 'f':
        fail_pending();
        return;
      default:
        return;
    }
    collect(conn, {});
  }

  // A text frame from conn: the model learns which convs it (un)subscribes.
  void text(ConnId conn, ConnModel& model, std::string_view frame) {
    auto parsed = parse_frame(frame, Direction::from_client, ParseLimits{std::size_t{1} << 30});
    if (parsed.ok()) {
      auto restart = [&](const std::string& conv, bool subscribing) {
        model.last_msg.erase(conv);
        if (subscribing) model.subscribed.insert(conv);
        else model.subscribed.erase(conv);
      };
      if (const auto* hello = std::get_if<Hello>(&parsed.value()))
        for (const SubRequest& sub : hello->subs) restart(sub.conv, true);
      if (const auto* sub = std::get_if<Sub>(&parsed.value())) restart(sub->request.conv, true);
      if (const auto* unsub = std::get_if<Unsub>(&parsed.value())) restart(unsub->conv, false);
    }
    node_.on_text(conn, frame, now_);
    collect(conn, {});
  }

  void advance_clock(std::string_view payload) {
    std::optional<TimeMs> deadline = next_deadline(node_);
    if (!payload.empty() && payload[0] == 'd' && deadline) {
      now_ = std::max(now_, *deadline);
    } else {
      TimeMs step = 0;
      for (char c : payload.substr(0, 9))
        if (c >= '0' && c <= '9') step = step * 10 + (c - '0');
      if (step == 0 && !payload.empty()) step = static_cast<unsigned char>(payload[0]) * 100;
      now_ += step;
    }
    run_timers(node_, now_);
    collect(0, {});
    if (std::optional<TimeMs> after = next_deadline(node_))
      FUZZ_CHECK(*after > now_, "next_deadline() " + std::to_string(*after - kStart) +
                               " is not after the timers just ran at " + std::to_string(now_ - kStart));
  }

  // ---- the writer ---------------------------------------------------------------------------

  void commit_pending(std::size_t count) {
    count = std::min(count, pending_.size());
    if (count == 0) return;
    std::vector<WriteRequest> batch(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(count));
    auto result = commit_batch(store_, batch);
    finished_.push_back(FinishedBatch{std::move(batch), std::move(result)});
  }

  void fail_pending() {
    if (pending_.empty()) return;
    store_.fail_writes(make_error(ErrorCode::unavailable, "disk full"));
    commit_pending(pending_.size());
    store_.fail_writes(std::nullopt);
    FUZZ_CHECK(!finished_.back().result.ok(), "a commit succeeded while the store fails every write");
  }

  void report_oldest() {
    FinishedBatch batch = std::move(finished_.front());
    finished_.pop_front();
    std::multiset<std::tuple<ConnId, std::string, std::string, Seq, bool>> expected_acks;
    std::multiset<std::tuple<ConnId, std::string, std::string>> expected_nacks;
    if (batch.result.ok()) {
      for (const WriteOutcome& outcome : batch.result.value()) {
        const auto* append = std::get_if<AppendOutcome>(&outcome.result);
        auto origin = origins_.find(outcome.ticket);
        if (!append || origin == origins_.end()) continue;
        const WriteRequest* request = nullptr;
        for (const WriteRequest& r : batch.requests)
          if (r.ticket == outcome.ticket) request = &r;
        const auto* msg = request ? std::get_if<AppendRequest>(&request->op) : nullptr;
        FUZZ_CHECK(msg != nullptr, "an append outcome for a ticket that was no append of this batch");
        const PendingInfo& from = origin->second;
        const ConnModel& model = conns_[from.conn - 1];
        if (model.open && !model.closed && model.generation == from.generation)
          expected_acks.emplace(from.conn, msg->msg.conv, msg->msg.id, append->seq, append->dup);
      }
    } else {
      // Every send of an open connection that the failed batch held is refused retry:true.
      for (const WriteRequest& request : batch.requests) {
        const auto* append = std::get_if<AppendRequest>(&request.op);
        auto origin = origins_.find(request.ticket);
        if (!append || origin == origins_.end()) continue;
        const ConnModel& model = conns_[origin->second.conn - 1];
        if (model.open && !model.closed && model.generation == origin->second.generation)
          expected_nacks.emplace(origin->second.conn, append->msg.conv, append->msg.id);
      }
    }
    node_.on_commit(batch.requests, batch.result, now_);
    for (const WriteRequest& request : batch.requests) origins_.erase(request.ticket);
    retry_nacks_.clear();
    collect(0, &expected_acks);
    if (!expected_acks.empty()) {
      const auto& [conn, conv, id, seq, dup] = *expected_acks.begin();
      fail("conn " + std::to_string(conn) + " got no ack for its committed send " + conv + "/" + id +
           " seq " + std::to_string(seq));
    }
    for (const auto& nack : expected_nacks) {
      auto seen = retry_nacks_.find(nack);
      if (seen == retry_nacks_.end())
        fail("conn " + std::to_string(std::get<0>(nack)) + " got no nack retry:true for its send " +
             std::get<1>(nack) + "/" + std::get<2>(nack) + " whose commit failed");
      retry_nacks_.erase(seen);
    }
  }

  // ---- the node's outputs -------------------------------------------------------------------

  // Checks and files everything the node asked for. Acks are allowed only when expected_acks
  // is given (a report of committed writes), and each must match one entry, which it removes.
  void collect(ConnId stepping, std::multiset<std::tuple<ConnId, std::string, std::string, Seq, bool>>* expected_acks) {
    std::set<ConnId> owe_close;  // got a bye in this step, its close must follow
    drain_outputs(
        node_, [&](EdgeWrite& write) { on_write(write, expected_acks, owe_close); },
        [&](EdgeClose& close) {
          FUZZ_CHECK(close.conn >= 1 && close.conn <= kConnections, "EdgeClose for an unknown connection");
          ConnModel& model = conns_[close.conn - 1];
          FUZZ_CHECK(model.open, "EdgeClose for conn " + std::to_string(close.conn) + ", which is not open");
          FUZZ_CHECK(!model.closed, "a second EdgeClose for conn " + std::to_string(close.conn));
          model.closed = true;
          owe_close.erase(close.conn);
        },
        [&](EdgePersist& persist) {
          const ConnModel& model = conns_[stepping ? stepping - 1 : 0];
          if (const auto* append = std::get_if<AppendRequest>(&persist.request.op)) {
            FUZZ_CHECK(stepping != 0 && model.open && model.welcomed && !model.closed,
                       "a send persisted for a connection that cannot send");
            FUZZ_CHECK(append->tenant == kTenant && !append->msg.seq, "an append with a seq or a foreign tenant");
            FUZZ_CHECK(origins_.count(persist.request.ticket) == 0, "a ticket used twice");
            origins_[persist.request.ticket] = PendingInfo{stepping, model.generation};
          }
          // Audit records carry nothing these invariants cover; they are committed like the rest.
          pending_.push_back(std::move(persist.request));
        });
    FUZZ_CHECK(owe_close.empty(), "a bye without its close, conn " +
                                 (owe_close.empty() ? std::string() : std::to_string(*owe_close.begin())));
    std::size_t open = 0;
    for (const ConnModel& model : conns_) open += model.open;
    FUZZ_CHECK(node_.connection_count() == open,
          "connection_count() " + std::to_string(node_.connection_count()) + " but " +
              std::to_string(open) + " connections are open");
  }

  void on_write(const EdgeWrite& write,
                std::multiset<std::tuple<ConnId, std::string, std::string, Seq, bool>>* expected_acks,
                std::set<ConnId>& owe_close) {
    FUZZ_CHECK(write.text != nullptr, "an EdgeWrite without text");
    const std::string& text = *write.text;
    const std::string who = "conn " + std::to_string(write.conn);
    FUZZ_CHECK(write.conn >= 1 && write.conn <= kConnections, "a write to unknown " + who + ": " + excerpt(text));
    ConnModel& model = conns_[write.conn - 1];
    FUZZ_CHECK(model.open, "a write to " + who + ", which is not open: " + excerpt(text));
    FUZZ_CHECK(!model.closed, "a write to " + who + " after its EdgeClose: " + excerpt(text));

    auto parsed = parse_frame(text, Direction::from_edge, ParseLimits{std::size_t{1} << 30});
    if (!parsed.ok()) fail("the node wrote a frame that does not parse (" + parsed.error().message + "): " + excerpt(text));
    const Frame& frame = parsed.value();

    if (std::holds_alternative<Welcome>(frame)) {
      FUZZ_CHECK(!model.welcomed, "a second welcome to " + who);
      model.welcomed = true;
    } else if (!model.welcomed) {
      FUZZ_CHECK(std::holds_alternative<Err>(frame) || std::holds_alternative<Bye>(frame),
            "before its welcome " + who + " got " + excerpt(text));
    }
    if (std::holds_alternative<Bye>(frame)) owe_close.insert(write.conn);

    if (const auto* nack = std::get_if<Nack>(&frame); nack && nack->retry)
      retry_nacks_.emplace(write.conn, nack->conv, nack->id);

    if (const auto* ack = std::get_if<Ack>(&frame)) {
      FUZZ_CHECK(expected_acks != nullptr, "an ack to " + who + " outside a commit report: " + excerpt(text));
      auto match = expected_acks->find({write.conn, ack->conv, ack->id, ack->seq.value_or(0), ack->dup});
      FUZZ_CHECK(match != expected_acks->end(), "an ack to " + who + " that matches no committed send: " + excerpt(text));
      expected_acks->erase(match);
    }

    const std::string* conv = nullptr;
    if (const auto* msg = std::get_if<Msg>(&frame)) conv = &msg->conv;
    if (const auto* presence = std::get_if<Presence>(&frame)) conv = &presence->conv;
    if (const auto* rcpt = std::get_if<Rcpt>(&frame)) conv = &rcpt->conv;
    if (const auto* typing = std::get_if<Typing>(&frame)) conv = &typing->conv;
    if (conv)
      FUZZ_CHECK(model.subscribed.count(*conv) != 0,
            who + " got a " + std::string(frame_type(frame)) + " of a conv it never subscribed to: " + excerpt(text));

    if (const auto* msg = std::get_if<Msg>(&frame)) {
      FUZZ_CHECK(msg->seq.has_value(), "a msg without seq from a sequencing edge: " + excerpt(text));
      auto stored = store_.data().log.find({kTenant, msg->conv, *msg->seq});
      FUZZ_CHECK(stored != store_.data().log.end(), "a msg that is not committed: " + excerpt(text));
      auto stored_frame = record_frame(stored->second, msg->conv, *msg->seq);
      FUZZ_CHECK(stored_frame.ok(), "a stored record that is not one: " + excerpt(text));
      FUZZ_CHECK(stored_frame.value() == text, "a msg that differs from its stored frame: " + excerpt(text));
      auto last = model.last_msg.find(msg->conv);
      if (last != model.last_msg.end())
        FUZZ_CHECK(*msg->seq == last->second + 1, who + " got " + msg->conv + " seq " + std::to_string(*msg->seq) +
                                                 " after seq " + std::to_string(last->second));
      model.last_msg[msg->conv] = *msg->seq;
    }
  }

  void check_store() {
    const MemoryLogStore::Data& data = store_.data();
    FUZZ_CHECK(data.ids.size() == data.log.size(), "the id index and the log differ in size");
    std::map<std::pair<std::string, std::string>, Seq> counted;
    for (const auto& [key, frame] : data.log) {
      const auto& [tenant, conv, seq] = key;
      Seq& previous = counted[{tenant, conv}];
      FUZZ_CHECK(seq == previous + 1, "the log of " + conv + " has a hole before seq " + std::to_string(seq));
      previous = seq;
    }
    for (const auto& [key, head] : data.heads) {
      auto it = counted.find(key);
      FUZZ_CHECK((it == counted.end() ? 0 : it->second) == head, "a head that is not the last seq of " + key.second);
    }
  }

  MemoryLogStore store_;
  DevAuthenticator auth_;
  SeededRandom random_{0xf022edULL};
  EdgeNode node_;
  TimeMs now_ = kStart;
  std::string event_;

  ConnModel conns_[kConnections];
  std::vector<WriteRequest> pending_;          // handed to the writer, not yet committed
  std::deque<FinishedBatch> finished_;         // committed, not yet reported
  std::map<std::uint64_t, PendingInfo> origins_;  // by ticket
  std::multiset<std::tuple<ConnId, std::string, std::string>> retry_nacks_;  // seen in a report
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Harness harness;
  harness.run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
