// The NATS JetStream peer (nats-server 2.9): the same ingest and fanout loads through libnats.
// Ingest: js_PublishAsync with a per-connection window of unacked publishes; a PubAck is the
// durable ack. Durability is the server's: file storage; nats-server 2.9 has no per-message
// fsync setting (it writes each message to the file and fsyncs on its own schedule), which the
// runner states next to the numbers. Fanout: ordered push consumers sharing a few connections,
// delivered by libnats's global delivery pool.
#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_options.h"
#include "bench_report.h"

namespace waymark::bench {
namespace {

struct Shared {
  std::int64_t measure_from = 0;
  std::int64_t measure_until = 0;
  std::mutex mutex;
  std::condition_variable acked;  // an ack made room in some window
};

struct Publisher {
  Shared* shared = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  std::string subject;
  std::atomic<int> in_flight{0};
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> acked_in_window{0};
  LatencyRecorder latency;  // written by this connection's delivery thread only
};

std::int64_t stamp_of(natsMsg* msg) {
  std::int64_t t0 = 0;
  if (natsMsg_GetDataLength(msg) >= static_cast<int>(sizeof t0)) std::memcpy(&t0, natsMsg_GetData(msg), sizeof t0);
  return t0;
}

void on_pub_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
  auto* pub = static_cast<Publisher*>(closure);
  std::int64_t now = now_ns();
  if (ack && !error) {
    pub->acked.fetch_add(1, std::memory_order_relaxed);
    if (now >= pub->shared->measure_from && now < pub->shared->measure_until) {
      pub->acked_in_window.fetch_add(1, std::memory_order_relaxed);
      pub->latency.record(now - stamp_of(msg));
    }
  } else {
    if (pub->errors.fetch_add(1) < 5 && error)
      std::fprintf(stderr, "nats: publish failed: %s\n", error->ErrText ? error->ErrText : natsStatus_GetText(error->Err));
  }
  natsMsg_Destroy(msg);
  pub->in_flight.fetch_sub(1);
  pub->shared->acked.notify_one();
}

class NatsSession {
 public:
  ~NatsSession() {
    for (auto& pub : pubs) {
      if (pub->js) jsCtx_Destroy(pub->js);
      if (pub->nc) natsConnection_Destroy(pub->nc);
    }
    nats_Close();
  }
  bool connect(const BenchOptions& options, std::size_t count, int window) {
    nats_Open(-1);
    nats_SetMessageDeliveryPoolSize(2);
    url = "nats://" + options.host + ":" + std::to_string(options.port);
    for (std::size_t i = 0; i < count; ++i) {
      auto pub = std::make_unique<Publisher>();
      pub->shared = &shared;
      natsOptions* opts = nullptr;
      natsOptions_Create(&opts);
      natsOptions_SetURL(opts, url.c_str());
      natsOptions_UseGlobalMessageDelivery(opts, true);
      natsStatus status = natsConnection_Connect(&pub->nc, opts);
      natsOptions_Destroy(opts);
      if (status != NATS_OK) {
        std::fprintf(stderr, "nats: connect %s: %s\n", url.c_str(), natsStatus_GetText(status));
        return false;
      }
      jsOptions js_options;
      jsOptions_Init(&js_options);
      js_options.PublishAsync.MaxPending = window + 8;  // we keep `window` in flight ourselves
      js_options.PublishAsync.AckHandler = on_pub_ack;
      js_options.PublishAsync.AckHandlerClosure = pub.get();
      if (natsConnection_JetStream(&pub->js, pub->nc, &js_options) != NATS_OK) return false;
      pubs.push_back(std::move(pub));
    }
    return true;
  }
  bool add_stream(const std::string& name, const std::string& subjects) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = name.c_str();
    const char* subject_list[] = {subjects.c_str()};
    config.Subjects = subject_list;
    config.SubjectsLen = 1;
    config.Storage = js_FileStorage;
    jsStreamInfo* info = nullptr;
    jsErrCode code{};
    natsStatus status = js_AddStream(&info, pubs.front()->js, &config, nullptr, &code);
    if (info) jsStreamInfo_Destroy(info);
    if (status != NATS_OK) {
      std::fprintf(stderr, "nats: add stream: %s (%d)\n", natsStatus_GetText(status), static_cast<int>(code));
      return false;
    }
    return true;
  }
  // Publishes while windows (and the rate) allow, until `until`; sleeps on acks otherwise.
  void publish_until(std::int64_t until, double rate, int window, std::size_t payload, std::uint64_t& sent,
                     Progress& progress, const std::function<std::string()>& status) {
    std::vector<char> data(std::max<std::size_t>(payload, 8), 'x');
    std::int64_t start = now_ns();
    while (now_ns() < until) {
      bool progressed = false;
      for (auto& pub : pubs) {
        while (pub->in_flight.load() < window &&
               (rate <= 0 || static_cast<double>(sent) < rate * static_cast<double>(now_ns() - start) / 1e9 + 1)) {
          std::int64_t t0 = now_ns();
          std::memcpy(data.data(), &t0, sizeof t0);
          pub->in_flight.fetch_add(1);
          if (js_PublishAsync(pub->js, pub->subject.c_str(), data.data(), static_cast<int>(data.size()), nullptr) !=
              NATS_OK) {
            pub->in_flight.fetch_sub(1);
            pub->errors.fetch_add(1);
            break;
          }
          ++sent;
          progressed = true;
        }
      }
      if (!progressed) {
        std::unique_lock lock(shared.mutex);
        shared.acked.wait_for(lock, std::chrono::microseconds(500));
      }
      progress.maybe_print(status());
    }
  }
  void complete() {
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MaxWait = 30000;
    for (auto& pub : pubs) js_PublishAsyncComplete(pub->js, &options);
  }
  std::uint64_t acked() const {
    std::uint64_t total = 0;
    for (const auto& pub : pubs) total += pub->acked.load();
    return total;
  }
  std::uint64_t errors() const {
    std::uint64_t total = 0;
    for (const auto& pub : pubs) total += pub->errors.load();
    return total;
  }

