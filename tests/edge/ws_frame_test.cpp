// ws_frame.h: the frames the edge, ClientHost and the harness write by hand are RFC 6455's, at
// every length encoding, masked or not.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "ws_frame.h"

namespace waymark::edge {
namespace {

// Reads one frame back as a receiver would: FIN and opcode, mask bit, length, key, payload.
struct Parsed {
  unsigned char first = 0;
  bool masked = false;
  std::size_t header = 0;
  std::string payload;
};
Parsed parse(const std::vector<unsigned char>& bytes) {
  Parsed out;
  out.first = bytes.at(0);
  out.masked = bytes.at(1) & 0x80;
  std::size_t n = bytes.at(1) & 0x7f, at = 2;
  if (n == 126) {
    n = std::size_t{bytes.at(2)} << 8 | bytes.at(3);
    at = 4;
  } else if (n == 127) {
    n = 0;
    for (int i = 0; i < 8; ++i) n = n << 8 | bytes.at(2 + static_cast<std::size_t>(i));
    at = 10;
  }
  unsigned char key[4] = {0, 0, 0, 0};
  if (out.masked) {
    for (int i = 0; i < 4; ++i) key[i] = bytes.at(at + static_cast<std::size_t>(i));
    at += 4;
  }
  out.header = at;
  REQUIRE(bytes.size() == at + n);
  for (std::size_t i = 0; i < n; ++i) out.payload.push_back(static_cast<char>(bytes[at + i] ^ key[i & 3]));
  return out;
}

}  // namespace

TEST_CASE("ws_frame: text frames at every length encoding, masked and not", "[ws_frame]") {
  MaskKeys keys(12345);
  for (std::size_t size : {0u, 1u, 125u, 126u, 65535u, 65536u, 70000u}) {
    std::string text(size, 'x');
    for (std::size_t i = 0; i < size; ++i) text[i] = static_cast<char>('a' + i % 26);
    for (bool masked : {false, true}) {
      CAPTURE(size, masked);
      std::vector<unsigned char> out;
      const std::uint32_t key = keys.next();
      append_text_frame(out, text, masked ? std::optional<std::uint32_t>(key) : std::nullopt);
      Parsed frame = parse(out);
      CHECK(frame.first == 0x81);  // FIN, text
      CHECK(frame.masked == masked);
      CHECK(frame.header == (size < 126 ? 2u : size < 65536 ? 4u : 10u) + (masked ? 4u : 0u));
      CHECK(frame.payload == text);
      if (masked && size > 8)  // the payload on the wire is not the text
        CHECK(std::string(out.begin() + static_cast<long>(frame.header), out.end()) != text);
    }
  }
  // Frames append: two in one buffer, one after the other.
  std::vector<unsigned char> two;
  append_text_frame(two, "ab");
  append_text_frame(two, "cd");
  CHECK(two == std::vector<unsigned char>{0x81, 2, 'a', 'b', 0x81, 2, 'c', 'd'});
  // Keys differ frame to frame.
  CHECK(keys.next() != keys.next());
}

}  // namespace waymark::edge
