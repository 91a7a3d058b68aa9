// LatencyRecorder: keeps every sample (nanoseconds) of one measured window and answers
// percentiles. Samples are cheap to keep (8 bytes each) and exact, so no bucketing error.
// One thread records; merge() joins recorders of other threads once they have stopped.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace waymark::bench {

using Clock = std::chrono::steady_clock;

// Nanoseconds on the steady clock: the harness's one time base (send stamps, deliveries).
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

class LatencyRecorder {
 public:
  void record(std::int64_t nanoseconds) { samples_.push_back(nanoseconds); }
  void merge(const LatencyRecorder& other);
  std::size_t count() const { return samples_.size(); }
  // The q-quantile (0..1) in milliseconds; 0 when there are no samples. Sorts on first use.
  double quantile_ms(double q);

 private:
  std::vector<std::int64_t> samples_;
  bool sorted_ = false;
};

}  // namespace waymark::bench
