// Byte helpers for LMDB keys and values: big-endian 64-bit numbers (so byte order is numeric
// order) and MDB_val views. Header-only; for the store's own files (lmdb_log_store.cpp,
// chunked_log.cpp).
#pragma once

#include <lmdb.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace waymark::edge {

constexpr std::size_t kBe64Bytes = 8;

inline void put_be64(char* out, std::uint64_t value) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(value & 0xff);
    value >>= 8;
  }
}

inline void append_be64(std::string& out, std::uint64_t value) {
  char bytes[kBe64Bytes];
  put_be64(bytes, value);
  out.append(bytes, kBe64Bytes);
}

// REQUIRES: 8 readable bytes at `bytes`.
inline std::uint64_t get_be64(const char* bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < kBe64Bytes; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}
inline std::uint64_t get_be64(std::string_view bytes) { return get_be64(bytes.data()); }

// LMDB never writes through a key or data MDB_val handed to it, so the const_cast is safe.
inline MDB_val as_val(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}
inline MDB_val as_val(std::string_view bytes) { return as_val(bytes.data(), bytes.size()); }

// Valid only until the transaction it came from ends or writes.
inline std::string_view as_view(const MDB_val& val) {
  return {static_cast<const char*>(val.mv_data), val.mv_size};
}

}  // namespace waymark::edge
