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

#include "waymark/auth.h"
#include "waymark/codec.h"
#include "waymark/frames.h"
#include "waymark/identifiers.h"
#include "waymark/log_store.h"
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
};

struct EdgeWrite {   // write a text frame (shared: a fanned-out msg is serialized once)
  ConnId conn = 0;
  std::shared_ptr<const std::string> text;
};
struct EdgeClose {   // close the socket with this code after the writes before it
  ConnId conn = 0;
  int code = 1000;
  std::string reason;
};
struct EdgePersist { // hand to the writer; report back with on_committed / on_commit_failed
  WriteRequest request;
};
using EdgeOutput = std::variant<EdgeWrite, EdgeClose, EdgePersist>;

struct EdgeCounters {
  std::map<std::string, std::uint64_t> frames_in;   // by type; "invalid" for unparsable
  std::map<std::string, std::uint64_t> errors_out;  // by code, err and nack alike
  std::uint64_t messages_persisted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t fanout_deliveries = 0;
  std::uint64_t replayed_messages = 0;
  std::uint64_t connections_open = 0;
};

class EdgeNode {
 public:
  // REQUIRES: reader, auth and random outlive the node.
  EdgeNode(EdgeConfig config, LogReader& reader, Authenticator& auth, RandomSource& random);

  void on_connect(ConnId conn, TimeMs now);
  void on_text(ConnId conn, std::string_view text, TimeMs now);
  void on_binary(ConnId conn, TimeMs now);
  void on_oversized(ConnId conn, TimeMs now);  // a frame over max_frame: err + close 1009
  void on_disconnect(ConnId conn, TimeMs now);

  void on_committed(const std::vector<WriteOutcome>& outcomes, TimeMs now);
  void on_commit_failed(const std::vector<WriteRequest>& requests, const Error& error,
                        TimeMs now);

  // bye + close 4008: the host saw conn's queue pass its bound.
  void drop_lagging(ConnId conn, TimeMs now);
  // bye + close 1001 for every connection; new frames are refused with unavailable after.
  void shutdown(TimeMs now);

  std::vector<EdgeOutput> take_outputs();
  const EdgeCounters& counters() const { return counters_; }
  std::size_t connection_count() const { return connections_.size(); }

 private:
  struct Subscription {
    bool live = false;   // caught up: receives fanout
    Seq last_sent = 0;   // highest seq written to this connection for the conv
  };
  struct Connection {
    std::optional<Identity> identity;
    bool closing = false;
    std::map<std::string, Subscription> subs;  // by conv
  };
  struct Topic {  // one (tenant, conv) on this node
    std::set<ConnId> subscribers;
    std::map<std::string, std::uint32_t> present;  // user -> subscribed connections
  };
  struct PendingWrite {
    ConnId conn = 0;
    std::optional<std::string> rid;
    std::string tenant, conv, id;
    bool is_send = true;
    std::string user;                          // receipts: whose
    ReceiptKind kind = ReceiptKind::read;      // receipts: which cursor
  };
  using TopicKey = std::pair<std::string, std::string>;

  void handle(ConnId conn, Connection& c, Hello&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Sub&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Unsub&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Hist&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Send&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Ping&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Rcpt&& frame, TimeMs now);
  void handle(ConnId conn, Connection& c, Typing&& frame, TimeMs now);

  void subscribe(ConnId conn, Connection& c, const SubRequest& request,
                 const std::optional<std::string>& rid, TimeMs now);
  void unsubscribe(ConnId conn, Connection& c, const std::string& conv);
  void fan_out_msg(const std::string& tenant, const std::string& conv, Seq seq,
                   const std::shared_ptr<const std::string>& frame);
  void send_to_topic(const TopicKey& key, const std::shared_ptr<const std::string>& text,
                     ConnId except);
  bool check_access(ConnId conn, const Connection& c, const std::string& conv,
                    const std::optional<std::string>& rid);

  void write(ConnId conn, std::string text);
  void write_shared(ConnId conn, std::shared_ptr<const std::string> text);
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
  std::map<TopicKey, Topic> topics_;
  std::unordered_map<std::uint64_t, PendingWrite> pending_;  // by ticket
  std::uint64_t next_ticket_ = 1;

  std::vector<EdgeOutput> outputs_;
  EdgeCounters counters_;
};

}  // namespace waymark
