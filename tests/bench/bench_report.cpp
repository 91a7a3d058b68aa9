#include "bench_report.h"

#include <boost/json/serialize.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace waymark::bench {

void Summary::set_latency(const std::string& prefix, LatencyRecorder& recorder) {
  fields[prefix + "_samples"] = static_cast<std::uint64_t>(recorder.count());
  fields[prefix + "_p50_ms"] = recorder.quantile_ms(0.50);
  fields[prefix + "_p99_ms"] = recorder.quantile_ms(0.99);
  fields[prefix + "_p999_ms"] = recorder.quantile_ms(0.999);
}

void print_summary(const Summary& summary, bool json) {
  if (json) {
    boost::json::object line;
    line["scenario"] = summary.scenario;
    line["target"] = summary.target;
    line["ok"] = summary.ok();
    boost::json::array problems;
    for (const auto& problem : summary.problems) problems.emplace_back(problem);
    line["problems"] = std::move(problems);
    for (const auto& field : summary.fields) line[field.key()] = field.value();
    std::printf("%s\n", boost::json::serialize(line).c_str());
  } else {
    std::string row = summary.scenario + " " + summary.target + (summary.ok() ? " OK" : " FAIL");
    for (const auto& field : summary.fields) {
      row += " " + std::string(field.key()) + "=";
      if (field.value().is_double()) {
        char number[32];
        std::snprintf(number, sizeof number, "%.3f", field.value().as_double());
        row += number;
      } else if (field.value().is_string()) {
        row += std::string(field.value().as_string());
      } else {
        row += boost::json::serialize(field.value());
      }
    }
    for (const auto& problem : summary.problems) row += " | " + problem;
    std::printf("%s\n", row.c_str());
  }
  std::fflush(stdout);
}

void Progress::maybe_print(const std::string& text, bool force) {
  std::int64_t now = now_ns();
  if (!force && now - last_ < 1'000'000'000) return;
  last_ = now;
  std::fprintf(stderr, "[%s %5.1fs] %s\n", scenario_.c_str(), static_cast<double>(now - start_) / 1e9,
               text.c_str());
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double process_cpu_seconds(int pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces) start after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int index = 3; fields >> field; ++index) {  // field 3 is the state
    if (index == 14) utime = std::stod(field);
    if (index == 15) {
      stime = std::stod(field);
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::uint64_t process_rss_bytes(int pid) {
  if (pid <= 0) return 0;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // kB
  return 0;
}

std::uint64_t kernel_tcp_mem_bytes() {
  std::ifstream sockstat("/proc/net/sockstat");
  std::string line;
  while (std::getline(sockstat, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    auto at = line.find(" mem ");
    if (at == std::string::npos) return 0;
    return std::stoull(line.substr(at + 5)) * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  }
  return 0;
}

void set_ingest_summary(Summary& summary, const BenchOptions& options, const IngestCounts& counts,
                        LatencyRecorder& latency, const std::string& what) {
  summary.set("conns", options.conns);
  summary.set("window", options.window);
  summary.set("payload", static_cast<std::uint64_t>(options.payload));
  summary.set("rate_target", options.rate);
  summary.set("seconds", options.duration_s);
  summary.set("sent", counts.sent);
  summary.set("acked", counts.acked);
  summary.set("nacked", counts.refused);
  summary.set("msgs_per_s", static_cast<double>(counts.acked_in_window) / options.duration_s);
  summary.set_latency("ack", latency);
  summary.set("server_cpu_pct", 100 * counts.server_cpu_s / options.duration_s);
  summary.set("bench_cpu_pct", 100 * counts.own_cpu_s / options.duration_s);
  if (counts.acked + counts.refused < counts.sent)
    summary.problems.push_back(std::to_string(counts.sent - counts.acked - counts.refused) + " " +
                               what + " never answered");
}

}  // namespace waymark::bench
