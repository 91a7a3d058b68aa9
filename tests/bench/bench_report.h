// What a scenario hands back: one summary (a row for people, a JSON line for the runner), plus
// the per-second progress line printed while it runs. Main thread only.
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "bench_options.h"
#include "latency_recorder.h"

namespace waymark::bench {

struct Summary {
  std::string scenario;  // ingest, fanout, idle, storm, replay
  std::string target;    // waymark, echo, redis, nats
  boost::json::object fields;           // measured numbers and the run's settings, in order
  std::vector<std::string> problems;    // correctness failures: missing acks, gaps, repeats
  bool ok() const { return problems.empty(); }

  void set(const char* key, double value) { fields[key] = value; }
  void set(const char* key, std::int64_t value) { fields[key] = value; }
  void set(const char* key, std::uint64_t value) { fields[key] = value; }
  void set(const char* key, int value) { fields[key] = static_cast<std::int64_t>(value); }
  void set(const char* key, std::string value) { fields[key] = value; }
  // p50/p99/p99.9 of a recorder under prefix (e.g. "ack" -> ack_p50_ms ...).
  void set_latency(const std::string& prefix, LatencyRecorder& recorder);
};

// What an ingest run counted, whatever it ran against.
struct IngestCounts {
  std::uint64_t sent = 0, acked = 0, refused = 0, acked_in_window = 0;
  double server_cpu_s = 0, own_cpu_s = 0;
};
// The ingest row every target reports: settings, counts, msgs/s, ack latency, CPU; and the
// problem when something sent was never answered (`what`: "sends", "XADDs", "publishes").
void set_ingest_summary(Summary& summary, const BenchOptions& options, const IngestCounts& counts,
                        LatencyRecorder& latency, const std::string& what);

// One line on stdout: "key=value ..." for people, or one JSON object with --json.
void print_summary(const Summary& summary, bool json);

// Progress on stderr, at most once a second: "[ingest 3.0s] text".
class Progress {
 public:
  explicit Progress(std::string scenario) : scenario_(std::move(scenario)), start_(now_ns()) {}
  // Prints when a second has passed since the last line (or always when force).
  void maybe_print(const std::string& text, bool force = false);
  double elapsed_s() const { return static_cast<double>(now_ns() - start_) / 1e9; }

 private:
  std::string scenario_;
  std::int64_t start_;
  std::int64_t last_ = 0;
};

// CPU seconds (user + system) used so far by this process, and by another one (from /proc).
double own_cpu_seconds();
double process_cpu_seconds(int pid);
// Resident set size of a process in bytes (VmRSS), 0 if it cannot be read.
std::uint64_t process_rss_bytes(int pid);
// Kernel TCP buffer memory of the whole machine in bytes (/proc/net/sockstat "mem", pages).
std::uint64_t kernel_tcp_mem_bytes();

}  // namespace waymark::bench
