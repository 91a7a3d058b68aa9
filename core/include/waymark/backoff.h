// Exponential backoff with jitter: the one rule for every retry delay of a client (reconnects,
// refused sends, token refreshes). Pure function over a RandomSource; any thread.
#pragma once

#include <cstdint>

#include "waymark/frames.h"
#include "waymark/identifiers.h"

namespace waymark {

// How the delay is drawn below its ceiling.
//   full:  uniform in [0, ceiling]: spreads a herd of clients the most; the first retry may
//          come at once. For reconnects and refused sends.
//   equal: uniform in [ceiling / 2, ceiling]: never sooner than half the ceiling, so a retry
//          that fails at once (a token endpoint that keeps failing) cannot turn into a tight
//          loop. For token refreshes.
enum class Jitter { full, equal };

struct Backoff {
  TimeMs base_ms = 250;
  TimeMs cap_ms = 30000;
  Jitter jitter = Jitter::full;
};

// The delay before retry number `attempt` (0 for the first retry after a failure):
// ceiling = min(cap_ms, base_ms * 2^attempt), then drawn below it by `jitter`.
// One draw from `random`. REQUIRES: 0 <= base_ms <= cap_ms.
TimeMs backoff_delay(const Backoff& backoff, std::uint32_t attempt, RandomSource& random);

}  // namespace waymark
