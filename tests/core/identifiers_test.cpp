// identifiers_test: the identifier rules of protocol.md at their edges, and the generators
// (message ids, traceparents, hex tokens, SeededRandom) the core hands to hosts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "waymark/identifiers.h"

using namespace waymark;

namespace {

using Strings = std::vector<std::string>;

constexpr std::string_view kTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// A RandomSource that replays fixed values, to pin the generators' use of their input.
class FixedRandom final : public RandomSource {
 public:
  explicit FixedRandom(std::vector<std::uint64_t> values) : values_(std::move(values)) {}
  std::uint64_t next_u64() override { return values_[next_++ % values_.size()]; }

 private:
  std::vector<std::uint64_t> values_;
  std::size_t next_ = 0;
};

}  // namespace

TEST_CASE("identifiers: conv is 1-128 chars of [A-Za-z0-9._:-]", "[identifiers]") {
  CHECK(is_valid_conv("a"));
  CHECK(is_valid_conv("ops"));
  CHECK(is_valid_conv("Team.Ops:eu-1_x"));
  CHECK(is_valid_conv("0123456789"));
  CHECK(is_valid_conv("...:::---___"));
  CHECK(is_valid_conv(std::string(128, 'z')));
  CHECK(is_valid_conv(std::string(127, 'z') + ":"));

  CHECK_FALSE(is_valid_conv(""));
  CHECK_FALSE(is_valid_conv(std::string(129, 'z')));
  for (const std::string& bad : Strings{"a b", "a/b", "a*", "*", "a@b", "a#b", "a+b", "a,b", "é", "a\tb",
                                        "a\nb", "(x)", "[x]", "\"x\"", "x\\y", "a%20"}) {
    INFO("conv " << bad);
    CHECK_FALSE(is_valid_conv(bad));
  }
  CHECK_FALSE(is_valid_conv(std::string("a\0b", 3)));  // an embedded NUL is not a valid char
}

TEST_CASE("identifiers: message id is 1-64 chars of [A-Za-z0-9_-]", "[identifiers]") {
  CHECK(is_valid_message_id("a"));
  CHECK(is_valid_message_id("01JD4X3Y0000000000000000ZZ"));
  CHECK(is_valid_message_id("a-b_c-D"));
  CHECK(is_valid_message_id(std::string(64, '9')));

  CHECK_FALSE(is_valid_message_id(""));
  CHECK_FALSE(is_valid_message_id(std::string(65, '9')));
  // '.' and ':' are fine in a conv but not in an id.
  for (const std::string& bad : Strings{"a.b", "a:b", "a b", "a/b", "a*", "ü", "a@b", "a\n"}) {
    INFO("id " << bad);
    CHECK_FALSE(is_valid_message_id(bad));
  }
  CHECK_FALSE(is_valid_message_id(std::string("a\0b", 3)));
}

TEST_CASE("identifiers: rid is any string of at most 64 chars", "[identifiers]") {
  CHECK(is_valid_rid(""));
  CHECK(is_valid_rid("r"));
  CHECK(is_valid_rid("any chars at all: / * { } \" \\"));
  CHECK(is_valid_rid(std::string(64, 'r')));
  CHECK_FALSE(is_valid_rid(std::string(65, 'r')));
  CHECK_FALSE(is_valid_rid(std::string(1000, 'r')));
}

TEST_CASE("identifiers: traceparent is W3C version 00, lower-case, ids not all zero", "[identifiers]") {
  const std::string good(kTrace);
  CHECK(is_valid_traceparent(good));
  CHECK(is_valid_traceparent("00-00000000000000000000000000000001-0000000000000001-00"));
  CHECK(is_valid_traceparent("00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff"));

  auto with = [&](std::size_t at, char c) {
    std::string t = good;
    t[at] = c;
    return t;
  };
  CHECK_FALSE(is_valid_traceparent(""));
  CHECK_FALSE(is_valid_traceparent(good.substr(0, 54)));
  CHECK_FALSE(is_valid_traceparent(good + "0"));
  CHECK_FALSE(is_valid_traceparent(good + "-00"));  // no future-version suffix for version 00
  CHECK_FALSE(is_valid_traceparent(with(3, 'A')));   // upper-case hex in the trace id
  CHECK_FALSE(is_valid_traceparent(with(40, 'F')));  // ... in the parent id
  CHECK_FALSE(is_valid_traceparent(with(54, 'F')));  // ... in the flags
  CHECK_FALSE(is_valid_traceparent(with(10, 'g')));  // not hex
  CHECK_FALSE(is_valid_traceparent(with(2, '_')));   // separators
  CHECK_FALSE(is_valid_traceparent(with(35, '_')));
  CHECK_FALSE(is_valid_traceparent(with(52, '_')));
  CHECK_FALSE(is_valid_traceparent(with(0, 'x')));   // version not hex
  CHECK_FALSE(is_valid_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));  // reserved
  CHECK_FALSE(is_valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK_FALSE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  CHECK_FALSE(is_valid_traceparent(std::string(55, '-')));
}

