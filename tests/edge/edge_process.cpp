// Process plumbing for integration tests: posix_spawn with stderr on a pipe.
#include "edge/edge_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

extern char** environ;

namespace waymark::testing {

EdgeProcess::EdgeProcess(std::string binary, std::string data_dir, std::vector<std::string> extra)
    : binary_(std::move(binary)), data_dir_(std::move(data_dir)), extra_(std::move(extra)) {}

EdgeProcess::~EdgeProcess() {
  if (pid_ > 0) stop(SIGKILL);
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
}

bool EdgeProcess::start(int port) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return false;
  std::vector<std::string> args = {binary_, "--dev", "--data", data_dir_, "--listen",
                                   "127.0.0.1:" + std::to_string(port), "--log-level", "info"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  int spawned = posix_spawn(&pid_, binary_.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawned != 0) {
    ::close(pipe_fds[0]);
    pid_ = -1;
    return false;
  }
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
  stderr_fd_ = pipe_fds[0];
  // Read log lines until the listening line (10 s at most).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string pending;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd fd{stderr_fd_, POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::read(stderr_fd_, buffer, sizeof buffer);
    if (n <= 0) return false;  // exited before listening
    pending.append(buffer, static_cast<std::size_t>(n));
    log_.append(buffer, static_cast<std::size_t>(n));
    auto at = pending.find("\"event\":\"listening\"");
    if (at == std::string::npos) continue;
    auto port_at = pending.find("\"port\":", at);
    if (port_at == std::string::npos) continue;
    port_ = std::atoi(pending.c_str() + port_at + 7);
    // Keep draining stderr in the background so the edge never blocks on a full pipe.
    int fd_copy = ::dup(stderr_fd_);
    std::thread([fd_copy] {
      char sink[4096];
      while (::read(fd_copy, sink, sizeof sink) > 0) {
      }
      ::close(fd_copy);
    }).detach();
    return port_ > 0;
  }
  return false;
}

int EdgeProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

TempDir::TempDir() {
  char pattern[] = "/tmp/waymark-test-XXXXXX";
  path_ = ::mkdtemp(pattern) ? pattern : "";
}

TempDir::~TempDir() {
  std::error_code ignored;
  if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
}

}  // namespace waymark::testing