  std::string url;
  Shared shared;
  std::vector<std::unique_ptr<Publisher>> pubs;
};

std::string stream_name(const BenchOptions& options) {
  std::string name = "BENCH_" + options.scenario + "_" + options.run_id;
  for (char& c : name)
    if (c == '.' || c == '*' || c == '>' || c == ' ') c = '_';
  return name;
}

bool ingest(const BenchOptions& options, Summary& summary) {
  NatsSession session;
  if (!session.connect(options, static_cast<std::size_t>(options.conns), options.window)) return false;
  std::string prefix = "bench." + stream_name(options);
  if (!session.add_stream(stream_name(options), prefix + ".>")) return false;
  for (std::size_t i = 0; i < session.pubs.size(); ++i) session.pubs[i]->subject = prefix + "." + std::to_string(i);
  std::int64_t start = now_ns();
  session.shared.measure_from = start + static_cast<std::int64_t>(options.warmup_s * 1e9);
  session.shared.measure_until = session.shared.measure_from + static_cast<std::int64_t>(options.duration_s * 1e9);
  Progress progress("ingest nats");
  std::uint64_t sent = 0;
  session.publish_until(session.shared.measure_from, options.rate, options.window, options.payload, sent, progress,
                        [&] { return "acked " + std::to_string(session.acked()); });
  double server_cpu_start = process_cpu_seconds(options.edge_pid), own_cpu_start = own_cpu_seconds();
  session.publish_until(session.shared.measure_until, options.rate, options.window, options.payload, sent, progress,
                        [&] { return "acked " + std::to_string(session.acked()); });
  double server_cpu = process_cpu_seconds(options.edge_pid) - server_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  session.complete();
  std::uint64_t in_window = 0;
  LatencyRecorder latency;
  for (auto& pub : session.pubs) {
    in_window += pub->acked_in_window.load();
    latency.merge(pub->latency);
  }
  std::uint64_t acked = session.acked(), errors = session.errors();
  set_ingest_summary(summary, options,
                     IngestCounts{sent, acked, errors, in_window, server_cpu, own_cpu}, latency,
                     "publishes");
  if (errors) summary.problems.push_back(std::to_string(errors) + " publish errors");
  return true;
}

struct Subscriber {
  Shared* shared = nullptr;
  natsSubscription* sub = nullptr;
  std::uint64_t last_seq = 0;
  std::atomic<std::uint64_t> received{0};
  std::uint64_t in_window = 0, gaps = 0, repeats = 0;
  LatencyRecorder latency;  // this subscription's delivery thread only
};

void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* sub = static_cast<Subscriber*>(closure);
  std::int64_t now = now_ns();
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    std::uint64_t seq = meta->Sequence.Stream;
    if (seq <= sub->last_seq) ++sub->repeats;
    else {
      if (seq > sub->last_seq + 1) ++sub->gaps;
      sub->last_seq = seq;
    }
    jsMsgMetaData_Destroy(meta);
  }
  if (now >= sub->shared->measure_from && now < sub->shared->measure_until) {
    ++sub->in_window;
    sub->latency.record(now - stamp_of(msg));
  }
  sub->received.fetch_add(1);
  natsMsg_Destroy(msg);
}