TEST_CASE("identifiers: make_message_id is 26 Crockford chars, valid, and sorts by time",
          "[identifiers]") {
  SeededRandom random(20240601);
  const std::string crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

  std::string id = make_message_id(1700000000000, random);
  CHECK(id.size() == 26);
  CHECK(is_valid_message_id(id));
  for (char c : id) {
    INFO("char " << c);
    CHECK(crockford.find(c) != std::string::npos);
  }

  SECTION("the first 10 chars encode the millisecond time") {
    CHECK(make_message_id(0, random).substr(0, 10) == "0000000000");
    CHECK(make_message_id(1, random).substr(0, 10) == "0000000001");
    CHECK(make_message_id(32, random).substr(0, 10) == "0000000010");
    CHECK(make_message_id(1700000000000, random).substr(0, 10) ==
          make_message_id(1700000000000, random).substr(0, 10));
    // A clock before the epoch does not produce garbage.
    std::string before_epoch = make_message_id(-5, random);
    CHECK(before_epoch.substr(0, 10) == "0000000000");
    CHECK(is_valid_message_id(before_epoch));
  }

  SECTION("ids sort as their creation times do") {
    std::vector<std::pair<std::int64_t, std::string>> made;
    for (int i = 0; i < 2000; ++i) {
      auto now = static_cast<std::int64_t>(random.below(1ULL << 46));  // far past 2100
      made.emplace_back(now, make_message_id(now, random));
    }
    for (std::int64_t now : {std::int64_t{0}, std::int64_t{31}, std::int64_t{32}, std::int64_t{1023},
                             std::int64_t{1024}, std::int64_t{1700000000000}, std::int64_t{1700000000001}}) {
      made.emplace_back(now, make_message_id(now, random));
    }
    for (std::size_t i = 0; i < made.size(); ++i) {
      for (std::size_t j = i + 1; j < made.size(); j += 37) {  // a spread of pairs, not all n^2
        const auto& [ti, a] = made[i];
        const auto& [tj, b] = made[j];
        INFO(ti << " -> " << a << ", " << tj << " -> " << b);
        if (ti < tj) CHECK(a.substr(0, 10) < b.substr(0, 10));
        if (ti > tj) CHECK(a.substr(0, 10) > b.substr(0, 10));
        if (ti == tj) CHECK(a.substr(0, 10) == b.substr(0, 10));
      }
    }
    std::sort(made.begin(), made.end());
    for (std::size_t i = 1; i < made.size(); ++i)
      if (made[i - 1].first < made[i].first) CHECK(made[i - 1].second < made[i].second);
  }

  SECTION("ids drawn in the same millisecond are distinct") {
    std::set<std::string> seen;
    for (int i = 0; i < 20000; ++i) seen.insert(make_message_id(1700000000000, random));
    CHECK(seen.size() == 20000);
  }

  SECTION("the random part comes from the RandomSource") {
    FixedRandom zeros({0});
    CHECK(make_message_id(0, zeros) == std::string(26, '0'));
    FixedRandom ones({~0ULL});
    CHECK(make_message_id(0, ones) == "0000000000" + std::string(16, 'Z'));
  }
}

TEST_CASE("identifiers: make_traceparent gives valid, distinct traceparents", "[identifiers]") {
  SeededRandom random(7);
  std::set<std::string> seen;
  for (int i = 0; i < 5000; ++i) {
    std::string trace = make_traceparent(random);
    INFO(trace);
    REQUIRE(is_valid_traceparent(trace));
    CHECK(trace.substr(0, 3) == "00-");
    CHECK(trace.substr(52) == "-01");  // sampled
    seen.insert(trace);
  }
  CHECK(seen.size() == 5000);

  // Even a source that starts with zeros yields ids that are not all zero.
  FixedRandom zeros_then_bits({0, 0, 0, 0x1234});
  CHECK(is_valid_traceparent(make_traceparent(zeros_then_bits)));
}

TEST_CASE("identifiers: make_hex_token is lower-case hex of the asked length", "[identifiers]") {
  SeededRandom random(99);
  for (std::size_t length : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16},
                             std::size_t{17}, std::size_t{32}, std::size_t{100}}) {
    std::string token = make_hex_token(random, length);
    INFO(length << ": " << token);
    CHECK(token.size() == length);
    CHECK(token.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CHECK(make_hex_token(random).size() == 32);
  CHECK(make_hex_token(random) != make_hex_token(random));
}

TEST_CASE("identifiers: SeededRandom is deterministic per seed", "[identifiers]") {
  SeededRandom a(12345), b(12345), c(12346);
  std::vector<std::uint64_t> from_a, from_b, from_c;
  for (int i = 0; i < 1000; ++i) {
    from_a.push_back(a.next_u64());
    from_b.push_back(b.next_u64());
    from_c.push_back(c.next_u64());
  }
  CHECK(from_a == from_b);
  CHECK(from_a != from_c);
  CHECK(std::set<std::uint64_t>(from_a.begin(), from_a.end()).size() == from_a.size());

  // SplitMix64's published first output for seed 0: the same natively and in WebAssembly.
  SeededRandom zero(0);
  CHECK(zero.next_u64() == 0xe220a8397b1dcdafULL);

  SeededRandom bounded(3);
  CHECK(bounded.below(0) == 0);
  CHECK(bounded.below(1) == 0);
  std::set<std::uint64_t> faces;
  for (int i = 0; i < 1000; ++i) {
    std::uint64_t face = bounded.below(6);
    REQUIRE(face < 6);
    faces.insert(face);
  }
  CHECK(faces.size() == 6);
}
