// UpstreamLink: a relaying edge's links to its upstream, one ClientSession per tenant (the
// core's relay link, upstream_op.h) over a ClientHost on a thread of its own. The lws service
// thread hands it the node's UpstreamOps and takes back the sessions' events; the link's
// thread owns the sessions and their sockets. submit, take_events and stop: any thread.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "waymark/client_events.h"
#include "waymark/error.h"
#include "waymark/upstream_op.h"

namespace waymark::edge {

class ClientHost;

struct UpstreamUrl {
  std::string host;
  int port = 0;
  std::string path = "/ws";
  bool tls = false;
};
// ws://HOST:PORT/PATH or wss://... (PATH defaults to /ws); the error says what is wrong.
Result<UpstreamUrl> parse_upstream_url(const std::string& url);

// The node token in a --upstream-token-file: its first line, trailing CR and blanks cut.
Result<std::string> read_node_token(const std::string& file);

struct UpstreamOptions {
  UpstreamUrl url;
  std::string token;       // the node token (dev-node:<node> under --dev)
  std::string token_file;  // where it came from ("" under --dev): reload_token re-reads it
  std::string node;      // this edge's --node: hello.relay.node
  std::string ca_file;   // wss: verify against this CA bundle instead of the system's
};

class UpstreamLink {
 public:
  // wake: called from the link's thread when events are ready (lws_cancel_service).
  UpstreamLink(UpstreamOptions options, std::function<void()> wake);
  ~UpstreamLink();  // stops the thread; sockets close
  UpstreamLink(const UpstreamLink&) = delete;
  UpstreamLink& operator=(const UpstreamLink&) = delete;

  void start();
  void submit(std::vector<UpstreamOp> ops);
  // SIGHUP: re-reads options.token_file; every link uses the new token from its next hello,
  // and a link the upstream refused the old token on tries again at once. On an error the old
  // token stays. Nothing to do (ok) without a token file.
  Result<std::monostate> reload_token();
  std::vector<std::pair<std::string, ClientEvent>> take_events();  // (tenant, event)
  void stop();

 private:
  void run();
  void apply_pending(ClientHost& host);

  UpstreamOptions options_;
  std::function<void()> wake_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<ClientHost*> host_{nullptr};  // the running host, for wake-ups from submit

  std::mutex mutex_;  // guards the two queues
  std::vector<UpstreamOp> ops_;
  std::vector<std::pair<std::string, ClientEvent>> events_;
  std::optional<std::string> new_token_;

  // The link's thread only:
  std::map<std::string, std::size_t> sessions_;  // tenant -> ClientHost session index
  std::vector<std::string> tenant_of_;           // session index -> tenant
};

}  // namespace waymark::edge
