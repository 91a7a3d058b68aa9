// GroupCommitWriter: the one thread that owns write transactions. The lws thread submits
// WriteRequests; the writer commits everything waiting as one batch (group commit, one fsync)
// with the core's commit_batch, then hands the outcome back and wakes the lws thread.
// submit/take_completions: the lws thread. The worker: its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "waymark/log_store.h"
#include "waymark/write_batch.h"

namespace waymark::edge {

struct CommitCompletion {
  std::vector<WriteRequest> requests;
  Result<std::vector<WriteOutcome>> result = std::vector<WriteOutcome>{};
  std::chrono::steady_clock::duration commit_time{};
};

class GroupCommitWriter {
 public:
  // wake is called from the writer thread after each completion (lws_cancel_service).
  // REQUIRES: store outlives the writer.
  GroupCommitWriter(LogStore& store, std::function<void()> wake, std::size_t max_batch = 4096);
  ~GroupCommitWriter();  // stops after committing what was submitted

  void submit(WriteRequest request);
  std::vector<CommitCompletion> take_completions();
  // Requests submitted and not yet handed back by take_completions.
  std::size_t in_flight() const;
  void stop();

 private:
  void run();

  LogStore& store_;
  std::function<void()> wake_;
  std::size_t max_batch_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::vector<WriteRequest> waiting_;
  std::vector<CommitCompletion> completed_;
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace waymark::edge