bool fanout(const BenchOptions& options, Summary& summary) {
  NatsSession publishers;
  if (!publishers.connect(options, static_cast<std::size_t>(options.publishers), 256)) return false;
  std::string subject = "bench." + stream_name(options) + ".fanout";
  if (!publishers.add_stream(stream_name(options), subject)) return false;
  for (auto& pub : publishers.pubs) pub->subject = subject;
  // Consumers share a few connections (one each would mean a thousand connections' threads).
  NatsSession consumers;
  if (!consumers.connect(options, static_cast<std::size_t>(std::max(1, options.nats_sub_conns)), 1)) return false;
  std::vector<std::unique_ptr<Subscriber>> subs;
  Progress progress("fanout nats");
  for (int i = 0; i < options.subs; ++i) {
    auto sub = std::make_unique<Subscriber>();
    sub->shared = &publishers.shared;
    jsSubOptions sub_options;
    jsSubOptions_Init(&sub_options);
    sub_options.Ordered = true;
    jsErrCode code{};
    jsCtx* js = consumers.pubs[static_cast<std::size_t>(i) % consumers.pubs.size()]->js;
    natsStatus status = js_Subscribe(&sub->sub, js, subject.c_str(), on_msg, sub.get(), nullptr, &sub_options, &code);
    if (status != NATS_OK) {
      std::fprintf(stderr, "nats: subscribe %d: %s\n", i, natsStatus_GetText(status));
      return false;
    }
    natsSubscription_SetPendingLimits(sub->sub, -1, -1);
    subs.push_back(std::move(sub));
    progress.maybe_print("consumers " + std::to_string(subs.size()));
  }
  std::int64_t start = now_ns();
  publishers.shared.measure_from = start + static_cast<std::int64_t>(options.warmup_s * 1e9);
  publishers.shared.measure_until = publishers.shared.measure_from + static_cast<std::int64_t>(options.duration_s * 1e9);
  auto delivered = [&] {
    std::uint64_t total = 0;
    for (auto& sub : subs) total += sub->received.load();
    return total;
  };
  std::uint64_t sent = 0;
  auto status = [&] { return "published " + std::to_string(publishers.acked()) + ", delivered " + std::to_string(delivered()); };
  publishers.publish_until(publishers.shared.measure_from, options.fanout_rate, 256, options.payload, sent, progress, status);
  double server_cpu_start = process_cpu_seconds(options.edge_pid), own_cpu_start = own_cpu_seconds();
  publishers.publish_until(publishers.shared.measure_until, options.fanout_rate, 256, options.payload, sent, progress, status);
  double server_cpu = process_cpu_seconds(options.edge_pid) - server_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  publishers.complete();
  std::uint64_t acked = publishers.acked();
  auto caught_up = [&] {
    std::size_t count = 0;
    for (auto& sub : subs) count += sub->received.load() >= acked;
    return count;
  };
  std::int64_t deadline = now_ns() + 60'000'000'000;
  while (caught_up() < subs.size() && now_ns() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    progress.maybe_print("draining: caught up " + std::to_string(caught_up()) + "/" + std::to_string(subs.size()));
  }
  std::size_t done = caught_up();
  for (auto& sub : subs) {
    natsSubscription_Unsubscribe(sub->sub);
    natsSubscription_Destroy(sub->sub);
  }
  std::uint64_t in_window = 0, gaps = 0, repeats = 0;
  LatencyRecorder latency;
  for (auto& sub : subs) {
    in_window += sub->in_window;
    gaps += sub->gaps;
    repeats += sub->repeats;
    latency.merge(sub->latency);
  }
  summary.set("subs", options.subs);
  summary.set("publishers", options.publishers);
  summary.set("rate_target", options.fanout_rate);
  summary.set("payload", static_cast<std::uint64_t>(options.payload));
  summary.set("seconds", options.duration_s);
  summary.set("published", acked);
  summary.set("deliveries_per_s", static_cast<double>(in_window) / options.duration_s);
  summary.set_latency("deliver", latency);
  summary.set("server_cpu_pct", 100 * server_cpu / options.duration_s);
  summary.set("bench_cpu_pct", 100 * own_cpu / options.duration_s);
  summary.set("consumer_conns", options.nats_sub_conns);
  summary.set("gaps", gaps);
  summary.set("repeats", repeats);
  if (gaps) summary.problems.push_back(std::to_string(gaps) + " gaps");
  if (repeats) summary.problems.push_back(std::to_string(repeats) + " repeats");
  if (publishers.errors()) summary.problems.push_back(std::to_string(publishers.errors()) + " publish errors");
  if (done < subs.size())
    summary.problems.push_back("only " + std::to_string(done) + " of " + std::to_string(subs.size()) +
                               " consumers got every message");
  return true;
}

}  // namespace

bool run_nats_scenario(const BenchOptions& options, Summary& summary) {
  if (options.scenario == "ingest") return ingest(options, summary);
  if (options.scenario == "fanout") return fanout(options, summary);
  std::fprintf(stderr, "waymark-bench: the nats target runs ingest and fanout only\n");
  return false;
}

}  // namespace waymark::bench
