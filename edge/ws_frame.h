// WebSocket text frames written by hand (RFC 6455 5.2), so that several go out in one send
// (lws_write with LWS_WRITE_RAW): the edge's frames to its clients, a ClientHost's to its
// server (an upstream link), the load harness's. Header-only; no state but the caller's.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace waymark::edge {

// Appends one text frame: FIN, opcode 1, the payload length in 7, 16 or 64 bits, then the
// payload. A client's frame (mask given) also sets the mask bit and carries the 4-byte key,
// the payload XORed with it.
inline void append_text_frame(std::vector<unsigned char>& out, std::string_view text,
                              std::optional<std::uint32_t> mask = std::nullopt) {
  const std::size_t n = text.size();
  const unsigned char masked = mask ? 0x80 : 0x00;
  out.push_back(0x81);
  if (n < 126) {
    out.push_back(static_cast<unsigned char>(masked | n));
  } else if (n < 65536) {
    out.push_back(masked | 126);
    out.push_back(static_cast<unsigned char>(n >> 8));
    out.push_back(static_cast<unsigned char>(n));
  } else {
    out.push_back(masked | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<unsigned char>(n >> shift));
  }
  if (!mask) {
    out.insert(out.end(), text.begin(), text.end());
    return;
  }
  const unsigned char key[4] = {
      static_cast<unsigned char>(*mask >> 24), static_cast<unsigned char>(*mask >> 16),
      static_cast<unsigned char>(*mask >> 8), static_cast<unsigned char>(*mask)};
  out.insert(out.end(), key, key + 4);
  const std::size_t at = out.size();
  out.resize(at + n);
  for (std::size_t i = 0; i < n; ++i) out[at + i] = static_cast<unsigned char>(text[i]) ^ key[i & 3];
}

// A fresh masking key per frame, as RFC 6455 asks of a client (xorshift32 from a seed the
// caller draws once; a key only has to be unpredictable to scripts on the path, not secret).
class MaskKeys {
 public:
  explicit MaskKeys(std::uint32_t seed) : state_(seed ? seed : 0x9e3779b9u) {}
  std::uint32_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 17;
    state_ ^= state_ << 5;
    return state_;
  }

 private:
  std::uint32_t state_;
};

}  // namespace waymark::edge
