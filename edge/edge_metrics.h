// EdgeMetrics: the /metrics page (Prometheus text format, through prometheus-cpp). Counters the
// core keeps (frames in, errors, persisted, fanout, replay) are copied in at scrape time; the
// host's own measurements (durable-ack latency, commit batches, lagging closes, queued bytes)
// are recorded as they happen. The lws thread only.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "waymark/edge_node.h"

namespace waymark::edge {

class EdgeMetrics {
 public:
  EdgeMetrics();

  void frame_out(std::string_view type);
  void commit(std::size_t batch_size, double seconds);
  void durable_ack(double seconds);  // frame received -> ack written
  void lagging_close();
  void set_queued_bytes(std::uint64_t bytes);
  void set_lmdb_bytes(std::uint64_t bytes);
  // A relaying edge's links (relaying false: a root, nothing to show).
  void set_upstream(const std::map<std::string, UpstreamLinkStatus>& links, bool relaying,
                    std::optional<double> oldest_staged_age_seconds);

  // The whole page, after copying in the core's counters.
  std::string render(const EdgeCounters& node);

 private:
  void sync_counter(prometheus::Family<prometheus::Counter>& family,
                    std::map<std::string, std::uint64_t>& seen, const std::string& label_name,
                    const std::string& label, std::uint64_t total);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& frames_in_;
  prometheus::Family<prometheus::Counter>& frames_out_;
  prometheus::Family<prometheus::Counter>& errors_;
  prometheus::Counter& persisted_;
  prometheus::Counter& duplicates_;
  prometheus::Counter& fanout_;
  prometheus::Counter& replayed_;
  prometheus::Counter& lagging_;
  prometheus::Counter& audit_records_;
  prometheus::Counter& audit_suppressed_;
  prometheus::Gauge& connections_;
  prometheus::Gauge& queued_bytes_;
  prometheus::Gauge& lmdb_bytes_;
  prometheus::Counter& replicated_;
  prometheus::Counter& dead_letters_;
  prometheus::Counter& provisional_;
  prometheus::Family<prometheus::Gauge>& upstream_up_;
  prometheus::Family<prometheus::Counter>& upstream_reconnects_;
  prometheus::Family<prometheus::Gauge>& upstream_outbox_;
  prometheus::Family<prometheus::Gauge>& upstream_oldest_;
  prometheus::Family<prometheus::Gauge>& upstream_lag_;
  std::map<std::string, std::uint64_t> seen_reconnects_;
  prometheus::Histogram& commit_batch_;
  prometheus::Histogram& commit_seconds_;
  prometheus::Histogram& durable_ack_seconds_;
  std::map<std::string, prometheus::Counter*> frames_out_by_type_;
  // What was already copied from the core's counters, per metric and label.
  std::map<std::string, std::uint64_t> seen_in_, seen_errors_, seen_scalars_;
};

}  // namespace waymark::edge
