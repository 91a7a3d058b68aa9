// WriteAheadLog: where a commit becomes durable. Each write batch is one record appended to a
// file and fdatasync'd: one sequential write and one sync per group commit, whatever the batch
// touches. LmdbLogStore applies the records to LMDB later, in bigger transactions, and then
// reuses the file (docs/reliability.md, "The write-ahead log").
//
// Two files, wal-0 and wal-1, in the store's directory; records go to the active one from its
// start. rotate() switches to the other file, which the caller must have applied by then.
// A record: u32 payload length, u32 CRC-32 of the payload, the payload (little-endian):
//   u64 batch number, u32 change count, then per change: u8 db, u8 kind (1 put, 0 erase),
//   u32 key length, key, and for a put u32 value length, value.
// Batch numbers rise by one from record to record, so reading a file stops at the first record
// that is torn, fails its CRC or does not follow the one before (what is left of an older use
// of the file). Not thread-safe: the store serialises every call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "waymark/log_store.h"

namespace waymark::edge {

struct WalChange {
  std::uint8_t db = 0;
  std::string key;
  std::optional<std::string> value;  // nullopt: erase the key
};

struct WalBatch {
  std::uint64_t number = 0;
  std::vector<WalChange> changes;
};

class WriteAheadLog {
 public:
  // Opens (creating them, and syncing the directory, when missing) wal-0 and wal-1 in dir.
  static Result<std::unique_ptr<WriteAheadLog>> Open(const std::string& dir);
  ~WriteAheadLog();
  WriteAheadLog(const WriteAheadLog&) = delete;
  WriteAheadLog& operator=(const WriteAheadLog&) = delete;

  // Every intact record of both files with a number above `applied`, in number order and
  // without a gap (reading stops at the first missing number). Does not write.
  static Result<std::vector<WalBatch>> read(const std::string& dir, std::uint64_t applied);

  // Appends one record to the active file and syncs it. After a failed write or sync the log
  // refuses every later append (the kernel may have dropped the unsynced pages): the node
  // must restart, and recovery reads what reached the disk.
  Status append(std::uint64_t number, const std::vector<WalChange>& changes);
  // Makes the other file active, from its start.
  void rotate();
  // Bytes written to the active file since it became active.
  std::uint64_t active_bytes() const { return offset_; }

 private:
  WriteAheadLog(int fd0, int fd1) : fds_{fd0, fd1} {}

  int fds_[2];
  int active_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t allocated_[2] = {0, 0};  // bytes each file holds (written zeros included)
  std::optional<Error> failed_;
  std::string record_;  // reused encode buffer
};

}  // namespace waymark::edge
