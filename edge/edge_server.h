// EdgeServer: the lws transport around the core's EdgeNode. One lws service thread runs every
// callback and owns the node, the connection table and the metrics; the GroupCommitWriter's
// thread owns write transactions and wakes the lws thread with lws_cancel_service.
// request_shutdown may be called from any thread; everything else from the thread that calls run().
#pragma once

#include <ev.h>
#include <libwebsockets.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "edge_log.h"
#include "edge_metrics.h"
#include "group_commit_writer.h"
#include "upstream_link.h"
#include "waymark/auth.h"
#include "waymark/edge_node.h"
#include "waymark/log_store.h"

namespace waymark::edge {

struct EdgeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                                   // 0: any free port (logged as "listening")
  std::string data_dir = "./waymark-data";
  bool dev = false;                                  // accept dev:<user> tokens
  std::string web_dir;                               // static files at /
  std::string sdk_dir;                               // the browser SDK at /sdk/ (if it exists)
  std::string node = "edge-1";
  std::size_t max_frame = 65536;
  std::size_t max_queue_bytes = std::size_t{4} << 20;  // per connection; past it: bye + 4008
  TimeMs heartbeat_ms = 15000;
  std::size_t max_map_bytes = std::size_t{1} << 40;  // LMDB map cap; past it sends get nack retry
  std::chrono::milliseconds shutdown_grace{4500};    // SIGTERM: exit within this
  std::string tls_cert, tls_key;                     // PEM files: serve wss:// and https:// only
  // Limits and their bye windows (docs/security.md); node, heartbeat_ms and max_frame above win.
  EdgeConfig node_config;
  // Set: this edge relays to that upstream (docs/regions.md); absent: it is a root.
  std::optional<UpstreamOptions> upstream;
};

class EdgeServer {
 public:
  // REQUIRES: store and auth outlive the server.
  EdgeServer(EdgeOptions options, LogStore& store, Authenticator& auth);
  ~EdgeServer();

  // Binds the listen socket. An error names what failed.
  Status start();
  // Serves until a requested shutdown has finished; returns the process exit code.
  int run();
  // Any thread: stop accepting, commit and ack what is in flight, bye everyone, exit.
  void request_shutdown();
  // Any thread (SIGHUP): the authenticator re-reads its secrets on the lws thread.
  void request_reload();
  int port() const { return bound_port_; }

 private:
  struct Connection {
    lws* wsi = nullptr;
    std::deque<std::shared_ptr<const std::string>> queue;
    std::size_t queued_bytes = 0;
    std::string rx;              // the text frame being reassembled from fragments
    bool rx_binary = false;
    bool rx_oversized = false;   // past max_frame: drop the rest of it
    bool lagging = false;
    std::chrono::steady_clock::time_point last_heard{};  // last frame or pong from the peer
    bool pinged = false;                                  // a ping went out since
    bool ping_due = false;                                // send a ping when next writeable
    bool written_in_flush = false;                        // listed in to_write_ already
    std::optional<int> close_code;
    std::string close_reason;
  };
  struct HttpResponse {
    std::string body;
    std::size_t sent = 0;
  };
  enum class Phase { running, draining, closing };

  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  static void on_tick(lws_sorted_usec_list_t* sul);
  int handle(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);

  int on_receive(ConnId id, lws* wsi, const char* data, std::size_t len);
  int on_writeable(ConnId id, lws* wsi);
  bool write_queue(Connection& c);
  int on_http(lws* wsi);
  int on_http_writeable(lws* wsi);
  void on_completions();
  void on_upstream_events();
  void log_link_change(const std::string& tenant, const ConnectionEvent& event);
  std::string healthz_upstream() const;
  void tick();
  void sweep_idle(std::chrono::steady_clock::time_point steady_now);

  void flush();  // carries out the node's outputs
  void write_flushed();
  TimeMs now() const;

  EdgeOptions options_;
  LogStore& store_;
  Authenticator& auth_;
  std::unique_ptr<RandomSource> random_;
  std::unique_ptr<EdgeNode> node_;
  EdgeMetrics metrics_;
  std::unique_ptr<GroupCommitWriter> writer_;
  std::unique_ptr<UpstreamLink> upstream_;

  // The service loop: libev's (epoll), given to lws as a foreign loop, so that a turn costs
  // what is ready rather than a poll() over every socket. Not libuv: Debian's lws 4.1.6 is
  // built with _DEBUG, and on libuv it then closes a callback's wsi twice at once (a leftover
  // test, lws issue 3569), which kills a socket before its close frame is sent.
  struct ev_loop* loop_ = nullptr;
  lws_context* context_ = nullptr;
  std::vector<lws_protocols> protocols_;
  lws_http_mount mount_root_{}, mount_sdk_{}, mount_healthz_{}, mount_metrics_{};
  lws_protocol_vhost_options mime_wasm_{}, mime_mjs_{};
  lws_retry_bo_t idle_policy_{};
  // lws timers find their owner with lws_container_of, which needs a standard-layout struct.
  struct Tick {
    lws_sorted_usec_list_t sul;
    EdgeServer* server;
  } tick_{{}, this};
  int bound_port_ = 0;

  std::unordered_map<ConnId, Connection> connections_;
  std::map<lws*, HttpResponse> http_responses_;
  std::unordered_map<std::uint64_t, std::chrono::steady_clock::time_point> received_at_;  // ticket
  std::vector<unsigned char> write_buffer_;
  std::vector<ConnId> to_write_;  // connections given frames by the flush under way
  ConnId next_conn_ = 1;
  std::uint64_t queued_bytes_total_ = 0;

  std::atomic<bool> shutdown_requested_{false};
  std::atomic<bool> reload_requested_{false};
  Phase phase_ = Phase::running;
  std::chrono::steady_clock::time_point shutdown_started_{};
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_idle_sweep_{};
};

}  // namespace waymark::edge
