// FaultProxy: a TCP proxy the relay scenario puts between a relay and its root (the relay's
// --upstream points at it), on a thread of its own, so the harness can cut the link and heal
// it. Loopback only. set_mode and the counters: any thread.
//   forward: bytes pass both ways.
//   cut:     every proxied connection is reset on both sides and new ones are accepted and
//            reset at once (the link is down and the relay sees it: closed, refused).
//   stall:   nothing is read or written and new connections are accepted and held (packets
//            silently dropped: a half-open link the relay only notices by its heartbeat);
//            forward again delivers what the kernels buffered.
// Also tcp helpers for the scenario: a blocking HTTP GET of /metrics or /healthz.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

namespace waymark::bench {

class FaultProxy {
 public:
  enum class Mode { forward, cut, stall };

  // Forwards connections accepted on 127.0.0.1:listen_port (0: any free port) to
  // target_host:target_port. ok() is false when the port could not be bound.
  FaultProxy(int listen_port, std::string target_host, int target_port);
  ~FaultProxy();  // stops the thread, closes every socket
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  bool ok() const { return listener_ >= 0; }
  int port() const { return port_; }
  // Returns once the proxy's thread acts on the new mode.
  void set_mode(Mode mode);
  Mode mode() const { return mode_.load(); }

  // Since the last set_mode(forward) after a cut or stall (0: not yet): the first connection
  // accepted and the first byte the target sent back (the upstream answering again).
  std::int64_t first_accept_after_heal_ns() const { return first_accept_ns_.load(); }
  std::int64_t first_reply_after_heal_ns() const { return first_reply_ns_.load(); }
  std::uint64_t accepted() const { return accepted_.load(); }
  std::uint64_t reset() const { return reset_.load(); }  // connections reset by a cut
  std::uint64_t bytes_up() const { return bytes_up_.load(); }    // client -> target
  std::uint64_t bytes_down() const { return bytes_down_.load(); }  // target -> client

 private:
  void run();

  std::string target_host_;
  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<Mode> mode_{Mode::forward};
  std::atomic<Mode> applied_mode_{Mode::forward};  // what the thread acts on now
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> first_accept_ns_{0}, first_reply_ns_{0};
  std::atomic<bool> healed_{false};  // set by a heal, cleared once both stamps are taken
  std::atomic<std::uint64_t> accepted_{0}, reset_{0}, bytes_up_{0}, bytes_down_{0};
  std::thread thread_;
};

// GET http://127.0.0.1:port/path; the body, or nothing on any failure (bounded: 2 s).
std::optional<std::string> http_get(int port, const std::string& path);
// The value of a Prometheus sample `name` (with or without labels: the first line whose name
// matches exactly), or nothing.
std::optional<double> metric_value(const std::string& text, const std::string& name);

}  // namespace waymark::bench
