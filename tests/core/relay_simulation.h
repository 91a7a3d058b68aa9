// A deterministic simulation of a relay tree (simulation.h's pattern, grown to three nodes): a
// root EdgeNode and two relaying EdgeNodes, each over its own MemoryLogStore; each relay's
// upstream link is the core's ClientSession in relay mode; user ClientSessions sit on every
// node. A fake network on a manual clock delays, duplicates and reorders frames, cuts
// sockets, half-opens them in one direction (until a heartbeat notices) and slows the links;
// nodes crash (the EdgeNode, its writer's batch and its link are lost, the store kept) and
// restart with recover_staged. One seed fixes every choice, so a failure replays.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/memory_log_store.h"
#include "waymark/client_session.h"

namespace waymark::sim {

struct RelaySimOptions {
  int clients_per_node = 2;          // user sessions on the root and on each relay
  int convs = 2;
  int sends_per_client = 8;
  TimeMs fault_window_ms = 30000;    // faults in [0, this); then the network heals
  TimeMs settle_limit_ms = 300000;   // after healing, everything converges within this
  TimeMs min_latency_ms = 1, max_latency_ms = 40;
  TimeMs slow_min_ms = 200, slow_max_ms = 1500;  // a slowed link's extra latency
  double duplicate_probability = 0.03;
  int link_faults = 10;              // cuts, half-opens and slow spells of relay<->root links
  int client_cuts = 3;               // cuts of user sockets
  double refuse_probability = 0.1;   // a connection attempt refused
  double store_failure_probability = 0.03;
  int root_crashes = 1;
  int relay_crashes = 3;             // each hits a relay chosen by the seed
  int client_reloads = 2;
  TimeMs heartbeat_ms = 5000;
  TimeMs interest_linger_ms = 3000;
};

// What one user's app saw.
struct RelayAppView {
  std::string user;
  int node = 0;                                    // 0: the root, 1 and 2: the relays
  std::set<std::string> sent_ids;
  std::set<std::string> acked_ids;                 // rows that reached stored or beyond
  std::map<std::string, int> row_rank;             // id -> highest state seen
  std::map<std::string, Seq> own_seq;              // own id -> seq from its row
  std::map<std::string, std::vector<std::pair<Seq, std::string>>> history;  // sequenced msgs
  std::vector<std::string> violations;
};

class RelaySimulation {
 public:
  RelaySimulation(std::uint64_t seed, RelaySimOptions options);
  ~RelaySimulation();

  // The fault window, the heal, then until converged or settle_limit_ms passes.
  bool run();
  std::vector<std::string> check_properties() const;
  std::string summary() const;
  std::size_t root_messages() const;

 private:
  struct Node;
  struct Peer;
  struct Sock;
  using Action = std::function<void()>;

  void at(TimeMs when, Action action);
  TimeMs latency();
  bool chance(double p);

  void start_node(int n);
  void crash_node(int n);
  void make_link(int relay);
  void schedule_commit(int n);
  void commit(int n);
  void schedule_node_timer(int n);

  void mark_node(int n);
  void mark_peer(int p);
  void pump();
  void drain_node(int n);
  void drain_peer(int p);
  void schedule_peer_timer(int p);
  void handle_user_event(int p, ClientEvent& event);

  void open_socket(int p, ConnectionId connection);
  void to_edge(Sock& sock, std::string text);
  void to_client(Sock& sock, std::shared_ptr<const std::string> text);
  void close_from_client(Sock& sock);
  void close_from_edge(Sock& sock);
  void edge_forgets(std::uint64_t sock_id, TimeMs when);
  void client_hears_close(std::uint64_t sock_id, TimeMs when);
  TimeMs extra_latency(const Sock& sock) const;

  void fault_link();
  void cut_user_socket();
  void reload_user(int p);
  bool converged() const;
  void step_until(TimeMs end, bool stop_when_converged);

  std::uint64_t seed_;
  RelaySimOptions options_;
  SeededRandom random_;
  TimeMs now_ = 1'700'000'000'000;
  TimeMs start_;
  bool faults_ = true;
  std::multimap<TimeMs, Action> queue_;

  std::vector<std::unique_ptr<Node>> nodes_;  // 0: the root
  std::vector<std::unique_ptr<Peer>> peers_;  // users, then the relays' links
  std::map<std::uint64_t, std::unique_ptr<Sock>> socks_;
  std::uint64_t next_sock_ = 1;
  std::vector<RelayAppView> views_;           // by peer index (links have none)
  std::vector<std::string> convs_;
  std::set<int> dirty_nodes_, dirty_peers_;
  bool pumping_ = false;
  std::vector<std::string> sim_violations_;

  struct Stats {
    std::uint64_t frames = 0, duplicated = 0, sockets = 0, refused = 0, link_cuts = 0,
                  half_open = 0, slowed = 0, user_cuts = 0, root_crashes = 0, relay_crashes = 0,
                  reloads = 0, failed_commits = 0, lost_batches = 0;
  };
  Stats stats_;
};

}  // namespace waymark::sim
