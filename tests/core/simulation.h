// A deterministic simulation of Waymark (h11's ConnectionPair pattern, grown to a network):
// several ClientSessions and one EdgeNode over a MemoryLogStore, joined by a fake network that
// delays, duplicates, reorders (across connections), drops (by cutting, as TCP would) and
// half-opens connections, on a manual clock. The edge can crash and restart; clients can
// reload from their exported state. One seed fixes every choice, so a failure replays.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "waymark/auth.h"
#include "waymark/client_session.h"
#include "waymark/edge_node.h"
#include "core/memory_log_store.h"

namespace waymark::sim {

struct SimOptions {
  int clients = 4;
  int convs = 3;
  int sends_per_client = 12;
  TimeMs fault_window_ms = 60000;     // faults happen in [0, this); then the network heals
  TimeMs settle_limit_ms = 600000;    // after healing, everything must converge within this
  TimeMs min_latency_ms = 1, max_latency_ms = 40;
  double duplicate_probability = 0.02;  // a frame delivered twice
  int cuts = 6;                         // connections cut abruptly during the fault window
  double half_open_probability = 0.5;   // a cut the client is not told about
  double refuse_probability = 0.1;      // a connection attempt refused
  double store_failure_probability = 0.05;  // a group commit failing (disk full, EIO)
  int edge_crashes = 1;
  int client_reloads = 2;
  TimeMs heartbeat_ms = 5000;
};

// What one client's app saw.
struct AppView {
  std::string user;
  std::set<std::string> sent_ids;                               // ids send() returned
  std::map<std::string, RowState> rows;                         // id -> latest state
  std::map<std::string, std::vector<std::pair<Seq, std::string>>> history;  // conv -> (seq, id)
  std::map<std::string, Seq> last_cursor;                       // conv -> last CursorEvent
  std::map<std::string, Seq> acked_seq;                         // own id -> seq from its row
  std::vector<std::string> violations;                          // found while running
};

class Simulation {
 public:
  Simulation(std::uint64_t seed, SimOptions options);
  ~Simulation();

  // Runs the fault window, heals, and runs until converged or settle_limit_ms passes.
  // Returns true when converged (every outbox empty, every client online and at the head).
  bool run();

  // Property checks after run(); each returns a list of violations (empty = holds).
  std::vector<std::string> check_properties() const;

  const std::vector<AppView>& views() const { return views_; }
  const MemoryLogStore& store() const { return store_; }
  std::string summary() const;

 private:
  struct Link;
  struct Client;

  using Action = std::function<void()>;
  void at(TimeMs when, Action action);
  TimeMs latency();
  bool chance(double p);

  void start_edge();
  void crash_edge();
  void drain_edge();
  void schedule_commit();
  void commit();

  void drain_client(int index);
  void handle_client_event(int index, ClientEvent& event);
  void reload_client(int index);
  void cut_link(ConnId link_id);
  void note_subscriptions(Link& link, const std::string& text);
  void check_wire_order(Link& link, const std::string& text);
  bool converged() const;
  void step_until(TimeMs end, bool stop_when_converged);

  std::uint64_t seed_;
  SimOptions options_;
  SeededRandom random_;
  TimeMs now_ = 1'700'000'000'000;
  TimeMs start_;
  bool faults_ = true;
  std::multimap<TimeMs, Action> queue_;

  MemoryLogStore store_;
  DevAuthenticator auth_;
  SeededRandom edge_random_;
  std::unique_ptr<EdgeNode> edge_;
  std::uint64_t edge_generation_ = 0;
  bool edge_up_ = false;
  std::vector<WriteRequest> pending_writes_;
  bool commit_scheduled_ = false;

  std::map<ConnId, std::unique_ptr<Link>> links_;
  ConnId next_link_ = 1;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<AppView> views_;
  std::vector<std::string> convs_;
  std::vector<std::string> wire_violations_;  // the edge broke per-connection order
  struct Stats {
    std::uint64_t frames = 0, duplicated = 0, sockets_opened = 0, refused = 0, cuts = 0,
                  crashes = 0, reloads = 0, failed_commits = 0, dup_acks = 0, nacks = 0;
  };
  Stats stats_;
};

}  // namespace waymark::sim
