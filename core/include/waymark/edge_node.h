// EdgeNode: the edge's protocol logic for all its connections, sans-I/O. The lws host feeds
// it connection events and frames; it answers with EdgeOutputs (frames to write, sockets to
// close, writes to persist). Persisted writes come back through on_committed/on_commit_failed,
// and only then are acks written and messages fanned out: an ack means durably stored.
// Not thread-safe: one owner thread (the edge's lws service thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "waymark/audit.h"
#include "waymark/auth.h"
#include "waymark/client_events.h"
#include "waymark/codec.h"
#include "waymark/frames.h"
#include "waymark/identifiers.h"
#include "waymark/log_store.h"
#include "waymark/upstream_op.h"
#include "waymark/write_batch.h"

namespace waymark {

using ConnId = std::uint64_t;

struct EdgeConfig {
  std::string node = "edge-1";         // welcome.node
  TimeMs heartbeat_ms = 15000;         // welcome.hb
  std::size_t max_frame = 65536;       // welcome.max_frame; longer frames close with 1009
  std::uint32_t replay_default = 500;  // sub without limit
  std::uint32_t replay_max = 1000;     // sub.limit above this is lowered to it
  std::uint32_t hist_default = 50;     // hist without limit
  std::uint32_t hist_max = 1000;
  // Bytes of msg frames one replay or one history page may carry (at least one message);
  // the rest comes with more:true. Keep it well below the host's per-connection queue bound.
  std::size_t page_max_bytes = std::size_t{1} << 20;
  // bye.retry_ms on shutdown: [min, min + spread] with min drawn in [low, low + jitter].
  TimeMs shutdown_retry_low_ms = 500;
  TimeMs shutdown_retry_jitter_ms = 1500;
  TimeMs shutdown_retry_spread_ms = 5000;
  // bye.retry_ms when a lagging reader is dropped.
  TimeMs lagging_retry_min_ms = 250;
  TimeMs lagging_retry_max_ms = 2000;

  // Limits (docs/security.md). Every frame a connection sends takes one token from its bucket
  // of rate_burst tokens refilled at rate_per_sec (0: no limit); a frame finding it empty is
  // refused with rate_limited. abuse_refusals refusals within abuse_window_ms: bye + 4008.
  std::uint32_t rate_per_sec = 1000;
  std::uint32_t rate_burst = 2000;
  std::uint32_t abuse_refusals = 2000;
  TimeMs abuse_window_ms = 10000;
  std::uint32_t typing_per_sec = 2;          // typing on, per connection and conversation
  std::uint32_t max_subs = 1000;             // per connection
  std::uint32_t max_conns_per_user = 100;    // per (tenant, user), counted after hello
  TimeMs handshake_timeout_ms = 10000;       // socket open -> hello, else unauthorized + 4001
  std::uint32_t audit_per_sec = 100;         // node-wide; further records are only counted
  // bye.retry_ms for abusive, too_many_connections and token_expired closes.
  TimeMs abuse_retry_min_ms = 5000;
  TimeMs abuse_retry_max_ms = 30000;
  TimeMs expired_retry_min_ms = 0;
  TimeMs expired_retry_max_ms = 1000;

