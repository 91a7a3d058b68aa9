// backoff_test: backoff_delay's ceilings, both jitters, the cap, and its one draw.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>

#include "waymark/backoff.h"

using namespace waymark;

namespace {

// Always returns the same value: pins which end of the window a draw lands on.
class ConstantRandom final : public RandomSource {
 public:
  explicit ConstantRandom(std::uint64_t value) : value_(value) {}
  std::uint64_t next_u64() override {
    ++draws;
    return value_;
  }
  int draws = 0;

 private:
  std::uint64_t value_;
};

}  // namespace

TEST_CASE("backoff: full jitter stays within [0, min(cap, base * 2^n)] and fills it", "[backoff]") {
  const Backoff backoff{250, 30000, Jitter::full};
  SeededRandom random(7);
  for (std::uint32_t n = 0; n < 12; ++n) {
    INFO("attempt " << n);
    TimeMs ceiling = std::min<TimeMs>(30000, TimeMs{250} << n);
    TimeMs low = ceiling, high = 0;
    std::set<TimeMs> distinct;
    for (int i = 0; i < 2000; ++i) {
      TimeMs delay = backoff_delay(backoff, n, random);
      REQUIRE(delay >= 0);
      REQUIRE(delay <= ceiling);
      low = std::min(low, delay);
      high = std::max(high, delay);
      distinct.insert(delay);
    }
    CHECK(low < ceiling / 10);     // reaches down to (nearly) zero
    CHECK(high > ceiling * 9 / 10);  // and up to (nearly) the ceiling
    CHECK(distinct.size() > 100);
  }
}

TEST_CASE("backoff: equal jitter stays within [ceiling / 2, ceiling]", "[backoff]") {
  const Backoff backoff{1000, 60000, Jitter::equal};
  SeededRandom random(11);
  for (std::uint32_t n = 0; n < 10; ++n) {
    INFO("attempt " << n);
    TimeMs ceiling = std::min<TimeMs>(60000, TimeMs{1000} << n);
    TimeMs low = ceiling, high = 0;
    for (int i = 0; i < 2000; ++i) {
      TimeMs delay = backoff_delay(backoff, n, random);
      REQUIRE(delay >= ceiling / 2);
      REQUIRE(delay <= ceiling);
      low = std::min(low, delay);
      high = std::max(high, delay);
    }
    CHECK(low < ceiling / 2 + ceiling / 20);
    CHECK(high > ceiling - ceiling / 20);
  }
}

TEST_CASE("backoff: the window's ends, the cap, huge attempts and one draw each", "[backoff]") {
  ConstantRandom zero(0), top(~std::uint64_t{0});  // 2^64 - 1
  CHECK(backoff_delay({250, 30000, Jitter::full}, 0, zero) == 0);
  CHECK(backoff_delay({1000, 60000, Jitter::equal}, 0, zero) == 500);
  CHECK(backoff_delay({1000, 60000, Jitter::equal}, 1, zero) == 1000);
  // Past the cap the ceiling is the cap; a huge attempt count does not overflow the shift.
  ConstantRandom big(30000);
  CHECK(backoff_delay({250, 30000, Jitter::full}, 1000000, big) == 30000);
  CHECK(backoff_delay({1000, 60000, Jitter::equal}, 4000000000u, zero) == 30000);
  // A zero base gives zero, with either jitter.
  CHECK(backoff_delay({0, 30000, Jitter::full}, 5, top) == 0);
  CHECK(backoff_delay({0, 30000, Jitter::equal}, 5, top) == 0);
  CHECK(zero.draws == 4);
  CHECK(big.draws == 1);
  CHECK(top.draws == 2);
}
