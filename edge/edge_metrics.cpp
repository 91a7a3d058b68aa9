// Metric definitions and the scrape-time copy of the core's counters.
#include "edge_metrics.h"

#include <prometheus/text_serializer.h>

namespace waymark::edge {
namespace {

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};
}

prometheus::Histogram::BucketBoundaries batch_buckets() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
}

}  // namespace

EdgeMetrics::EdgeMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      frames_in_(prometheus::BuildCounter().Name("waymark_frames_in_total")
                     .Help("Frames received, by type (invalid: could not be parsed)").Register(*registry_)),
      frames_out_(prometheus::BuildCounter().Name("waymark_frames_out_total")
                      .Help("Frames written to sockets, by type").Register(*registry_)),
      errors_(prometheus::BuildCounter().Name("waymark_errors_total")
                  .Help("err and nack frames sent, by code").Register(*registry_)),
      persisted_(prometheus::BuildCounter().Name("waymark_messages_persisted_total")
                     .Help("Messages durably committed (first copies, not duplicates)").Register(*registry_).Add({})),
      duplicates_(prometheus::BuildCounter().Name("waymark_duplicate_sends_total")
                      .Help("Sends of an already stored (conv, id), acked with dup:true").Register(*registry_).Add({})),
      fanout_(prometheus::BuildCounter().Name("waymark_fanout_deliveries_total")
                  .Help("Live msg frames queued to subscribers").Register(*registry_).Add({})),
      replayed_(prometheus::BuildCounter().Name("waymark_replayed_messages_total")
                    .Help("msg frames sent as replay after sub").Register(*registry_).Add({})),
      lagging_(prometheus::BuildCounter().Name("waymark_lagging_closes_total")
                   .Help("Connections closed 4008 because their queue passed its bound").Register(*registry_).Add({})),
      audit_records_(prometheus::BuildCounter().Name("waymark_audit_records_total")
                         .Help("Audit records written (auth failures, forbidden, abuse, reloads)").Register(*registry_).Add({})),
      audit_suppressed_(prometheus::BuildCounter().Name("waymark_audit_suppressed_total")
                            .Help("Audit records not stored: over the node's audit rate").Register(*registry_).Add({})),
      connections_(prometheus::BuildGauge().Name("waymark_connections")
                       .Help("Open WebSocket connections").Register(*registry_).Add({})),
      queued_bytes_(prometheus::BuildGauge().Name("waymark_queued_bytes")
                        .Help("Bytes queued to connections, not yet written").Register(*registry_).Add({})),
      lmdb_bytes_(prometheus::BuildGauge().Name("waymark_lmdb_bytes")
                      .Help("Bytes of the LMDB map in use").Register(*registry_).Add({})),
      replicated_(prometheus::BuildCounter().Name("waymark_relay_replicated_total")
                      .Help("Relay: sequenced msgs stored from the upstream").Register(*registry_).Add({})),
      dead_letters_(prometheus::BuildCounter().Name("waymark_relay_dead_letters_total")
                        .Help("Relay: staged sends the root refused for good, kept in the dead sub-database").Register(*registry_).Add({})),
      provisional_(prometheus::BuildCounter().Name("waymark_provisional_deliveries_total")
                       .Help("Relay: provisional msg frames (staged, not yet sequenced) queued to subscribers").Register(*registry_).Add({})),
      upstream_up_(prometheus::BuildGauge().Name("waymark_upstream_up")
                       .Help("Relay: 1 while the tenant's upstream link is online").Register(*registry_)),
      upstream_reconnects_(prometheus::BuildCounter().Name("waymark_upstream_reconnects_total")
                               .Help("Relay: times the tenant's upstream link went from online to not").Register(*registry_)),
      upstream_outbox_(prometheus::BuildGauge().Name("waymark_upstream_outbox")
                           .Help("Relay: sends stored here and not yet sequenced upstream").Register(*registry_)),
      upstream_oldest_(prometheus::BuildGauge().Name("waymark_upstream_outbox_oldest_age_seconds")
                           .Help("Relay: age of the oldest staged send (0: none)").Register(*registry_)),
      upstream_lag_(prometheus::BuildGauge().Name("waymark_upstream_replication_lag")
                        .Help("Relay: msgs the upstream sequenced that this log lacks (upstream head - local head, summed over followed conversations)")
                        .Register(*registry_)),
      commit_batch_(prometheus::BuildHistogram().Name("waymark_commit_batch_size")
                        .Help("Writes per group commit").Register(*registry_).Add({}, batch_buckets())),
      commit_seconds_(prometheus::BuildHistogram().Name("waymark_commit_seconds")
                          .Help("Time of one group commit, fsync included").Register(*registry_).Add({}, latency_buckets())),
      durable_ack_seconds_(prometheus::BuildHistogram().Name("waymark_durable_ack_seconds")
                               .Help("From a send frame received to its ack queued after the commit")
                               .Register(*registry_).Add({}, latency_buckets())) {}