  // A relaying edge (docs/regions.md), set when the host has an upstream: a send is staged
  // here, acked without seq, shown to local subscribers as provisional and forwarded upstream
  // (take_upstream); the log holds what the upstream sequenced, replicated through on_upstream.
  bool relay = false;
  // An upstream subscription outlives its last local subscriber (and staged send) this long.
  TimeMs interest_linger_ms = 30000;
  // A hist at a relay for a conversation its log may lack (not followed, or behind the
  // upstream's head) waits until the log has caught up, at most this long; then it is served
  // from what the log holds (the link is down: a partition).
  TimeMs relay_hist_wait_ms = 2000;
};

struct EdgeWrite {   // write a text frame (shared: a fanned-out msg is serialized once)
  ConnId conn = 0;
  std::shared_ptr<const std::string> text;
  std::string_view type;  // the frame's "t", for the host's counters (a static string)
};
struct EdgeClose {   // close the socket with this code after the writes before it
  ConnId conn = 0;
  int code = 1000;
  std::string reason;
};
struct EdgePersist { // hand to the writer; report back with on_committed / on_commit_failed
  WriteRequest request;
};
struct EdgeFanout {  // EdgeWrite of one shared frame to each of conns, in this order: one output
                    // per fanned-out frame, not one per subscriber
  std::vector<ConnId> conns;
  std::shared_ptr<const std::string> text;
  std::string_view type;
};
using EdgeOutput = std::variant<EdgeWrite, EdgeClose, EdgePersist, EdgeFanout>;

struct EdgeCounters {
  std::map<std::string, std::uint64_t> frames_in;   // by type; "invalid" for unparsable
  std::map<std::string, std::uint64_t> errors_out;  // by code, err and nack alike
  std::uint64_t messages_persisted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t fanout_deliveries = 0;
  std::uint64_t replayed_messages = 0;
  std::uint64_t connections_open = 0;
  std::uint64_t audit_records = 0;     // handed to the writer
  std::uint64_t audit_suppressed = 0;  // over audit_per_sec: counted, not stored
  // A relaying edge:
  std::uint64_t staged_now = 0;           // sends stored here, not yet sequenced upstream
  std::uint64_t replicated_messages = 0;  // sequenced msgs stored from upstream
  std::uint64_t dead_letters = 0;         // staged sends the root refused for good
  std::uint64_t provisional_deliveries = 0;
};

// A relaying edge's view of one tenant's upstream link, from its ClientSession's events.
struct UpstreamLinkStatus {
  ConnectionState state = ConnectionState::connecting;
  std::uint64_t reconnects = 0;   // online -> not online transitions
  std::string reason;             // why not online, when it is not
  bool stopped = false;           // stopped for good (a cycle; a refused node token)
  // Messages the upstream has sequenced that this node's log does not hold yet, summed over
  // the conversations it follows (the upstream's head from its subd and msgs, minus ours).
  std::uint64_t replication_lag = 0;
};

class EdgeNode;

// The one loop every host of an EdgeNode runs (the lws server, the test harness, the
// simulation, the fuzzer): takes the node's outputs until it has none left (a handler may make
// the node say more, as drop_lagging does) and hands each to the handler for its kind, in order.
// `go_on()` is asked before each batch; a host stops there when it must (a simulated crash).
template <typename OnWrite, typename OnClose, typename OnPersist, typename GoOn>
void drain_outputs(EdgeNode& node, OnWrite&& on_write, OnClose&& on_close, OnPersist&& on_persist,
                   GoOn&& go_on);
template <typename OnWrite, typename OnClose, typename OnPersist>
void drain_outputs(EdgeNode& node, OnWrite&& on_write, OnClose&& on_close, OnPersist&& on_persist) {
  drain_outputs(node, on_write, on_close, on_persist, [] { return true; });
}

class EdgeNode {
 public:
  // REQUIRES: reader, auth and random outlive the node.
  EdgeNode(EdgeConfig config, LogReader& reader, Authenticator& auth, RandomSource& random);

  // peer: the remote address, for audit records.
  void on_connect(ConnId conn, TimeMs now, std::string peer = {});
  void on_text(ConnId conn, std::string_view text, TimeMs now);
  void on_binary(ConnId conn, TimeMs now);
  void on_oversized(ConnId conn, TimeMs now);  // a frame over max_frame: err + close 1009
  void on_disconnect(ConnId conn, TimeMs now);

  void on_committed(const std::vector<WriteOutcome>& outcomes, TimeMs now);
  void on_commit_failed(const std::vector<WriteRequest>& requests, const Error& error,
                        TimeMs now);
  // A finished group commit of `requests` (commit_batch's result): on_committed when it
  // succeeded, else on_commit_failed. Every host reports its writer's batches through this.
  void on_commit(const std::vector<WriteRequest>& requests,
                 const Result<std::vector<WriteOutcome>>& result, TimeMs now);

  // Handshake timeouts and token expiry due by now. The host calls it at next_deadline().
  void on_timer(TimeMs now);
  std::optional<TimeMs> next_deadline() const;

  // SIGHUP: the authenticator re-reads its secrets; the outcome is logged and audited.
  void reload_auth(TimeMs now);

  // bye + close 4008: the host saw conn's queue pass its bound.
  void drop_lagging(ConnId conn, TimeMs now);
  // bye + close 1001 for every connection; new frames are refused with unavailable after.
  void shutdown(TimeMs now);

  // ---- a relaying edge (config.relay) ----
  // After a restart, before serving: every staged send is forwarded again, in staged order.
  Status recover_staged(TimeMs now);
  // What the upstream links must do; the host applies each with apply_upstream on the
  // tenant's link session (created on the tenant's first op).
  std::vector<UpstreamOp> take_upstream();
  // An event of the tenant's link session (messages, receipts, typing, presence, refused
  // sends, connection changes); the node stores, fans out and answers as it must.
  void on_upstream(const std::string& tenant, const ClientEvent& event, TimeMs now);
  const std::map<std::string, UpstreamLinkStatus>& upstream_links() const { return links_; }
  // When the oldest staged send was accepted, if any (its age: the outbox's).
  std::optional<TimeMs> oldest_staged_at() const;
  // This node and its upstreams up to the root (welcome.path to a relay connecting here).
  const std::vector<std::string>& path() const { return path_; }

