// Identifier rules and generators (message ids, traceparents, session tokens).
#include "waymark/identifiers.h"

namespace waymark {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool all_lower_hex(std::string_view text) {
  for (char c : text)
    if (!is_lower_hex(c)) return false;
  return true;
}

bool all_zero(std::string_view text) { return text.find_first_not_of('0') == std::string_view::npos; }

constexpr std::string_view kCrockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::string_view kHex = "0123456789abcdef";

}  // namespace

bool is_valid_conv(std::string_view conv) {
  if (conv.empty() || conv.size() > kMaxConvLength) return false;
  for (char c : conv)
    if (!is_alnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  return true;
}

std::optional<std::string> conv_name_problem(std::string_view conv) {
  if (conv.empty()) return "Enter a conversation name.";
  for (char c : conv)
    if (!is_alnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
      return "Use only letters, digits and . _ : -";
  if (conv.size() > kMaxConvLength)
    return "Too long: " + std::to_string(conv.size()) + " characters, at most " +
           std::to_string(kMaxConvLength) + ".";
  return std::nullopt;
}

bool is_valid_message_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxMessageIdLength) return false;
  for (char c : id)
    if (!is_alnum(c) && c != '_' && c != '-') return false;
  return true;
}

bool is_valid_rid(std::string_view rid) { return rid.size() <= kMaxRidLength; }

bool is_valid_traceparent(std::string_view trace) {
  // 2 + 1 + 32 + 1 + 16 + 1 + 2 = 55
  if (trace.size() != 55 || trace[2] != '-' || trace[35] != '-' || trace[52] != '-') return false;
  std::string_view version = trace.substr(0, 2), trace_id = trace.substr(3, 32),
                   parent_id = trace.substr(36, 16), flags = trace.substr(53, 2);
  return all_lower_hex(version) && version != "ff" && all_lower_hex(trace_id) &&
         !all_zero(trace_id) && all_lower_hex(parent_id) && !all_zero(parent_id) &&
         all_lower_hex(flags);
}

std::uint64_t SeededRandom::next_u64() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string make_message_id(std::int64_t now_ms, RandomSource& random) {
  std::string id(26, '0');
  auto time = static_cast<std::uint64_t>(now_ms < 0 ? 0 : now_ms) & ((1ULL << 48) - 1);
  for (int i = 9; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kCrockford[time & 31];
    time >>= 5;
  }
  std::uint64_t high = random.next_u64(), low = random.next_u64();  // 80 of these 128 bits
  for (int i = 0; i < 16; ++i) {
    std::uint64_t& source = i < 8 ? high : low;
    id[10 + static_cast<std::size_t>(i)] = kCrockford[source & 31];
    source >>= 5;
  }
  return id;
}

std::string make_hex_token(RandomSource& random, std::size_t hex_chars) {
  std::string out;
  out.reserve(hex_chars);
  while (out.size() < hex_chars) {
    std::uint64_t bits = random.next_u64();
    for (int i = 0; i < 16 && out.size() < hex_chars; ++i, bits >>= 4) out += kHex[bits & 15];
  }
  return out;
}

// version 00, a 32-digit trace id, a 16-digit span id (neither all zero), flags 01: built in one
// string, since the edge makes one for every message a client sent without.
std::string make_traceparent(RandomSource& random) {
  std::string out = "00-";
  out.reserve(55);
  auto append_hex = [&](std::size_t digits) {
    const std::size_t start = out.size();
    do {
      out.resize(start);
      while (out.size() < start + digits) {
        std::uint64_t bits = random.next_u64();
        for (int i = 0; i < 16 && out.size() < start + digits; ++i, bits >>= 4) out += kHex[bits & 15];
      }
    } while (all_zero(std::string_view(out).substr(start)));
  };
  append_hex(32);
  out += '-';
  append_hex(16);
  out += "-01";
  return out;
}

}  // namespace waymark
