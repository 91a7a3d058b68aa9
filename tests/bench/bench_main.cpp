// waymark-bench: the load harness. One scenario per run against one target; progress on
// stderr, one summary row (or --json line) on stdout; exit 1 when a correctness check failed,
// 2 on a bad argument or a scenario that could not run.
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <ctime>

#include "bench_options.h"
#include "bench_report.h"

namespace {

// Thousands of sockets need as many descriptors: raise the soft limit to the hard one, and the
// hard one too when allowed (root).
void raise_fd_limit(rlim_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_max < wanted) {
    rlimit raised{wanted, wanted};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return;
  }
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace waymark::bench;
  BenchOptions o;
  CLI::App app{"waymark-bench: load harness for Waymark (and Redis Streams, NATS JetStream)"};
  app.add_option("scenario", o.scenario, "ingest, fanout, idle, storm, replay or relay")
      ->required()->check(CLI::IsMember({"ingest", "fanout", "idle", "storm", "replay", "relay"}));
  app.add_option("--target", o.target, "waymark, echo, redis or nats")
      ->capture_default_str()->check(CLI::IsMember({"waymark", "echo", "redis", "nats"}));
  app.add_option("--host", o.host)->capture_default_str();
  app.add_option("--port", o.port, "server port")->required();
  app.add_option("--run-id", o.run_id, "suffix of conversation/stream names (default: time)");
  app.add_flag("--json", o.json, "print the summary as one JSON line");
  app.add_option("--server-pid", o.edge_pid, "server process to sample for CPU and RSS");
  app.add_option("--conns", o.conns, "ingest/replay fill: connections")->capture_default_str();
  app.add_option("--window", o.window, "ingest: unacked sends per connection")->capture_default_str();
  app.add_option("--payload", o.payload, "body bytes per message")->capture_default_str();
  app.add_option("--duration", o.duration_s, "measured seconds")->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "seconds before measuring")->capture_default_str();
  app.add_option("--rate", o.rate, "ingest: total msgs/s (0: as fast as acks allow)")->capture_default_str();
  app.add_option("--subs", o.subs, "fanout: subscribers")->capture_default_str();
  app.add_option("--publishers", o.publishers, "fanout: publishing connections")->capture_default_str();
  app.add_option("--fanout-rate", o.fanout_rate, "fanout: msgs/s published")->capture_default_str();
  app.add_option("--clients", o.clients, "idle/storm: connections")->capture_default_str();
  app.add_option("--convs", o.convs, "idle/storm: conversations")->capture_default_str();
  app.add_option("--connect-window", o.connect_window, "connection attempts in flight at once")
      ->capture_default_str();
  app.add_option("--messages", o.messages, "storm: messages sent during the storm")->capture_default_str();
  app.add_option("--storm-rate", o.storm_rate, "storm: msgs/s sent")->capture_default_str();
  app.add_option("--settle", o.settle_s, "idle: seconds before sampling RSS")->capture_default_str();
  app.add_option("--replay-messages", o.replay_messages, "replay: messages behind")->capture_default_str();
  app.add_option("--replay-limit", o.replay_limit, "replay: sub limit")->capture_default_str();
  app.add_option("--timeout", o.timeout_s, "seconds before a phase gives up")->capture_default_str();
  app.add_option("--root-port", o.root_port, "relay: the root's port (--port is the relay's)");
  app.add_option("--root-pid", o.root_pid, "relay: the root process, sampled for CPU");
  app.add_option("--proxy-port", o.proxy_port,
                 "relay: the fault proxy listens here and forwards to --root-port (the partition relay's --upstream)");
  app.add_option("--partition-port", o.partition_port, "relay: the relay behind the proxy (default: --port)");
  app.add_option("--relay-phases", o.relay_phases, "relay: ingest, partition or both")->capture_default_str();
  app.add_option("--partition-mode", o.partition_mode, "relay: cut (reset, refused) or stall (held, nothing passes)")
      ->capture_default_str()->check(CLI::IsMember({"cut", "stall"}));
  app.add_option("--partition-s", o.partition_s, "relay: seconds the link is down")->capture_default_str();
  app.add_option("--partition-messages", o.partition_messages, "relay: sends at the relay while it is down")
      ->capture_default_str();
  app.add_option("--nats-sub-conns", o.nats_sub_conns, "nats fanout: connections shared by consumers")
      ->capture_default_str();
  app.failure_message(CLI::FailureMessage::help);  // a bad argument prints the error and the usage
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help: 0; a bad argument: 2 (as waymark-edge)
  }
  if (o.run_id.empty()) o.run_id = std::to_string(std::time(nullptr));
  if (o.conns < 1 || o.window < 1 || o.subs < 1 || o.publishers < 1 || o.clients < 1 || o.convs < 1 ||
      o.duration_s <= 0 || o.connect_window < 1 || o.partition_messages < 1 || o.partition_s < 0) {
    std::fprintf(stderr, "waymark-bench: counts must be positive\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit(static_cast<rlim_t>(o.clients + o.subs + o.conns) + 1024);

  Summary summary;
  summary.scenario = o.scenario;
  summary.target = o.target;
  bool ran = false;
  if (o.target == "waymark" || o.target == "echo") {
    ran = run_ws_scenario(o, summary);
  } else if (o.target == "redis") {
#ifdef WAYMARK_BENCH_REDIS
    ran = run_redis_scenario(o, summary);
#else
    std::fprintf(stderr, "waymark-bench: redis peer not built (hiredis was not found when configuring)\n");
    return 2;
#endif
  } else {
#ifdef WAYMARK_BENCH_NATS
    ran = run_nats_scenario(o, summary);
#else
    std::fprintf(stderr, "waymark-bench: nats peer not built (libnats was not found when configuring)\n");
    return 2;
#endif
  }
  if (!ran) {
    std::fprintf(stderr, "waymark-bench: %s against %s could not run\n", o.scenario.c_str(), o.target.c_str());
    return 2;
  }
  print_summary(summary, o.json);
  return summary.ok() ? 0 : 1;
}
