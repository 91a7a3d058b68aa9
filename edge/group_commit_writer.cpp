// The group-commit loop: take everything waiting, commit it in one durable transaction.
#include "group_commit_writer.h"

namespace waymark::edge {

GroupCommitWriter::GroupCommitWriter(LogStore& store, std::function<void()> wake,
                                     std::size_t max_batch)
    : store_(store), wake_(std::move(wake)), max_batch_(max_batch), thread_([this] { run(); }) {}

GroupCommitWriter::~GroupCommitWriter() { stop(); }

void GroupCommitWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  work_ready_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void GroupCommitWriter::submit(WriteRequest request) {
  {
    std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(request));
    ++in_flight_;
  }
  work_ready_.notify_one();
}

std::vector<CommitCompletion> GroupCommitWriter::take_completions() {
  std::vector<CommitCompletion> out;
  std::lock_guard lock(mutex_);
  out.swap(completed_);
  for (const auto& completion : out) in_flight_ -= completion.requests.size();
  return out;
}

std::size_t GroupCommitWriter::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

void GroupCommitWriter::run() {
  for (;;) {
    std::vector<WriteRequest> batch;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
      if (waiting_.empty()) return;  // stopping, and everything submitted is committed
      if (waiting_.size() <= max_batch_) {
        batch.swap(waiting_);
      } else {
        batch.assign(std::make_move_iterator(waiting_.begin()),
                     std::make_move_iterator(waiting_.begin() + static_cast<std::ptrdiff_t>(max_batch_)));
        waiting_.erase(waiting_.begin(), waiting_.begin() + static_cast<std::ptrdiff_t>(max_batch_));
      }
    }
    auto started = std::chrono::steady_clock::now();
    CommitCompletion completion;
    completion.result = commit_batch(store_, batch);  // returns after the fsync'd commit
    completion.commit_time = std::chrono::steady_clock::now() - started;
    completion.requests = std::move(batch);
    {
      std::lock_guard lock(mutex_);
      completed_.push_back(std::move(completion));
    }
    wake_();
  }
}

}  // namespace waymark::edge
