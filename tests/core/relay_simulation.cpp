// The simulated relay tree behind relay_simulation.h.
#include "core/relay_simulation.h"

#include <algorithm>
#include <boost/json.hpp>
#include <sstream>
#include <cstdio>
#include <cstdlib>

#include "overloaded.h"
#include "waymark/auth.h"
#include "waymark/codec.h"
#include "waymark/edge_node.h"
#include "waymark/stored_record.h"
#include "waymark/upstream_op.h"
#include "waymark/write_batch.h"

namespace waymark::sim {
namespace {

int rank(RowState state) {
  switch (state) {
    case RowState::queued: return 0;
    case RowState::stored: return 1;
    case RowState::sequenced: return 2;
    case RowState::delivered: return 3;
    case RowState::read: return 4;
    case RowState::failed: return -1;
  }
  return -1;
}

const std::string kTenant = "dev";

// A log as (seq, id) per conversation, from the stored records.
std::map<std::string, std::vector<std::pair<Seq, std::string>>> log_of(const MemoryLogStore& store,
                                                                       std::vector<std::string>& problems,
                                                                       const std::string& name) {
  std::map<std::string, std::vector<std::pair<Seq, std::string>>> out;
  for (const auto& [key, record] : store.data().log) {
    const auto& [tenant, conv, seq] = key;
    auto msg = decode_record(record, conv, seq);
    if (!msg.ok()) {
      problems.push_back(name + ": log entry " + conv + "/" + std::to_string(seq) + " is not a record");
      continue;
    }
    out[conv].emplace_back(seq, msg.value().id);
  }
  return out;
}

}  // namespace

struct RelaySimulation::Node {
  std::string name;
  bool relay = false;
  MemoryLogStore store;
  DevAuthenticator auth;
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<EdgeNode> edge;
  std::uint64_t generation = 0;
  bool up = false;
  std::vector<WriteRequest> pending;   // in the writer, not committed yet
  bool commit_scheduled = false;
  std::uint32_t outcomes_in_flight = 0;  // committed, not yet reported to the node
  TimeMs outcome_tail = 0;               // the writer reports its batches in order
  std::optional<TimeMs> timer_at;
  int link = -1;                         // a relay's upstream link (a peer index)
  TimeMs slow_until = 0;                 // its link is slowed until then
};

struct RelaySimulation::Peer {
  std::string user;          // a user's name, or the relay's node name for a link
  bool link = false;
  int node = 0;              // the node it connects to (the root, for a link)
  int owner = -1;            // a link: the relay it belongs to
  bool provisional = false;  // hello.provisional
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<ClientSession> session;
  int generation = 0;
  std::map<ConnectionId, std::uint64_t> socks;
  std::optional<TimeMs> timer_at;
  std::string saved_state;
};

struct RelaySimulation::Sock {
  std::uint64_t id = 0;  // the node's ConnId too
  int peer = 0;
  int peer_generation = 0;
  ConnectionId client_conn = 0;
  int node = 0;
  std::uint64_t node_generation = 0;
  bool edge_open = false;
  bool client_open = true;
  TimeMs to_edge_tail = 0, to_client_tail = 0;
  std::optional<TimeMs> cutoff;      // frames arriving after this are lost, both ways
  bool drop_to_edge = false;         // half-open: this direction silently loses frames
  bool drop_to_client = false;
};

RelaySimulation::RelaySimulation(std::uint64_t seed, RelaySimOptions options)
    : seed_(seed), options_(options), random_(seed * 0x9e3779b97f4a7c15ULL + 0x5eed), start_(now_) {
  for (int i = 0; i < options_.convs; ++i) convs_.push_back(std::string("conv-").append(std::to_string(i)));
  for (int n = 0; n < 3; ++n) {
    auto node = std::make_unique<Node>();
    node->name = n == 0 ? std::string("root") : std::string("relay-").append(std::to_string(n));
    node->relay = n != 0;
    node->random = std::make_unique<SeededRandom>(random_.next_u64());
    nodes_.push_back(std::move(node));
  }
  for (int n = 0; n < 3; ++n) {
    for (int i = 0; i < options_.clients_per_node; ++i) {
      auto peer = std::make_unique<Peer>();
      peer->user = std::string("u").append(std::to_string(n)).append("x").append(std::to_string(i));
      peer->node = n;
      peer->provisional = n != 0 && i % 2 == 0;  // some opt in, some are v1 clients
      RelayAppView view;
      view.user = peer->user;
      view.node = n;
      views_.push_back(std::move(view));
      peers_.push_back(std::move(peer));
    }
  }
  for (int n = 1; n < 3; ++n) {
    auto peer = std::make_unique<Peer>();
    peer->user = nodes_[static_cast<std::size_t>(n)]->name;
    peer->link = true;
    peer->node = 0;
    peer->owner = n;
    nodes_[static_cast<std::size_t>(n)]->link = static_cast<int>(peers_.size());
    views_.emplace_back();
    peers_.push_back(std::move(peer));
  }
}

RelaySimulation::~RelaySimulation() = default;

void RelaySimulation::at(TimeMs when, Action action) {
  queue_.emplace(std::max(when, now_), std::move(action));
}

TimeMs RelaySimulation::latency() {
  return options_.min_latency_ms +
         static_cast<TimeMs>(random_.below(
             static_cast<std::uint64_t>(options_.max_latency_ms - options_.min_latency_ms + 1)));
}

bool RelaySimulation::chance(double p) {
  return static_cast<double>(random_.below(1'000'000)) < p * 1'000'000.0;
}

// ---- nodes --------------------------------------------------------------------------------

void RelaySimulation::make_link(int relay) {
  Node& node = *nodes_[static_cast<std::size_t>(relay)];
  Peer& link = *peers_[static_cast<std::size_t>(node.link)];
  ++link.generation;
  link.socks.clear();
  link.timer_at.reset();
  link.random = std::make_unique<SeededRandom>(random_.next_u64());
  link.session = std::make_unique<ClientSession>(relay_link_config(node.name, kTenant),
                                                 "dev-node:" + node.name, std::nullopt,
                                                 *link.random);
  link.session->start(now_);
  mark_peer(node.link);
}

void RelaySimulation::start_node(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  EdgeConfig config;
  config.node = node.name;
  config.heartbeat_ms = options_.heartbeat_ms;
  config.relay = node.relay;
  config.interest_linger_ms = options_.interest_linger_ms;
  if (node.relay) make_link(n);  // before the node says anything upstream
  node.edge = std::make_unique<EdgeNode>(config, node.store, node.auth, *node.random);
  node.up = true;
  node.timer_at.reset();
  Status recovered = node.edge->recover_staged(now_);
  if (!recovered.ok()) sim_violations_.push_back(node.name + ": recover_staged failed");
  mark_node(n);
  pump();
}

void RelaySimulation::crash_node(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  if (!node.up) return;
  if (n == 0) ++stats_.root_crashes; else ++stats_.relay_crashes;
  node.up = false;
  node.edge.reset();
  ++node.generation;
  node.timer_at.reset();
  node.outcomes_in_flight = 0;
  dirty_nodes_.erase(n);
  // The writer's batch at the crash: its commit made it (never reported) or not.
  if (!node.pending.empty()) {
    if (chance(0.5)) (void)commit_batch(node.store, node.pending); else ++stats_.lost_batches;
  }
  node.pending.clear();
  node.commit_scheduled = false;
  for (auto& [id, sock] : socks_) {
    if (sock->node != n || !sock->edge_open) continue;
    sock->edge_open = false;
    sock->cutoff = now_;
    if (!chance(0.5)) client_hears_close(id, now_ + latency());  // else a heartbeat finds it
  }
  if (node.relay) {
    // The link lived in the relay's process: its sockets go too (the root hears it later).
    Peer& link = *peers_[static_cast<std::size_t>(node.link)];
    for (auto& [cid, sock_id] : link.socks) {
      Sock& sock = *socks_.at(sock_id);
      if (!sock.client_open) continue;
      sock.client_open = false;
      if (sock.drop_to_edge || chance(0.3))
        edge_forgets(sock_id, now_ + 2 * options_.heartbeat_ms + static_cast<TimeMs>(random_.below(10000)));
      else
        edge_forgets(sock_id, std::max(sock.to_edge_tail, now_ + latency()));
    }
    link.socks.clear();
    link.session.reset();
    ++link.generation;
    link.timer_at.reset();
    dirty_peers_.erase(node.link);
  }
  at(now_ + 500 + static_cast<TimeMs>(random_.below(2500)), [this, n] { start_node(n); });
}

void RelaySimulation::schedule_commit(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  if (node.commit_scheduled) return;
  node.commit_scheduled = true;
  std::uint64_t generation = node.generation;
  at(now_ + 1 + static_cast<TimeMs>(random_.below(15)), [this, n, generation] {
    Node& nd = *nodes_[static_cast<std::size_t>(n)];
    if (nd.generation != generation) return;
    commit(n);
  });
}

void RelaySimulation::commit(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  node.commit_scheduled = false;
  if (!node.up || node.pending.empty()) return;
  std::vector<WriteRequest> batch;
  batch.swap(node.pending);
  if (faults_ && chance(options_.store_failure_probability)) {
    ++stats_.failed_commits;
    node.edge->on_commit_failed(batch, make_error(ErrorCode::unavailable, "simulated disk failure"), now_);
    mark_node(n);
    pump();
    return;
  }
  auto outcomes = commit_batch(node.store, batch);
  std::uint64_t generation = node.generation;
  TimeMs arrive = std::max(node.outcome_tail, now_ + static_cast<TimeMs>(random_.below(5)));
  node.outcome_tail = arrive;
  ++node.outcomes_in_flight;
  at(arrive, [this, n, generation, batch = std::move(batch), outcomes = std::move(outcomes)] {
    Node& nd = *nodes_[static_cast<std::size_t>(n)];
    if (!nd.up || nd.generation != generation) return;  // crashed before reporting
    --nd.outcomes_in_flight;
    nd.edge->on_commit(batch, outcomes, now_);
    mark_node(n);
    pump();
  });
}

void RelaySimulation::schedule_node_timer(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  if (!node.up) return;
  auto deadline = node.edge->next_deadline();
  if (!deadline) return;
  TimeMs when = std::max(*deadline, now_);
  if (node.timer_at && *node.timer_at <= when) return;
  node.timer_at = when;
  std::uint64_t generation = node.generation;
  at(when, [this, n, when, generation] {
    Node& nd = *nodes_[static_cast<std::size_t>(n)];
    if (!nd.up || nd.generation != generation || nd.timer_at != when) return;
    nd.timer_at.reset();
    nd.edge->on_timer(now_);
    mark_node(n);
    pump();
  });
}

// ---- moving work ----------------------------------------------------------------------------

void RelaySimulation::mark_node(int n) { dirty_nodes_.insert(n); }
void RelaySimulation::mark_peer(int p) { dirty_peers_.insert(p); }

void RelaySimulation::pump() {
  if (pumping_) return;
  pumping_ = true;
  while (!dirty_nodes_.empty() || !dirty_peers_.empty()) {
    if (!dirty_nodes_.empty()) {
      int n = *dirty_nodes_.begin();
      dirty_nodes_.erase(dirty_nodes_.begin());
      drain_node(n);
    } else {
      int p = *dirty_peers_.begin();
      dirty_peers_.erase(dirty_peers_.begin());
      drain_peer(p);
    }
  }
  pumping_ = false;
}

void RelaySimulation::drain_node(int n) {
  Node& node = *nodes_[static_cast<std::size_t>(n)];
  if (!node.up) return;
  drain_outputs(
      *node.edge,
      [&](EdgeWrite& write) {
        auto it = socks_.find(write.conn);
        if (it == socks_.end() || !it->second->edge_open) return;
        to_client(*it->second, write.text);
      },
      [&](EdgeClose& close) {
        auto it = socks_.find(close.conn);
        if (it == socks_.end() || !it->second->edge_open) return;
        close_from_edge(*it->second);
      },
      [&](EdgePersist& persist) {
        node.pending.push_back(std::move(persist.request));
        schedule_commit(n);
      },
      [&] { return node.up; });
  if (node.relay) {
    std::vector<UpstreamOp> ops = node.edge->take_upstream();
    Peer& link = *peers_[static_cast<std::size_t>(node.link)];
    for (const UpstreamOp& op : ops) {
      if (upstream_tenant(op) != kTenant) sim_violations_.push_back(node.name + ": op for another tenant");
      apply_upstream(*link.session, op, now_);
    }
    if (!ops.empty()) mark_peer(node.link);
  }
  schedule_node_timer(n);
}

void RelaySimulation::drain_peer(int p) {
  Peer& peer = *peers_[static_cast<std::size_t>(p)];
  if (!peer.session) return;
  for (;;) {
    auto io = peer.session->take_io();
    auto events = peer.session->take_events();
    if (io.empty() && events.empty()) break;
    for (auto& event : events) {
      if (peer.link) {
        Node& owner = *nodes_[static_cast<std::size_t>(peer.owner)];
        if (!owner.up) continue;
        owner.edge->on_upstream(kTenant, event, now_);
        mark_node(peer.owner);
      } else {
        handle_user_event(p, event);
      }
    }
    for (auto& action : io) {
      std::visit(Overloaded{
                     [&](OpenSocket& open) { open_socket(p, open.connection); },
                     [&](WriteFrame& write) {
                       auto found = peer.socks.find(write.connection);
                       if (found == peer.socks.end()) return;
                       Sock& sock = *socks_.at(found->second);
                       if (sock.client_open) to_edge(sock, std::move(write.text));
                     },
                     [&](CloseSocket& close) {
                       auto found = peer.socks.find(close.connection);
                       if (found == peer.socks.end()) return;
                       close_from_client(*socks_.at(found->second));
                     },
                 },
                 action);
    }
  }
  schedule_peer_timer(p);
}

void RelaySimulation::schedule_peer_timer(int p) {
  Peer& peer = *peers_[static_cast<std::size_t>(p)];
  auto deadline = peer.session->next_deadline();
  if (!deadline) return;
  TimeMs when = std::max(*deadline, now_);
  if (peer.timer_at && *peer.timer_at <= when) return;
  peer.timer_at = when;
  int generation = peer.generation;
  at(when, [this, p, when, generation] {
    Peer& pr = *peers_[static_cast<std::size_t>(p)];
    if (pr.generation != generation || pr.timer_at != when || !pr.session) return;
    pr.timer_at.reset();
    pr.session->on_timer(now_);
    mark_peer(p);
    pump();
  });
}

void RelaySimulation::handle_user_event(int p, ClientEvent& event) {
  RelayAppView& view = views_[static_cast<std::size_t>(p)];
  Peer& peer = *peers_[static_cast<std::size_t>(p)];
  auto violation = [&](const std::string& text) {
    view.violations.push_back(view.user + "@" + nodes_[static_cast<std::size_t>(view.node)]->name +
                              " at t+" + std::to_string(now_ - start_) + "ms: " + text);
  };
  std::visit(Overloaded{
                 [&](RowEvent& row) {
                   if (row.state == RowState::failed) {
                     violation("row " + row.id + " failed: " + (row.error ? row.error->message : ""));
                     return;
                   }
                   if (const char* t = std::getenv("WAYMARK_RELAY_SIM_ROW"); t && row.id == t)
                     fprintf(stderr, "t+%lld %s row %s seq=%lld err=%s\n", (long long)(now_ - start_), view.user.c_str(), std::string(to_string(row.state)).c_str(), (long long)row.seq.value_or(0), row.error ? row.error->message.c_str() : "");
                   int r = rank(row.state);
                   auto it = view.row_rank.find(row.id);
                   if (it != view.row_rank.end() && r < it->second)
                     violation("row " + row.id + " went back to " + std::string(to_string(row.state)));
                   if (it == view.row_rank.end() || r > it->second) view.row_rank[row.id] = r;
                   if (row.own && view.sent_ids.count(row.id) && r >= rank(RowState::stored))
                     view.acked_ids.insert(row.id);
                   if (row.own && row.seq) {
                     auto known = view.own_seq.find(row.id);
                     if (known != view.own_seq.end() && known->second != *row.seq)
                       violation("row " + row.id + " changed seq");
                     view.own_seq[row.id] = *row.seq;
                   }
                 },
                 [&](MessageEvent& message) {
                   if (!message.msg.seq) {
                     violation("a message event without seq: " + message.msg.id);
                     return;
                   }
                   auto& seen = view.history[message.msg.conv];
                   for (const auto& [seq, id] : seen)
                     if (id == message.msg.id) violation("saw " + id + " twice as a sequenced msg");
                   seen.emplace_back(*message.msg.seq, message.msg.id);
                 },
                 [&](StateChangedEvent&) { peer.saved_state = peer.session->export_state(); },
                 [&](auto&) {},
             },
             event);
}

// ---- the network ----------------------------------------------------------------------------

TimeMs RelaySimulation::extra_latency(const Sock& sock) const {
  const Peer& peer = *peers_[static_cast<std::size_t>(sock.peer)];
  if (!peer.link) return 0;
  const Node& relay = *nodes_[static_cast<std::size_t>(peer.owner)];
  if (now_ >= relay.slow_until) return 0;
  // Deterministic from the socket and time, so slowing draws nothing from the seed's stream.
  std::uint64_t spread = static_cast<std::uint64_t>(options_.slow_max_ms - options_.slow_min_ms + 1);
  return options_.slow_min_ms + static_cast<TimeMs>((static_cast<std::uint64_t>(now_) * 31 + sock.id) % spread);
}

void RelaySimulation::open_socket(int p, ConnectionId connection) {
  Peer& peer = *peers_[static_cast<std::size_t>(p)];
  Node& node = *nodes_[static_cast<std::size_t>(peer.node)];
  int generation = peer.generation;
  ++stats_.sockets;
  if (!node.up || (faults_ && chance(options_.refuse_probability))) {
    ++stats_.refused;
    at(now_ + latency(), [this, p, connection, generation] {
      Peer& pr = *peers_[static_cast<std::size_t>(p)];
      if (pr.generation != generation || !pr.session) return;
      pr.session->on_close(connection, now_);
      mark_peer(p);
      pump();
    });
    return;
  }
  auto sock = std::make_unique<Sock>();
  sock->id = next_sock_++;
  sock->peer = p;
  sock->peer_generation = generation;
  sock->client_conn = connection;
  sock->node = peer.node;
  sock->node_generation = node.generation;
  std::uint64_t id = sock->id;
  peer.socks[connection] = id;
  TimeMs arrive = now_ + latency() + extra_latency(*sock);
  socks_[id] = std::move(sock);
  at(arrive, [this, id] {
    Sock& s = *socks_.at(id);
    Peer& pr = *peers_[static_cast<std::size_t>(s.peer)];
    Node& nd = *nodes_[static_cast<std::size_t>(s.node)];
    if (pr.generation != s.peer_generation || !s.client_open || !pr.session) return;
    if (!nd.up || nd.generation != s.node_generation || s.cutoff) {
      s.client_open = false;
      pr.session->on_close(s.client_conn, now_);
      mark_peer(s.peer);
      pump();
      return;
    }
    s.edge_open = true;
    nd.edge->on_connect(id, now_);
    mark_node(s.node);
    pr.session->on_open(s.client_conn, now_);
    mark_peer(s.peer);
    pump();
  });
}

void RelaySimulation::to_edge(Sock& sock, std::string text) {
  int copies = faults_ && chance(options_.duplicate_probability) ? 2 : 1;
  stats_.duplicated += static_cast<std::uint64_t>(copies - 1);
  auto shared = std::make_shared<const std::string>(std::move(text));
  for (int i = 0; i < copies; ++i) {
    TimeMs arrive = std::max(sock.to_edge_tail, now_ + latency() + extra_latency(sock));
    sock.to_edge_tail = arrive;
    if (sock.drop_to_edge) continue;  // half-open: lost without a word
    std::uint64_t id = sock.id;
    at(arrive, [this, id, shared, arrive] {
      Sock& s = *socks_.at(id);
      Node& nd = *nodes_[static_cast<std::size_t>(s.node)];
      if (!nd.up || nd.generation != s.node_generation || !s.edge_open) return;
      if ((s.cutoff && arrive > *s.cutoff) || s.drop_to_edge) return;
      ++stats_.frames;
      nd.edge->on_text(id, *shared, now_);
      mark_node(s.node);
      pump();
    });
  }
}

void RelaySimulation::to_client(Sock& sock, std::shared_ptr<const std::string> text) {
  int copies = faults_ && chance(options_.duplicate_probability) ? 2 : 1;
  stats_.duplicated += static_cast<std::uint64_t>(copies - 1);
  for (int i = 0; i < copies; ++i) {
    TimeMs arrive = std::max(sock.to_client_tail, now_ + latency() + extra_latency(sock));
    sock.to_client_tail = arrive;
    if (sock.drop_to_client) continue;
    std::uint64_t id = sock.id;
    at(arrive, [this, id, text, arrive] {
      Sock& s = *socks_.at(id);
      Peer& pr = *peers_[static_cast<std::size_t>(s.peer)];
      if (!s.client_open || pr.generation != s.peer_generation || !pr.session) return;
      if ((s.cutoff && arrive > *s.cutoff) || s.drop_to_client) return;
      ++stats_.frames;
      pr.session->on_frame(s.client_conn, *text, now_);
      mark_peer(s.peer);
      pump();
    });
  }
}

// The edge learns the socket is gone (a FIN, or its idle sweep), at `when`.
void RelaySimulation::edge_forgets(std::uint64_t sock_id, TimeMs when) {
  Sock& sock = *socks_.at(sock_id);
  std::uint64_t generation = sock.node_generation;
  at(when, [this, sock_id, generation] {
    Sock& s = *socks_.at(sock_id);
    Node& nd = *nodes_[static_cast<std::size_t>(s.node)];
    if (!nd.up || nd.generation != generation || !s.edge_open) return;
    s.edge_open = false;
    nd.edge->on_disconnect(sock_id, now_);
    mark_node(s.node);
    pump();
  });
}

void RelaySimulation::client_hears_close(std::uint64_t sock_id, TimeMs when) {
  at(when, [this, sock_id] {
    Sock& s = *socks_.at(sock_id);
    Peer& pr = *peers_[static_cast<std::size_t>(s.peer)];
    if (!s.client_open) return;
    s.client_open = false;
    if (pr.generation != s.peer_generation || !pr.session) return;
    pr.session->on_close(s.client_conn, now_);
    mark_peer(s.peer);
    pump();
  });
}

void RelaySimulation::close_from_client(Sock& sock) {
  if (!sock.client_open) return;
  sock.client_open = false;
  if (sock.drop_to_edge || (sock.cutoff && now_ > *sock.cutoff))
    edge_forgets(sock.id, now_ + 2 * options_.heartbeat_ms + static_cast<TimeMs>(random_.below(10000)));
  else
    edge_forgets(sock.id, std::max(sock.to_edge_tail, now_ + latency()));
}

void RelaySimulation::close_from_edge(Sock& sock) {
  Node& node = *nodes_[static_cast<std::size_t>(sock.node)];
  sock.edge_open = false;
  node.edge->on_disconnect(sock.id, now_);
  if (!sock.drop_to_client && !(sock.cutoff && now_ > *sock.cutoff))
    client_hears_close(sock.id, std::max(sock.to_client_tail, now_ + latency()));
}

// ---- faults ---------------------------------------------------------------------------------

void RelaySimulation::fault_link() {
  int relay = 1 + static_cast<int>(random_.below(2));
  Node& node = *nodes_[static_cast<std::size_t>(relay)];
  std::uint64_t kind = random_.below(4);
  if (kind == 3) {  // slowed for a while
    ++stats_.slowed;
    node.slow_until = now_ + 2000 + static_cast<TimeMs>(random_.below(8000));
    return;
  }
  Peer& link = *peers_[static_cast<std::size_t>(node.link)];
  std::optional<std::uint64_t> open;
  for (const auto& [cid, id] : link.socks) {
    const Sock& sock = *socks_.at(id);
    if (sock.client_open && sock.edge_open && !sock.cutoff && !sock.drop_to_edge && !sock.drop_to_client)
      open = id;
  }
  if (!open) return;
  Sock& sock = *socks_.at(*open);
  TimeMs idle_sweep = 2 * options_.heartbeat_ms + static_cast<TimeMs>(random_.below(10000));
  if (kind == 0) {  // cut: both ends hear of it
    ++stats_.link_cuts;
    sock.cutoff = now_;
    client_hears_close(sock.id, now_ + latency());
    edge_forgets(sock.id, now_ + latency());
  } else {  // half-open, one direction silently lost; heartbeats (and the idle sweep) find it
    ++stats_.half_open;
    if (kind == 1) sock.drop_to_edge = true; else sock.drop_to_client = true;
    edge_forgets(sock.id, now_ + idle_sweep);
  }
}

void RelaySimulation::cut_user_socket() {
  std::vector<std::uint64_t> open;
  for (const auto& [id, sock] : socks_)
    if (!peers_[static_cast<std::size_t>(sock->peer)]->link && sock->client_open && sock->edge_open &&
        !sock->cutoff)
      open.push_back(id);
  if (open.empty()) return;
  ++stats_.user_cuts;
  Sock& sock = *socks_.at(open[random_.below(open.size())]);
  sock.cutoff = now_ + static_cast<TimeMs>(random_.below(static_cast<std::uint64_t>(options_.max_latency_ms)));
  if (chance(0.5)) client_hears_close(sock.id, now_ + latency());
  edge_forgets(sock.id, now_ + static_cast<TimeMs>(random_.below(20000)));
}

void RelaySimulation::reload_user(int p) {
  Peer& peer = *peers_[static_cast<std::size_t>(p)];
  ++stats_.reloads;
  for (auto& [cid, id] : peer.socks) close_from_client(*socks_.at(id));
  peer.socks.clear();
  peer.timer_at.reset();
  ++peer.generation;
  dirty_peers_.erase(p);
  ClientConfig config;
  config.provisional = peer.provisional;
  peer.random = std::make_unique<SeededRandom>(random_.next_u64());
  peer.session = std::make_unique<ClientSession>(config, "dev:" + peer.user,
                                                 std::string("tab-").append(std::to_string(peer.generation)), *peer.random);
  auto imported = peer.session->import_state(peer.saved_state, now_);
  if (!imported.ok())
    views_[static_cast<std::size_t>(p)].violations.push_back(peer.user + ": import failed: " +
                                                             imported.error().message);
  peer.session->start(now_);
  mark_peer(p);
  pump();
}

// ---- the run --------------------------------------------------------------------------------

bool RelaySimulation::converged() const {
  for (const auto& node : nodes_)
    if (!node->up || !node->pending.empty() || node->outcomes_in_flight) return false;
  std::map<std::string, Seq> root_heads;
  for (const auto& conv : convs_)
    root_heads[conv] = const_cast<MemoryLogStore&>(nodes_[0]->store).head(kTenant, conv).value();
  for (std::size_t n = 1; n < nodes_.size(); ++n) {
    const Node& node = *nodes_[n];
    if (!node.store.data().staged.empty()) return false;
    for (const auto& conv : convs_)
      if (const_cast<MemoryLogStore&>(node.store).head(kTenant, conv).value() != root_heads[conv])
        return false;
  }
  for (const auto& peer : peers_) {
    if (peer->session->outbox_size() != 0) return false;
    if (peer->link) continue;
    if (peer->session->connection_state() != ConnectionState::online) return false;
    for (const auto& conv : convs_)
      if (peer->session->cursor(conv).value_or(0) != root_heads[conv]) return false;
  }
  return true;
}

void RelaySimulation::step_until(TimeMs end, bool stop_when_converged) {
  while (!queue_.empty() && queue_.begin()->first <= end) {
    auto node = queue_.extract(queue_.begin());
    now_ = node.key();
    node.mapped()();
    if (stop_when_converged && converged()) return;
  }
  now_ = std::max(now_, end);
}

bool RelaySimulation::run() {
  for (int n = 0; n < 3; ++n) start_node(n);
  for (std::size_t p = 0; p < peers_.size(); ++p) {
    Peer& peer = *peers_[p];
    if (peer.link) continue;
    ClientConfig config;
    config.provisional = peer.provisional;
    peer.random = std::make_unique<SeededRandom>(random_.next_u64());
    peer.session = std::make_unique<ClientSession>(config, "dev:" + peer.user, "tab-0", *peer.random);
    for (const auto& conv : convs_) peer.session->subscribe(conv, Seq{0}, now_);
    peer.session->start(now_ + static_cast<TimeMs>(random_.below(100)));
    mark_peer(static_cast<int>(p));
  }
  pump();
  auto random_time = [&] {
    return now_ + static_cast<TimeMs>(random_.below(static_cast<std::uint64_t>(options_.fault_window_ms)));
  };
  for (std::size_t p = 0; p < peers_.size(); ++p) {
    if (peers_[p]->link) continue;
    int index = static_cast<int>(p);
    for (int n = 0; n < options_.sends_per_client; ++n) {
      at(random_time(), [this, index, n] {
        Peer& peer = *peers_[static_cast<std::size_t>(index)];
        const std::string& conv = convs_[random_.below(convs_.size())];
        JsonText body{boost::json::serialize(
            boost::json::object{{"text", peer.user + " says " + std::to_string(n)}})};
        std::string id = peer.session->send(conv, body, now_);
        views_[static_cast<std::size_t>(index)].sent_ids.insert(id);
        mark_peer(index);
        pump();
      });
    }
    for (int n = 0; n < 2; ++n) {  // reading and typing cross the tree too
      at(random_time(), [this, index] {
        Peer& peer = *peers_[static_cast<std::size_t>(index)];
        const std::string& conv = convs_[random_.below(convs_.size())];
        if (auto cursor = peer.session->cursor(conv); cursor && *cursor > 0)
          peer.session->mark_read(conv, *cursor, now_);
        peer.session->set_typing(conv, true, now_);
        mark_peer(index);
        pump();
      });
    }
  }
  for (int n = 0; n < options_.link_faults; ++n) at(random_time(), [this] { fault_link(); });
  for (int n = 0; n < options_.client_cuts; ++n) at(random_time(), [this] { cut_user_socket(); });
  for (int n = 0; n < options_.root_crashes; ++n) at(random_time(), [this] { crash_node(0); });
  for (int n = 0; n < options_.relay_crashes; ++n) {
    int relay = 1 + static_cast<int>(random_.below(2));
    at(random_time(), [this, relay] { crash_node(relay); });
  }
  for (int n = 0; n < options_.client_reloads; ++n) {
    at(random_time(), [this] {
      int users = static_cast<int>(peers_.size()) - 2;
      reload_user(static_cast<int>(random_.below(static_cast<std::uint64_t>(users))));
    });
  }
  step_until(start_ + options_.fault_window_ms, false);
  faults_ = false;
  for (auto& node : nodes_) node->slow_until = 0;
  step_until(start_ + options_.fault_window_ms + options_.settle_limit_ms, true);
  return converged();
}

std::size_t RelaySimulation::root_messages() const { return nodes_[0]->store.data().log.size(); }

std::vector<std::string> RelaySimulation::check_properties() const {
  std::vector<std::string> problems = sim_violations_;
  for (const auto& view : views_)
    problems.insert(problems.end(), view.violations.begin(), view.violations.end());

  // The root: dense seqs, every id once, every id sent by somebody.
  auto root = log_of(nodes_[0]->store, problems, "root");
  std::map<std::string, std::pair<std::string, Seq>> where;  // id -> (conv, seq) at the root
  std::map<std::string, int> copies;
  for (const auto& [conv, entries] : root) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first != i + 1) problems.push_back("root: " + conv + " not dense at " + std::to_string(i + 1));
      ++copies[entries[i].second];
      where[entries[i].second] = {conv, entries[i].first};
    }
  }
  std::set<std::string> all_sent;
  for (const auto& view : views_) all_sent.insert(view.sent_ids.begin(), view.sent_ids.end());
  for (const auto& [id, count] : copies) {
    if (count != 1) problems.push_back("root: " + id + " stored " + std::to_string(count) + " times");
    if (!all_sent.count(id)) problems.push_back("root: " + id + " was never sent");
  }
  for (const auto& view : views_) {
    for (const auto& id : view.acked_ids)
      if (!copies.count(id)) problems.push_back(view.user + ": acked " + id + " is not at the root");
    for (const auto& id : view.sent_ids) {
      auto found = where.find(id);
      if (found == where.end()) {
        problems.push_back(view.user + ": sent " + id + " is not at the root");
        continue;
      }
      auto row = view.row_rank.find(id);
      if (row == view.row_rank.end() || row->second < rank(RowState::sequenced))
        problems.push_back(view.user + ": row " + id + " never reached sequenced");
      auto seq = view.own_seq.find(id);
      if (seq == view.own_seq.end() || seq->second != found->second.second)
        problems.push_back(view.user + ": row " + id + " has not the root's seq");
    }
  }

  // Every relay's log is the root's, or a prefix of it; no staged send is left behind.
  for (std::size_t n = 1; n < nodes_.size(); ++n) {
    const Node& node = *nodes_[n];
    auto local = log_of(node.store, problems, node.name);
    for (const auto& [conv, entries] : local) {
      auto it = root.find(conv);
      std::vector<std::pair<Seq, std::string>> root_entries =
          it == root.end() ? std::vector<std::pair<Seq, std::string>>{} : it->second;
      if (entries.size() > root_entries.size() ||
          !std::equal(entries.begin(), entries.end(), root_entries.begin()))
        problems.push_back(node.name + ": log of " + conv + " is not a prefix of the root's");
    }
    for (const auto& [conv, entries] : root) {
      auto it = local.find(conv);
      if (it == local.end() || it->second.size() != entries.size())
        problems.push_back(node.name + ": log of " + conv + " has " +
                           std::to_string(it == local.end() ? 0 : it->second.size()) +
                           " msgs, the root " + std::to_string(entries.size()));
    }
    if (!node.store.data().staged.empty())
      problems.push_back(node.name + ": " + std::to_string(node.store.data().staged.size()) +
                         " staged sends left");
    if (!node.store.data().dead_letters.empty())
      problems.push_back(node.name + ": " + std::to_string(node.store.data().dead_letters.size()) +
                         " dead letters");
  }

  // Every user saw the root's order, each message once.
  for (std::size_t p = 0; p < views_.size(); ++p) {
    if (peers_[p]->link) continue;
    const RelayAppView& view = views_[p];
    for (const auto& [conv, entries] : root) {
      auto it = view.history.find(conv);
      std::vector<std::pair<Seq, std::string>> seen =
          it == view.history.end() ? std::vector<std::pair<Seq, std::string>>{} : it->second;
      if (seen != entries)
        problems.push_back(view.user + "@" + nodes_[static_cast<std::size_t>(view.node)]->name +
                           ": saw " + std::to_string(seen.size()) + " msgs of " + conv +
                           ", the root has " + std::to_string(entries.size()) + " (or in another order)");
    }
  }
  return problems;
}

std::string RelaySimulation::summary() const {
  std::ostringstream out;
  out << "seed " << seed_ << ": t+" << (now_ - start_) << "ms, " << root_messages()
      << " msgs at the root, " << stats_.frames << " frames (" << stats_.duplicated
      << " duplicated), " << stats_.sockets << " sockets (" << stats_.refused << " refused), "
      << stats_.link_cuts << " link cuts, " << stats_.half_open << " half-open, " << stats_.slowed
      << " slowed, " << stats_.user_cuts << " user cuts, " << stats_.root_crashes
      << " root crashes, " << stats_.relay_crashes << " relay crashes, " << stats_.lost_batches
      << " lost batches, " << stats_.reloads << " reloads, " << stats_.failed_commits
      << " failed commits";
  for (std::size_t n = 1; n < nodes_.size(); ++n)
    out << "; " << nodes_[n]->name << " staged " << nodes_[n]->store.data().staged.size();
  return out.str();
}

}  // namespace waymark::sim
