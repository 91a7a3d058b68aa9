// ChunkedLog: how the message log lies in LMDB, inside one transaction the caller owns. Used by
// LmdbLogStore only (its checkpoints and recovery write through it, its reads go through it
// when the pending layer misses); whichever thread holds the transaction.
//
// Three sub-databases, every number 8 bytes big-endian (byte order is numeric order):
//   "convs"  tenant \0 conv                   -> the conversation's number
//   "chunks" number, first seq                -> records of seq first, first + 1, ... each as
//                                                a LEB128 length and a record (stored_record.h)
//   "idx"    number (MDB_DUPSORT)             -> id \0 seq, one entry per message
// A chunk is filled up to one page's worth (an overflow page holds it whole, so the log's
// pages are full however conversations interleave); the last chunk of a conversation is
// rewritten as it grows. The id index's entries sort by id within a conversation, so ids that
// ascend (the SDK's) are appended and fill their pages. meta "next_conv" holds the next
// conversation number.
//
// Errors are LMDB return codes, with `call` naming what failed; bytes that are not what this
// layout writes are MDB_CORRUPTED.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "waymark/frames.h"

namespace waymark::edge {

// Closes its cursor on scope exit. Declared after the transaction it belongs to, so a
// read-only transaction's cursor is closed before the transaction ends.
struct CursorCloser {
  MDB_cursor* cursor = nullptr;
  CursorCloser() = default;
  CursorCloser(const CursorCloser&) = delete;
  CursorCloser& operator=(const CursorCloser&) = delete;
  ~CursorCloser() {
    if (cursor) mdb_cursor_close(cursor);
  }
};

struct ChunkedLogDbis {
  MDB_dbi convs = 0;
  MDB_dbi chunks = 0;
  MDB_dbi idx = 0;
  MDB_dbi meta = 0;
};

// Conversation numbers already committed, remembered across transactions (a number, once
// committed, never changes). Any thread.
class ConvNumbers {
 public:
  std::optional<std::uint64_t> find(std::string_view conv_key) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    auto it = numbers_.find(conv_key);
    if (it == numbers_.end()) return std::nullopt;
    return it->second;
  }
  void remember(std::string_view conv_key, std::uint64_t number) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    numbers_.emplace(std::string(conv_key), number);
  }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::uint64_t, Hash, std::equal_to<>> numbers_;
};

class ChunkedLog {
 public:
  // conv_key below is tenant \0 conv, as the store's keys begin.
  // chunk_bytes: the most a chunk of several records may hold (a record longer than that gets
  // a chunk of its own). known: consulted always; taught only by a read-only txn, whose view
  // is committed (a write txn's new numbers are not, until it commits).
  ChunkedLog(MDB_txn* txn, ChunkedLogDbis dbis, std::size_t chunk_bytes, ConvNumbers& known,
             bool read_only, std::string& call)
      : txn_(txn), dbis_(dbis), chunk_bytes_(chunk_bytes), known_(known), read_only_(read_only),
        call_(call) {}

  // Reads: out is left empty when there is nothing.
  int record(std::string_view conv_key, Seq seq, std::optional<std::string>& out);
  int find_id(std::string_view conv_key, std::string_view id, std::optional<Seq>& out);
  // Calls each(seq, record) for seq in (after, ...) ascending, at most limit times; the views
  // live as long as the transaction.
  int read_after(std::string_view conv_key, Seq after, std::uint32_t limit,
                 const std::function<void(Seq, std::string_view)>& each);

  // Writes (REQUIRES: a write transaction). records[i] is seq first + i; first must follow
  // what the conversation holds.
  int append(std::string_view conv_key, Seq first, const std::vector<std::string_view>& records);
  int index_id(std::string_view conv_key, std::string_view id, Seq seq);

 private:
  int conv_number(std::string_view conv_key, std::optional<std::uint64_t>& out);
  // The conversation's number and a cursor on dbi (named `name` in errors); neither when the
  // conversation has no number yet.
  int open_conv(std::string_view conv_key, MDB_dbi dbi, const char* name,
                std::optional<std::uint64_t>& number, CursorCloser& cursor);
  int assign_number(std::string_view conv_key, std::uint64_t& out);
  // The chunk with the greatest first seq <= seq in conversation `number` (the one that holds
  // seq, if any does): its first seq and bytes; MDB_NOTFOUND when there is none.
  int chunk_at(MDB_cursor* cursor, std::uint64_t number, Seq seq, Seq& first,
               std::string_view& bytes);

  MDB_txn* txn_;
  ChunkedLogDbis dbis_;
  std::size_t chunk_bytes_;
  ConvNumbers& known_;
  bool read_only_;
  std::string& call_;
};

}  // namespace waymark::edge
