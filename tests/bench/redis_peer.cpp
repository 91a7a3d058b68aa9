// The Redis 7 Streams peer: the same ingest and fanout loads through hiredis's protocol
// reader over our own non-blocking sockets and one epoll loop (so thousands of connections
// share one thread, as the lws harness does). Durability is the server's: the runner starts
// redis-server with appendonly yes + appendfsync always, so an XADD reply is a durable ack.
// Fanout subscribers loop on XREAD BLOCK 0 from their last id.
#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "bench_options.h"
#include "bench_report.h"

namespace waymark::bench {
namespace {

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
}

struct RedisConn {
  std::size_t index = 0;
  int fd = -1;
  redisReader* reader = nullptr;
  std::string out;
  std::size_t out_sent = 0;
  bool want_write = false;
  bool broken = false;
  std::deque<std::int64_t> sent_at;  // replies come back in order
};

std::string command(std::initializer_list<std::string> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* target = nullptr;
  int length = redisFormatCommandArgv(&target, static_cast<int>(argv.size()), argv.data(), lengths.data());
  std::string text(target, static_cast<std::size_t>(length));
  redisFreeCommand(target);
  return text;
}

class RedisLoop {
 public:
  using ReplyHandler = std::function<void(RedisConn&, redisReply*)>;
  explicit RedisLoop(ReplyHandler handler) : handler_(std::move(handler)), epoll_(epoll_create1(0)) {}
  ~RedisLoop() {
    for (auto& conn : conns_) {
      if (conn.fd >= 0) ::close(conn.fd);
      if (conn.reader) redisReaderFree(conn.reader);
    }
    ::close(epoll_);
  }

  bool open(const std::string& host, int port, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      conns_.emplace_back();
      RedisConn& conn = conns_.back();
      conn.index = conns_.size() - 1;
      conn.fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<std::uint16_t>(port));
      inet_pton(AF_INET, host.c_str(), &address.sin_addr);
      if (conn.fd < 0 || ::connect(conn.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        std::perror("redis connect");
        return false;
      }
      int one = 1;
      setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fcntl_nonblock(conn.fd);
      conn.reader = redisReaderCreate();
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = conn.index;
      epoll_ctl(epoll_, EPOLL_CTL_ADD, conn.fd, &event);
    }
    return true;
  }

  RedisConn& conn(std::size_t index) { return conns_[index]; }
  std::size_t size() const { return conns_.size(); }

  void send(RedisConn& conn, const std::string& text) {
    conn.out.append(text);
    conn.sent_at.push_back(now_ns());
    flush(conn);
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                 const std::function<void()>& tick = {}) {
    auto deadline = Clock::now() + timeout;
    epoll_event events[256];
    std::vector<char> buffer(1 << 16);
    for (;;) {
      if (tick) tick();
      if (done()) return true;
      if (Clock::now() >= deadline) return false;
      int n = epoll_wait(epoll_, events, 256, 1);
      for (int i = 0; i < n; ++i) {
        RedisConn& conn = conns_[events[i].data.u64];
        if (events[i].events & EPOLLOUT) flush(conn);
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read(conn, buffer);
      }
    }
  }

  std::uint64_t broken() const {
    std::uint64_t count = 0;
    for (const auto& conn : conns_) count += conn.broken;
    return count;
  }

 private:
  static void fcntl_nonblock(int fd) {
    int flags = ::fcntl(fd, F_GETFL, 0);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  }

  void flush(RedisConn& conn) {
    while (conn.out_sent < conn.out.size()) {
      ssize_t n = ::send(conn.fd, conn.out.data() + conn.out_sent, conn.out.size() - conn.out_sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        conn.broken = true;
        return;
      }
      conn.out_sent += static_cast<std::size_t>(n);
    }
    if (conn.out_sent == conn.out.size()) {
      conn.out.clear();
      conn.out_sent = 0;
    }
    bool want = !conn.out.empty();
    if (want != conn.want_write) {
      conn.want_write = want;
      epoll_event event{};
      event.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      event.data.u64 = conn.index;
      epoll_ctl(epoll_, EPOLL_CTL_MOD, conn.fd, &event);
    }
  }

  void read(RedisConn& conn, std::vector<char>& buffer) {
    for (;;) {
      ssize_t n = ::recv(conn.fd, buffer.data(), buffer.size(), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        conn.broken = true;
        epoll_ctl(epoll_, EPOLL_CTL_DEL, conn.fd, nullptr);
        return;
      }
      if (n < 0) return;
      redisReaderFeed(conn.reader, buffer.data(), static_cast<std::size_t>(n));
      void* reply = nullptr;
      while (redisReaderGetReply(conn.reader, &reply) == REDIS_OK && reply) {
        handler_(conn, static_cast<redisReply*>(reply));
        freeReplyObject(reply);
        reply = nullptr;
      }
      if (static_cast<std::size_t>(n) < buffer.size()) return;
    }
  }

  ReplyHandler handler_;
  int epoll_;
  std::deque<RedisConn> conns_;
};

