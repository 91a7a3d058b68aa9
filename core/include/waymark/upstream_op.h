// What a relaying edge's EdgeNode asks of its upstream links (UpstreamOp), and how a link's
// ClientSession carries it out (apply_upstream): the one place the node's relay work meets
// the client state machine. Pure data and functions; the thread that owns the session.
#pragma once

#include <string>
#include <variant>

#include "waymark/client_config.h"
#include "waymark/client_session.h"
#include "waymark/frames.h"

namespace waymark {

// Forward a staged send: same id, cts, trace and body, on behalf of msg.from.
struct UpstreamSend {
  std::string tenant;
  Msg msg;
};
// Pass a local user's receipt on (kept until the root's rcpt fanout echoes it).
struct UpstreamReceipt {
  std::string tenant, user, conv;
  Seq seq = 0;
  ReceiptKind kind = ReceiptKind::read;
};
// Pass a local user's typing on, best effort.
struct UpstreamTyping {
  std::string tenant, user, conv;
  bool on = false;
};
// A local user became present (or absent) in conv: the upstream announces it to the others.
struct UpstreamPresence {
  std::string tenant, user, conv;
  bool on = false;
};
// Subscribe upstream from `after` (this node's committed head) or let go. `rewind`: deliver
// again from `after` even though the link's cursor is past it (a replicated msg did not commit).
struct UpstreamInterest {
  std::string tenant, conv;
  bool on = true;
  Seq after = 0;
  bool rewind = false;
};
// Stop the tenant's link for good: it would close a cycle (reason says which).
struct UpstreamStop {
  std::string tenant;
  std::string reason;
};
using UpstreamOp =
    std::variant<UpstreamSend, UpstreamReceipt, UpstreamTyping, UpstreamInterest, UpstreamStop,
                 UpstreamPresence>;

const std::string& upstream_tenant(const UpstreamOp& op);

// A relay link retries at most this long after the previous attempt (full jitter below it).
inline constexpr TimeMs kRelayReconnectCapMs = 1000;

// The ClientConfig of a relay link for `tenant` of node `node`: hello.relay set, no delivered
// receipts of its own, no provisional msgs, reconnects capped at kRelayReconnectCapMs.
ClientConfig relay_link_config(const std::string& node, const std::string& tenant,
                               ClientConfig base = {});

// Carries op out on the tenant's link. REQUIRES: link was made with relay_link_config.
void apply_upstream(ClientSession& link, const UpstreamOp& op, TimeMs now);

}  // namespace waymark
