// The harness's knobs: one plain struct, filled from the command line by bench_main.cpp.
// Defaults are the documented default run (docs/benchmarks.md); every count scales up.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace waymark::bench {

struct BenchOptions {
  std::string scenario = "ingest";  // ingest, fanout, idle, storm, replay, relay
  std::string target = "waymark";   // waymark, echo (lws echo server), redis, nats
  std::string host = "127.0.0.1";
  int port = 0;
  std::string run_id;               // makes conversation/stream names unique per run
  bool json = false;
  int edge_pid = 0;                 // server process to sample for CPU and RSS (0: none)

  // ingest (and the replay fill)
  int conns = 64;                   // connections, each keeping `window` sends in flight
  int window = 32;                  // unacked sends per connection
  std::size_t payload = 128;        // body bytes per message
  double duration_s = 10;           // measured seconds (after warm-up)
  double warmup_s = 1;              // seconds run before measuring
  double rate = 0;                  // total msgs/s across connections; 0: as fast as acked

  // fanout
  int subs = 1000;                  // subscribers of the one conversation
  int publishers = 2;               // publishing connections, sharing `rate`
  double fanout_rate = 500;         // msgs/s published (deliveries/s = rate x subs)

  // idle and storm
  int clients = 10000;              // connections (idle: 20000 in the runner's default)
  int convs = 100;                  // conversations the clients spread over
  int connect_window = 256;         // connection attempts in progress at once
  std::int64_t messages = 5000;     // storm: messages sent during the storm
  double storm_rate = 5000;         // storm: msgs/s while the sockets are dropped
  double settle_s = 2;              // idle: seconds to wait before sampling RSS

  // replay
  std::int64_t replay_messages = 1000000;  // how far behind the resuming client is
  int replay_limit = 1000;                 // sub limit per round trip (the edge's max)

  // relay: --port is a relay (--upstream to the root), --root-port the root it relays to.
  // Ingest runs against the root, then the same load against the relay (the ratio); the
  // partition phase runs at --partition-port (default --port), a relay whose --upstream is
  // ws://127.0.0.1:<proxy-port>/ws: the harness's FaultProxy, forwarding to the root.
  int root_port = 0;
  int root_pid = 0;                 // the root process, sampled for CPU
  int proxy_port = 0;               // the fault proxy listens here (0: no partition phase)
  int partition_port = 0;
  std::string relay_phases = "ingest,partition";
  std::string partition_mode = "cut";  // cut (link reset, reconnects refused) or stall (held)
  double partition_s = 10;          // how long the link is down
  std::int64_t partition_messages = 1000;  // sent at the relay while it is down

  double timeout_s = 120;           // any scenario gives up (and fails) after this
  int nats_sub_conns = 10;          // nats fanout: connections the consumers share
};

struct Summary;
// Each target's scenarios; they fill `summary` and return false on a setup failure. The Redis
// and NATS ones exist only when built with hiredis (WAYMARK_BENCH_REDIS) and libnats
// (WAYMARK_BENCH_NATS): tests/bench/CMakeLists.txt.
bool run_ws_scenario(const BenchOptions& options, Summary& summary);
bool run_redis_scenario(const BenchOptions& options, Summary& summary);
bool run_nats_scenario(const BenchOptions& options, Summary& summary);

}  // namespace waymark::bench