std::string padding(std::size_t payload) { return std::string(payload > 24 ? payload - 24 : 1, 'x'); }

bool ingest(const BenchOptions& options, Summary& summary) {
  std::uint64_t sent = 0, acked = 0, errors = 0, acked_in_window = 0;
  std::int64_t start = now_ns();
  std::int64_t measure_from = start + static_cast<std::int64_t>(options.warmup_s * 1e9);
  std::int64_t measure_until = measure_from + static_cast<std::int64_t>(options.duration_s * 1e9);
  bool sending = true;
  LatencyRecorder latency;
  std::vector<int> in_flight(static_cast<std::size_t>(options.conns), 0);
  std::string pad = padding(options.payload);
  RedisLoop* loop_ptr = nullptr;
  auto allowed = [&] {
    return options.rate <= 0 || static_cast<double>(sent) < options.rate * static_cast<double>(now_ns() - start) / 1e9 + 1;
  };
  auto fill = [&](RedisConn& conn) {
    while (sending && in_flight[conn.index] < options.window && allowed()) {
      loop_ptr->send(conn, command({"XADD", "ingest-" + options.run_id + "-" + std::to_string(conn.index), "*",
                                    "t0", std::to_string(now_ns()), "p", pad}));
      ++in_flight[conn.index];
      ++sent;
    }
  };
  RedisLoop loop([&](RedisConn& conn, redisReply* reply) {
    std::int64_t now = now_ns();
    std::int64_t t = conn.sent_at.empty() ? now : conn.sent_at.front();
    if (!conn.sent_at.empty()) conn.sent_at.pop_front();
    --in_flight[conn.index];
    if (reply->type == REDIS_REPLY_ERROR) {
      ++errors;
      if (errors < 5) std::fprintf(stderr, "redis: %s\n", reply->str);
    } else {
      ++acked;
      if (now >= measure_from && now < measure_until) {
        ++acked_in_window;
        latency.record(now - t);
      }
    }
    fill(conn);
  });
  loop_ptr = &loop;
  if (!loop.open(options.host, options.port, static_cast<std::size_t>(options.conns))) return false;
  Progress progress("ingest redis");
  double server_cpu_start = 0, own_cpu_start = 0;
  bool sampled = false;
  for (std::size_t i = 0; i < loop.size(); ++i) fill(loop.conn(i));
  std::size_t rr = 0;
  loop.run_until([&] { return now_ns() >= measure_until; }, ms(options.timeout_s), [&] {
    if (!sampled && now_ns() >= measure_from) {
      sampled = true;
      server_cpu_start = process_cpu_seconds(options.edge_pid);
      own_cpu_start = own_cpu_seconds();
    }
    if (options.rate > 0) fill(loop.conn(rr++ % loop.size()));
    progress.maybe_print("acked " + std::to_string(acked));
  });
  double server_cpu = process_cpu_seconds(options.edge_pid) - server_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  sending = false;
  loop.run_until([&] { return acked + errors >= sent; }, ms(30));
  set_ingest_summary(summary, options,
                     IngestCounts{sent, acked, errors, acked_in_window, server_cpu, own_cpu},
                     latency, "XADDs");
  if (errors) summary.problems.push_back(std::to_string(errors) + " XADD errors");
  if (loop.broken()) summary.problems.push_back(std::to_string(loop.broken()) + " connections broke");
  return true;
}

// Stream ids "ms-seq" compare as pairs of numbers.
bool id_after(const std::string& a, const std::string& b) {
  auto split = [](const std::string& id) {
    auto dash = id.find('-');
    return std::pair<std::uint64_t, std::uint64_t>{std::stoull(id.substr(0, dash)),
                                                   dash == std::string::npos ? 0 : std::stoull(id.substr(dash + 1))};
  };
  return split(a) > split(b);
}

