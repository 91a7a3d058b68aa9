// The relay scenario's fault proxy (fault_proxy.h): one poll loop over the listener, a wake
// pipe and every proxied pair; non-blocking sockets, a bounded buffer per direction.
#include "fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <list>
#include <vector>

#include "latency_recorder.h"

namespace waymark::bench {
namespace {

constexpr std::size_t kBufferCap = 256 * 1024;  // per direction: past it the reader waits

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

// Closes with an RST (SO_LINGER 0): the peer sees the connection reset, as when a link dies.
void reset_close(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

int connect_to(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

struct Pair {
  int client = -1;
  int target = -1;
  std::string up;    // read from client, not yet written to target
  std::string down;  // read from target, not yet written to client
  bool dead = false;
};

// Reads what fits from `from` into `buffer`; false when the socket is done (EOF or error).
bool read_into(int from, std::string& buffer, std::uint64_t& bytes) {
  char chunk[65536];
  while (buffer.size() < kBufferCap) {
    ssize_t n = recv(from, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer.append(chunk, static_cast<std::size_t>(n));
      bytes += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
  return true;
}

bool write_from(int to, std::string& buffer) {
  while (!buffer.empty()) {
    ssize_t n = send(to, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buffer.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
  }
  return true;
}

}  // namespace

FaultProxy::FaultProxy(int listen_port, std::string target_host, int target_port)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(listen_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 || pipe(wake_) != 0) {
    close(fd);
    return;
  }
  set_nonblocking(fd);
  set_nonblocking(wake_[0]);
  listener_ = fd;
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  if (wake_[1] >= 0) {
    char c = 's';
    (void)!write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  if (listener_ >= 0) close(listener_);
  for (int fd : wake_)
    if (fd >= 0) close(fd);
}

void FaultProxy::set_mode(Mode mode) {
  Mode before = mode_.exchange(mode);
  if (mode == Mode::forward && before != Mode::forward) {
    first_accept_ns_ = 0;
    first_reply_ns_ = 0;
    healed_ = true;
  }
  char c = 'm';
  (void)!write(wake_[1], &c, 1);
  // Returns once the proxy's thread has taken the new mode: a cut that is still pending would
  // let bytes the relay writes next through (seen under load: partition sends sequenced before
  // the heal). Bounded, in case the thread has stopped.
  for (int waited = 0; applied_mode_.load() != mode && waited < 5000; ++waited)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void FaultProxy::run() {
  std::list<Pair> pairs;
  std::vector<pollfd> fds;
  std::vector<Pair*> owner;  // fds[i] belongs to owner[i] (nullptr: listener or wake pipe)
  Mode applied = Mode::forward;
  while (!stopping_) {
    Mode mode = mode_.load();
    if (mode == Mode::cut && applied != Mode::cut) {
      for (Pair& pair : pairs) {
        reset_close(pair.client);
        reset_close(pair.target);
        reset_.fetch_add(1);
      }
      pairs.clear();
    }
    applied = mode;
    applied_mode_.store(mode);
    fds.clear();
    owner.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    owner.push_back(nullptr);
    fds.push_back({listener_, POLLIN, 0});
    owner.push_back(nullptr);
    if (mode == Mode::forward) {
      for (Pair& pair : pairs) {
        short client_events = static_cast<short>((pair.up.size() < kBufferCap ? POLLIN : 0) |
                                                 (pair.down.empty() ? 0 : POLLOUT));
        short target_events = static_cast<short>((pair.down.size() < kBufferCap ? POLLIN : 0) |
                                                 (pair.up.empty() ? 0 : POLLOUT));
        fds.push_back({pair.client, client_events, 0});
        owner.push_back(&pair);
        fds.push_back({pair.target, target_events, 0});
        owner.push_back(&pair);
      }
    }
    if (poll(fds.data(), fds.size(), 50) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_[0], drain, sizeof drain) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0) break;
        accepted_.fetch_add(1);
        std::int64_t now = now_ns();
        if (healed_ && first_accept_ns_ == 0) first_accept_ns_ = now;
        if (mode_.load() == Mode::cut) {
          reset_close(fd);
          reset_.fetch_add(1);
          continue;
        }
        // Under stall the target is still connected at once: only bytes are held back.
        int target = connect_to(target_host_, target_port_);
        if (target < 0) {
          reset_close(fd);
          continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_nonblocking(fd);
        set_nonblocking(target);
        pairs.push_back(Pair{fd, target, {}, {}, false});
      }
    }
    if (mode != Mode::forward) continue;
    for (std::size_t i = 2; i < fds.size(); ++i) {
      Pair& pair = *owner[i];
      short ev = fds[i].revents;
      if (!ev || pair.dead) continue;
      bool is_client = fds[i].fd == pair.client;
      std::uint64_t bytes = 0;
      bool alive = true;
      if (ev & (POLLIN | POLLHUP | POLLERR)) {
        alive = read_into(fds[i].fd, is_client ? pair.up : pair.down, bytes);
        if (is_client) {
          bytes_up_.fetch_add(bytes);
        } else if (bytes) {
          bytes_down_.fetch_add(bytes);
          if (healed_ && first_reply_ns_ == 0) first_reply_ns_ = now_ns();
        }
      }
      if (alive && (ev & POLLOUT)) alive = write_from(fds[i].fd, is_client ? pair.down : pair.up);
      // Whatever the other side still has to say is flushed once, then both close.
      if (!alive) {
        write_from(is_client ? pair.target : pair.client, is_client ? pair.up : pair.down);
        pair.dead = true;
      }
    }
    // Data just read goes out at once rather than on the next round.
    for (Pair& pair : pairs) {
      if (pair.dead) continue;
      if (!write_from(pair.target, pair.up) || !write_from(pair.client, pair.down)) pair.dead = true;
    }
    for (auto it = pairs.begin(); it != pairs.end();) {
      if (it->dead) {
        close(it->client);
        close(it->target);
        it = pairs.erase(it);
      } else {
        ++it;
      }
    }
    if (healed_ && first_accept_ns_ && first_reply_ns_) healed_ = false;
  }
  for (Pair& pair : pairs) {
    close(pair.client);
    close(pair.target);
  }
}

// ---- HTTP GET ----------------------------------------------------------------------------------

std::optional<std::string> http_get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string response;
  char chunk[16384];
  for (;;) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) break;
    response.append(chunk, static_cast<std::size_t>(n));
    // lws answers with Content-Length: stop once the body is complete.
    std::size_t end = response.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    std::size_t at = response.find("Content-Length:");
    if (at == std::string::npos) at = response.find("content-length:");
    if (at != std::string::npos && at < end) {
      std::size_t length = std::strtoul(response.c_str() + at + 15, nullptr, 10);
      if (response.size() >= end + 4 + length) break;
    }
  }
  close(fd);
  std::size_t end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || end == std::string::npos) return std::nullopt;
  return response.substr(end + 4);
}

std::optional<double> metric_value(const std::string& text, const std::string& name) {
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t eol = text.find('\n', at);
    if (eol == std::string::npos) eol = text.size();
    if (text.compare(at, name.size(), name) == 0 && at + name.size() < eol) {
      char next = text[at + name.size()];
      std::size_t value_at = std::string::npos;
      if (next == ' ') {
        value_at = at + name.size() + 1;
      } else if (next == '{') {
        std::size_t close = text.find('}', at);
        if (close != std::string::npos && close < eol) value_at = close + 2;
      }
      if (value_at != std::string::npos && value_at < eol) return std::strtod(text.c_str() + value_at, nullptr);
    }
    at = eol + 1;
  }
  return std::nullopt;
}

}  // namespace waymark::bench
