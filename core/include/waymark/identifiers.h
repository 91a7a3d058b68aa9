// The identifier rules of protocol.md, in one place: conv, message id, rid, traceparent.
// Pure functions; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace waymark {

inline constexpr std::size_t kMaxConvLength = 128;
inline constexpr std::size_t kMaxMessageIdLength = 64;
inline constexpr std::size_t kMaxRidLength = 64;

// conv: 1-128 chars of [A-Za-z0-9._:-].
bool is_valid_conv(std::string_view conv);
// id: 1-64 chars of [A-Za-z0-9_-].
bool is_valid_message_id(std::string_view id);
// rid: any string of at most 64 chars (protocol.md "Transport").
bool is_valid_rid(std::string_view rid);
// W3C traceparent, version 00: "00-<32 hex>-<16 hex>-<2 hex>", lower-case, ids not all zero.
bool is_valid_traceparent(std::string_view trace);

// What is wrong with a conversation name, as a sentence for the person who typed it (the web
// app's join field), or nullopt when is_valid_conv(conv). Checks characters before length, so
// a name reported too long is ASCII and its length is its number of characters.
std::optional<std::string> conv_name_problem(std::string_view conv);

// The messages the codec puts after the field name when a rule above fails.
inline constexpr std::string_view kConvRule = "must be 1-128 chars of [A-Za-z0-9._:-]";
inline constexpr std::string_view kMessageIdRule = "must be 1-64 chars of [A-Za-z0-9_-]";
inline constexpr std::string_view kRidRule = "must be a string of at most 64 chars";
inline constexpr std::string_view kTraceRule = "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)";

// A source of 64 random bits. The core never draws randomness itself: hosts pass one in
// (crypto.getRandomValues in the browser, a seeded generator in tests).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual std::uint64_t next_u64() = 0;
};

// SplitMix64: a small seeded generator, for tests and for hosts that seed it from the OS.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next_u64() override;
  // Uniform in [0, bound); bound 0 gives 0.
  std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : next_u64() % bound; }

 private:
  std::uint64_t state_;
};

// A ULID-like message id: 10 Crockford base32 chars of the millisecond time, then 16 of
// randomness (80 bits). 26 chars, sortable by creation time, valid under is_valid_message_id.
std::string make_message_id(std::int64_t now_ms, RandomSource& random);

// A fresh W3C traceparent "00-<trace id>-<span id>-01".
std::string make_traceparent(RandomSource& random);

// 32 lower-case hex chars of randomness, for session ids.
std::string make_hex_token(RandomSource& random, std::size_t hex_chars = 32);

}  // namespace waymark