bool fanout(const BenchOptions& options, Summary& summary) {
  auto subs = static_cast<std::size_t>(options.subs);
  auto pubs = static_cast<std::size_t>(options.publishers);
  std::string key = "fanout-" + options.run_id;
  struct SubState {
    std::string last_id = "0-0";
    std::uint64_t received = 0, repeats = 0;
  };
  std::vector<SubState> sub_state(subs);
  std::vector<int> pub_in_flight(pubs, 0);
  std::uint64_t sent = 0, acked = 0, errors = 0, delivered_in_window = 0, delivered = 0;
  std::int64_t publish_start = 0, measure_from = 0, measure_until = 0;
  bool publishing = false;
  LatencyRecorder latency;
  std::string pad = padding(options.payload);
  RedisLoop* loop_ptr = nullptr;
  auto xread = [&](RedisConn& conn) {
    loop_ptr->send(conn, command({"XREAD", "COUNT", "1000", "BLOCK", "0", "STREAMS", key,
                                  sub_state[conn.index].last_id}));
  };
  RedisLoop loop([&](RedisConn& conn, redisReply* reply) {
    if (!conn.sent_at.empty()) conn.sent_at.pop_front();
    if (conn.index >= subs) {  // a publisher's XADD reply
      --pub_in_flight[conn.index - subs];
      if (reply->type == REDIS_REPLY_ERROR) ++errors;
      else ++acked;
      return;
    }
    SubState& state = sub_state[conn.index];
    std::int64_t now = now_ns();
    // [[key, [[id, [field, value, ...]], ...]]]
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
      redisReply* entries = reply->element[0]->element[1];
      for (std::size_t e = 0; e < entries->elements; ++e) {
        redisReply* entry = entries->element[e];
        std::string id(entry->element[0]->str, entry->element[0]->len);
        if (!id_after(id, state.last_id)) {
          ++state.repeats;
          continue;
        }
        state.last_id = id;
        ++state.received;
        ++delivered;
        redisReply* fields = entry->element[1];
        if (now >= measure_from && now < measure_until) {
          ++delivered_in_window;
          for (std::size_t f = 0; f + 1 < fields->elements; f += 2)
            if (std::strcmp(fields->element[f]->str, "t0") == 0)
              latency.record(now - std::stoll(fields->element[f + 1]->str));
        }
      }
    } else if (reply->type == REDIS_REPLY_ERROR) {
      ++errors;
    }
    xread(conn);
  });
  loop_ptr = &loop;
  if (!loop.open(options.host, options.port, subs + pubs)) return false;
  for (std::size_t i = 0; i < subs; ++i) xread(loop.conn(i));
  Progress progress("fanout redis");
  // Let every XREAD reach the server and block before publishing.
  std::int64_t settle = now_ns() + 500'000'000;
  loop.run_until([&] { return now_ns() >= settle; }, ms(2));
  publishing = true;
  publish_start = now_ns();
  measure_from = publish_start + static_cast<std::int64_t>(options.warmup_s * 1e9);
  measure_until = measure_from + static_cast<std::int64_t>(options.duration_s * 1e9);
  double server_cpu_start = 0, own_cpu_start = 0;
  bool sampled = false;
  auto publish = [&] {
    double allowed = options.fanout_rate * static_cast<double>(now_ns() - publish_start) / 1e9 + 1;
    for (std::size_t p = 0; p < pubs && publishing; ++p)
      while (pub_in_flight[p] < 256 && static_cast<double>(sent) < allowed) {
        loop.send(loop.conn(subs + p), command({"XADD", key, "*", "t0", std::to_string(now_ns()), "p", pad}));
        ++pub_in_flight[p];
        ++sent;
      }
  };
  loop.run_until([&] { return now_ns() >= measure_until; }, ms(options.timeout_s), [&] {
    if (!sampled && now_ns() >= measure_from) {
      sampled = true;
      server_cpu_start = process_cpu_seconds(options.edge_pid);
      own_cpu_start = own_cpu_seconds();
    }
    publish();
    progress.maybe_print("published " + std::to_string(acked) + ", delivered " + std::to_string(delivered));
  });
  double server_cpu = process_cpu_seconds(options.edge_pid) - server_cpu_start;
  double own_cpu = own_cpu_seconds() - own_cpu_start;
  publishing = false;
  auto caught_up = [&] {
    std::size_t count = 0;
    for (const auto& state : sub_state) count += state.received >= acked;
    return count;
  };
  bool drained = loop.run_until([&] { return acked + errors >= sent && caught_up() == subs; }, ms(60), [&] {
    progress.maybe_print("draining: caught up " + std::to_string(caught_up()) + "/" + std::to_string(subs));
  });
  std::uint64_t repeats = 0;
  for (const auto& state : sub_state) repeats += state.repeats;
  summary.set("subs", options.subs);
  summary.set("publishers", options.publishers);
  summary.set("rate_target", options.fanout_rate);
  summary.set("payload", static_cast<std::uint64_t>(options.payload));
  summary.set("seconds", options.duration_s);
  summary.set("published", acked);
  summary.set("deliveries_per_s", static_cast<double>(delivered_in_window) / options.duration_s);
  summary.set_latency("deliver", latency);
  summary.set("server_cpu_pct", 100 * server_cpu / options.duration_s);
  summary.set("bench_cpu_pct", 100 * own_cpu / options.duration_s);
  summary.set("repeats", repeats);
  if (repeats) summary.problems.push_back(std::to_string(repeats) + " repeats");
  if (errors) summary.problems.push_back(std::to_string(errors) + " errors");
  if (!drained)
    summary.problems.push_back("only " + std::to_string(caught_up()) + " of " + std::to_string(subs) +
                               " subscribers got every entry");
  return true;
}

}  // namespace

bool run_redis_scenario(const BenchOptions& options, Summary& summary) {
  if (options.scenario == "ingest") return ingest(options, summary);
  if (options.scenario == "fanout") return fanout(options, summary);
  std::fprintf(stderr, "waymark-bench: the redis target runs ingest and fanout only\n");
  return false;
}

}  // namespace waymark::bench