void EdgeMetrics::frame_out(std::string_view type) {
  auto it = frames_out_by_type_.find(std::string(type));
  if (it == frames_out_by_type_.end())
    it = frames_out_by_type_.emplace(std::string(type), &frames_out_.Add({{"type", std::string(type)}})).first;
  it->second->Increment();
}

void EdgeMetrics::commit(std::size_t batch_size, double seconds) {
  commit_batch_.Observe(static_cast<double>(batch_size));
  commit_seconds_.Observe(seconds);
}

void EdgeMetrics::durable_ack(double seconds) { durable_ack_seconds_.Observe(seconds); }
void EdgeMetrics::lagging_close() { lagging_.Increment(); }
void EdgeMetrics::set_queued_bytes(std::uint64_t bytes) { queued_bytes_.Set(static_cast<double>(bytes)); }
void EdgeMetrics::set_lmdb_bytes(std::uint64_t bytes) { lmdb_bytes_.Set(static_cast<double>(bytes)); }

void EdgeMetrics::set_upstream(const std::map<std::string, UpstreamLinkStatus>& links,
                               bool relaying, std::optional<double> oldest_staged_age_seconds) {
  if (!relaying) return;
  for (const auto& [tenant, link] : links) {
    upstream_up_.Add({{"tenant", tenant}}).Set(link.state == ConnectionState::online ? 1 : 0);
    sync_counter(upstream_reconnects_, seen_reconnects_, "tenant", tenant, link.reconnects);
    upstream_lag_.Add({{"tenant", tenant}}).Set(static_cast<double>(link.replication_lag));
  }
  upstream_oldest_.Add({}).Set(oldest_staged_age_seconds.value_or(0));
}

void EdgeMetrics::sync_counter(prometheus::Family<prometheus::Counter>& family,
                               std::map<std::string, std::uint64_t>& seen,
                               const std::string& label_name, const std::string& label,
                               std::uint64_t total) {
  std::uint64_t& before = seen[label];
  if (total > before) family.Add({{label_name, label}}).Increment(static_cast<double>(total - before));
  before = total;
}

std::string EdgeMetrics::render(const EdgeCounters& node) {
  for (const auto& [type, count] : node.frames_in) sync_counter(frames_in_, seen_in_, "type", type, count);
  for (const auto& [code, count] : node.errors_out) sync_counter(errors_, seen_errors_, "code", code, count);
  auto sync_scalar = [&](prometheus::Counter& counter, const char* name, std::uint64_t total) {
    std::uint64_t& before = seen_scalars_[name];
    if (total > before) counter.Increment(static_cast<double>(total - before));
    before = total;
  };
  sync_scalar(persisted_, "persisted", node.messages_persisted);
  sync_scalar(duplicates_, "duplicates", node.duplicates);
  sync_scalar(fanout_, "fanout", node.fanout_deliveries);
  sync_scalar(replayed_, "replayed", node.replayed_messages);
  sync_scalar(audit_records_, "audit_records", node.audit_records);
  sync_scalar(audit_suppressed_, "audit_suppressed", node.audit_suppressed);
  connections_.Set(static_cast<double>(node.connections_open));
  sync_scalar(replicated_, "replicated", node.replicated_messages);
  sync_scalar(dead_letters_, "dead_letters", node.dead_letters);
  sync_scalar(provisional_, "provisional", node.provisional_deliveries);
  upstream_outbox_.Add({}).Set(static_cast<double>(node.staged_now));
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace waymark::edge
