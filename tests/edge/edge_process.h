// EdgeProcess: starts the real waymark-edge binary for a test (port 0, a data dir of the
// test's), reads the port from its "listening" log line, and stops or kills it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace waymark::testing {

class EdgeProcess {
 public:
  // REQUIRES: binary is the path of waymark-edge. Extra flags go after --dev --data.
  EdgeProcess(std::string binary, std::string data_dir, std::vector<std::string> extra = {});
  ~EdgeProcess();  // SIGKILLs a process still running

  // Starts it and waits for the listening line; port 0 picks a free one. False on failure.
  bool start(int port = 0);
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // Sends sig and waits up to timeout for the exit; returns the exit status (or -1).
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(6));
  const std::string& log() const { return log_; }

 private:
  std::string binary_, data_dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  int port_ = 0;
  std::string log_;
};

// A fresh directory under /tmp, removed with its contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace waymark::testing