  std::vector<EdgeOutput> take_outputs();
  const EdgeCounters& counters() const { return counters_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Subscription {
    bool live = false;   // caught up: receives fanout
    Seq last_sent = 0;   // highest seq written to this connection for the conv
  };
  // Milli-tokens, so refills are exact integers.
  struct Bucket {
    std::int64_t tokens = -1;  // -1: full (not used yet)
    TimeMs refilled_at = 0;
    bool take(std::uint32_t per_sec, std::uint32_t burst, TimeMs now);
  };
  struct Connection {
    std::optional<Identity> identity;
    bool closing = false;
    std::map<std::string, Subscription> subs;  // by conv
    std::string peer;
    TimeMs deadline = 0;  // handshake deadline before hello, token expiry after (0: none)
    Bucket frames;
    bool provisional = false;                 // hello.provisional
    std::optional<std::string> relay_node;    // hello.relay.node: a downstream relay
    std::map<std::string, Bucket> typing;      // by conv
    TimeMs refusals_since = 0;
    std::uint32_t refusals = 0;
    bool counted = false;  // in user_connections_
    // A downstream relay's users it said are present, (conv, user): each counts once in
    // the topic's present until the relay says otherwise, unsubscribes or goes.
    std::set<std::pair<std::string, std::string>> relayed_present;
  };
  struct Topic {  // one (tenant, conv) on this node
    std::set<ConnId> subscribers;
    std::map<std::string, std::uint32_t> present;  // user -> subscribed connections
  };
  enum class WriteKind { send, receipt, upstream_receipt, replicate, dead_letter };
  struct PendingWrite {
    ConnId conn = 0;
    std::optional<std::string> rid;
    std::string tenant, conv, id;
    WriteKind what = WriteKind::send;
    std::string user;                          // receipts: whose
    ReceiptKind kind = ReceiptKind::read;      // receipts: which cursor
    Error reason;                              // dead letters: the root's refusal
    Seq seq = 0;                               // replicated msgs: the upstream's seq
  };
  struct Interest {  // a relaying edge's upstream subscription to one (tenant, conv)
    bool on = false;
    std::uint32_t staged = 0;   // staged sends waiting for their seq
    TimeMs linger_until = 0;    // 0: held (local subscribers or staged sends)
    Seq upstream_head = 0;      // the highest seq the upstream told us of
    Seq local_head = 0;         // the highest seq of it in our log
    bool synced = false;        // upstream_head is from the link's current subscription (subd)
    std::uint32_t hists = 0;    // parked hists waiting for the log to catch up (it holds them)
  };
  struct ParkedHist {  // a relay's hist waiting for its log (relay_hist_wait_ms)
    ConnId conn = 0;
    Hist frame;
    TimeMs until = 0;
  };
  using TopicKey = std::pair<std::string, std::string>;

  void handle(ConnId conn, Connection& c, Hello&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Sub&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Unsub&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Hist&& frame, TimeMs now);
  void serve_hist(ConnId conn, const std::string& tenant, const Hist& frame);
  bool hist_ready(const TopicKey& key) const;  // a relay's log holds what the upstream has
  void answer_parked_hists(const TopicKey& key, bool expired_only, TimeMs now);
  void handle(ConnId conn, Connection& c, Send&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Ping&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Rcpt&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Typing&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Presence&& frame, TimeMs now);
  // user's count in the topic's present went up (on) or down by one, by conn: announce the
  // first and the last to the topic's other subscribers and, on a relay, upstream.
  void presence_counted(const TopicKey& key, const std::string& user, bool on, ConnId conn);
  // The user a frame acts for: the connection's own, or on a relay connection the frame's
  // "as" (required there, refused elsewhere). nullopt after answering with the refusal.
  std::optional<std::string> acting_user(ConnId conn, const Connection& c,
                                         const std::optional<std::string>& as,
                                         std::string_view frame,
                                         const std::optional<std::string>& rid, TimeMs now);
  bool hello_relay(ConnId conn, Connection& c, const Hello& frame, Identity& identity, TimeMs now);

  // relaying
  void hold_interest(const TopicKey& key, Seq after);
  // Raises the interest's heads and keeps the tenant link's replication_lag their sum.
  void note_heads(const TopicKey& key, Seq upstream_head, Seq local_head);
  void release_interest(const TopicKey& key, TimeMs now);
  void staged_added(const std::string& tenant, const std::string& conv, const std::string& id,
                    TimeMs at);
  void staged_removed(const std::string& tenant, const std::string& conv, const std::string& id,
                      TimeMs now);
  void rewind_upstream(const std::string& tenant, const std::string& conv);
  void fan_out_provisional(const TopicKey& key, const std::shared_ptr<const std::string>& frame);
  void set_upstream_path(const std::string& tenant, const std::vector<std::string>& upstream,
                         TimeMs now);
  void persist(WriteRequest request, PendingWrite pending);

  void subscribe(ConnId conn, Connection& c, const SubRequest& request,
                 const std::optional<std::string>& rid, TimeMs now);
  void unsubscribe(ConnId conn, Connection& c, const std::string& conv, TimeMs now);
  void fan_out_msg(const std::string& tenant, const std::string& conv, Seq seq,
                   const std::shared_ptr<const std::string>& frame);
  // Serializes frame once and writes it to the topic's live subscribers but `except`.
  void send_to_topic(const TopicKey& key, const Frame& frame, ConnId except);
  // Sub, unsub, hist, rcpt and hello.subs need read access (the token's convs or read claim);
  // send and typing need write access (convs).
  enum class Access { read, write };
  bool check_access(ConnId conn, const Connection& c, const std::string& conv,
                    std::string_view frame, const std::optional<std::string>& rid, TimeMs now,
                    Access need);
  // rid: the frame's, or a refused frame's (FrameError::rid), for the answer.
  bool admit_frame(ConnId conn, Connection& c, const Frame* frame,
                   const std::optional<std::string>& rid, TimeMs now);
  void count_refusal(ConnId conn, Connection& c, TimeMs now);
  bool admit_typing(Connection& c, const std::string& conv, TimeMs now);
  void set_deadline(ConnId conn, Connection& c, TimeMs at);
  void audit(AuditRecord record, TimeMs now, bool always = false);
  AuditRecord audit_of(const Connection& c, std::string event, TimeMs now) const;

  bool writable(ConnId conn) const;
  void write(ConnId conn, std::string text, std::string_view type);
  void push_fanout(EdgeFanout fanout);  // nothing when it reaches nobody
  void write_frame(ConnId conn, const Frame& frame);
  void send_error(ConnId conn, ErrorCode code, std::string msg,
                  const std::optional<std::string>& rid);
  void send_nack(ConnId conn, const std::string& conv, const std::string& id, ErrorCode code,
                 std::string msg, bool retry, const std::optional<std::string>& rid);
  void close(ConnId conn, Connection& c, int code, std::string reason);
  void say_bye(ConnId conn, Connection& c, std::string reason, TimeMs min_ms, TimeMs max_ms,
               int code);

  EdgeConfig config_;
  LogReader& reader_;
  Authenticator& auth_;
  RandomSource& random_;
  bool shutting_down_ = false;

  std::unordered_map<ConnId, Connection> connections_;
  std::set<std::pair<TimeMs, ConnId>> deadlines_;
  std::map<std::pair<std::string, std::string>, std::uint32_t> user_connections_;
  Bucket audit_bucket_;
  std::map<TopicKey, Topic> topics_;
  std::unordered_map<std::uint64_t, PendingWrite> pending_;  // by ticket
  std::uint64_t next_ticket_ = 1;

  // relaying
  std::vector<std::string> path_;                 // this node, then its upstreams
  std::map<TopicKey, Interest> interest_;
  std::set<std::pair<TimeMs, TopicKey>> interest_deadlines_;
  std::map<TopicKey, std::vector<ParkedHist>> parked_hists_;
  std::set<std::pair<TimeMs, TopicKey>> parked_hist_deadlines_;
  std::map<std::tuple<std::string, std::string, std::string>, TimeMs> staged_;  // -> accepted at
  std::multiset<TimeMs> staged_times_;
  std::map<std::string, UpstreamLinkStatus> links_;  // by tenant
  std::vector<UpstreamOp> upstream_;
  // Users present elsewhere in the tree, as the upstream link told: in subd.present here.
  std::map<TopicKey, std::set<std::string>> upstream_present_;

  std::vector<EdgeOutput> outputs_;
  EdgeCounters counters_;
};

template <typename OnWrite, typename OnClose, typename OnPersist, typename GoOn>
void drain_outputs(EdgeNode& node, OnWrite&& on_write, OnClose&& on_close, OnPersist&& on_persist,
                   GoOn&& go_on) {
  while (go_on()) {
    std::vector<EdgeOutput> outputs = node.take_outputs();
    if (outputs.empty()) return;
    for (EdgeOutput& output : outputs) {
      if (auto* write = std::get_if<EdgeWrite>(&output)) {
        on_write(*write);
      } else if (auto* fanout = std::get_if<EdgeFanout>(&output)) {
        for (ConnId conn : fanout->conns) {
          EdgeWrite each{conn, fanout->text, fanout->type};
          on_write(each);
        }
      } else if (auto* close = std::get_if<EdgeClose>(&output)) {
        on_close(*close);
      } else {
        on_persist(std::get<EdgePersist>(output));
      }
    }
  }
}

}  // namespace waymark
