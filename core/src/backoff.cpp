// backoff_delay: exponential backoff with full or equal jitter.
#include "waymark/backoff.h"

#include <algorithm>

namespace waymark {

TimeMs backoff_delay(const Backoff& backoff, std::uint32_t attempt, RandomSource& random) {
  // 2^20 times any base in use is far past every cap; the shift stays well inside 64 bits.
  TimeMs ceiling = std::min(backoff.base_ms << std::min<std::uint32_t>(attempt, 20), backoff.cap_ms);
  ceiling = std::max<TimeMs>(ceiling, 0);
  TimeMs floor = backoff.jitter == Jitter::equal ? ceiling / 2 : 0;
  auto span = static_cast<std::uint64_t>(ceiling - floor) + 1;
  return floor + static_cast<TimeMs>(random.next_u64() % span);
}

}  // namespace waymark
