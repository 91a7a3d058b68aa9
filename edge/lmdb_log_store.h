// LmdbLogStore: the edge's durable LogStore over LMDB and a write-ahead log. Readers (head,
// read_after, receipts, size_bytes) may be called from any thread, concurrently with write();
// write() from one writer thread at a time (the group-commit writer).
//
// A write is durable when write() returns: its changes are one record of the write-ahead log
// (write_ahead_log.h), synced, and held in memory (the pending layer, which every read sees
// over LMDB). An applier thread moves them into LMDB in bigger transactions (a checkpoint:
// every apply_bytes of log or apply_interval, and at close), each committed durably, then
// drops them from memory and reuses the log file. Opening the store applies whatever the log
// holds that LMDB does not (a crash, kill -9 or power loss after an ack). docs/reliability.md.
#pragma once

#include <lmdb.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "chunked_log.h"
#include "waymark/log_store.h"
#include "write_ahead_log.h"

namespace waymark::edge {

namespace detail {
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
};

// Keys to values, ordered (for ranges and the last key) or hashed (point lookups only, which
// are most of the writer's: ids, heads, receipts): the store's pending layer and one write's
// changes, per sub-database.
template <class Value>
class KeyTable {
 public:
  using Ordered = std::map<std::string, Value, std::less<>>;
  explicit KeyTable(bool ordered = true) : ordered_(ordered) {}
  void set_ordered(bool ordered) { ordered_ = ordered; }

  const Value* find(std::string_view key) const {
    if (ordered_) {
      auto it = map_.find(key);
      return it == map_.end() ? nullptr : &it->second;
    }
    auto it = hash_.find(key);
    return it == hash_.end() ? nullptr : &it->second;
  }
  Value& operator[](std::string key) { return ordered_ ? map_[std::move(key)] : hash_[std::move(key)]; }
  void erase(std::string_view key) {
    if (ordered_) {
      if (auto it = map_.find(key); it != map_.end()) map_.erase(it);
    } else if (auto it = hash_.find(key); it != hash_.end()) {
      hash_.erase(it);
    }
  }
  bool empty() const { return ordered_ ? map_.empty() : hash_.empty(); }
  template <class F>
  void for_each(F&& f) {
    if (ordered_)
      for (auto& [key, value] : map_) f(key, value);
    else
      for (auto& [key, value] : hash_) f(key, value);
  }
  template <class F>
  void for_each(F&& f) const {
    if (ordered_)
      for (const auto& [key, value] : map_) f(key, value);
    else
      for (const auto& [key, value] : hash_) f(key, value);
  }
  // Hands every entry over (key and value moved out) and leaves the table empty.
  template <class F>
  void drain(F&& f) {
    auto take = [&](auto& table) {
      while (!table.empty()) {
        auto node = table.extract(table.begin());
        f(std::move(node.key()), std::move(node.mapped()));
      }
    };
    if (ordered_)
      take(map_);
    else
      take(hash_);
  }
  // REQUIRES: an ordered table.
  const Ordered& ordered() const { return map_; }

 private:
  bool ordered_;
  Ordered map_;
  std::unordered_map<std::string, Value, StringHash, std::equal_to<>> hash_;
};
}  // namespace detail

// Where the map starts and how far it may grow. A plain struct; the defaults suit a node.
struct LmdbOptions {
  // The first map size; LMDB's data file only grows as pages are written, so a generous map
  // costs address space, not disk. Rounded up to the OS page size.
  std::size_t initial_map_bytes = std::size_t{64} << 20;  // 64 MiB
  // The map doubles on MDB_MAP_FULL up to this cap; at the cap writes fail with "store full"
  // (unavailable). Tests set it small to play a full disk. Rounded down to the OS page size.
  std::size_t max_map_bytes = std::size_t{1} << 40;  // 1 TiB
  // Reader lock-table slots: concurrent read transactions across all processes.
  unsigned max_readers = 126;
  // A checkpoint starts once the active write-ahead log file holds this many bytes, or
  // apply_interval after the last one if anything is pending.
  std::uint64_t apply_bytes = std::uint64_t{4} << 20;  // 4 MiB
  std::chrono::milliseconds apply_interval{100};
};

// The layout: named sub-databases; every seq is 8 bytes big-endian, so that in keys byte order
// is numeric order:
//   "convs", "chunks", "idx"  the message log and its id index (chunked_log.h): each msg's
//                             stored record (stored_record.h) in page-sized chunks per
//                             conversation, and 16 bytes per id
//   "receipts" tenant \0 user \0 conv       -> delivered (8 BE) read (8 BE)
//   "heads"    tenant \0 conv               -> seq (8 BE)
//   "meta"     "wal_applied"                -> the last write-ahead log batch in LMDB (8 BE)
//              "next_conv"                  -> the next conversation number (8 BE)
// The write-ahead log and the pending layer key the log by tenant \0 conv \0 seq(8 BE) and
// the ids by tenant \0 conv \0 id; a checkpoint lays them out as above.
// Before 2026-12, "log" held tenant \0 conv \0 seq -> the msg frame (JSON) and "ids"
// tenant \0 conv \0 id -> seq; Open moves such a store's messages into the chunked layout, a
// bounded batch per durable transaction, so an interrupted move resumes where it stopped.
// The \0 separator is unambiguous because no tenant, conv, user or id may contain \0 (the
// identifier rules); the store checks it anyway and refuses such a name with `invalid`, since
// a tenant from a token's claim is not covered by those rules. Because \0 sorts first, one
// conversation's log is one contiguous key range ("x" never bleeds into "x1").
//
// Errors: every LMDB return code is checked; a failure is Error{unavailable, "lmdb: <call>:
// <mdb_strerror>"}. A bad name is Error{invalid, ...}.
//
// Map growth: on MDB_MAP_FULL in a checkpoint, its transaction is aborted, the map doubled (up
// to max_map_bytes) and the checkpoint run again. At the cap the checkpoint fails with "store
// full" and every later write() is refused with that error until a restart with a bigger cap
// (what was acknowledged stays in the log and is applied then). Other checkpoint failures
// (a disk that is full) refuse writes the same way and are retried every second.
//
// LMDB allows one open environment per directory per process: a second Open of the same
// directory while the first store lives is refused.
class LmdbLogStore final : public LogStore {
 public:
  // Opens (creating the directory and the database if missing) the store in dir.
  static Result<std::unique_ptr<LmdbLogStore>> Open(const std::string& dir,
                                                     const LmdbOptions& options = {});

  // REQUIRES: no other thread is inside a call on this store.
  ~LmdbLogStore() override;
  LmdbLogStore(const LmdbLogStore&) = delete;
  LmdbLogStore& operator=(const LmdbLogStore&) = delete;

  Result<Seq> head(std::string_view tenant, std::string_view conv) override;
  Result<std::vector<StoredMessage>> read_after(std::string_view tenant, std::string_view conv,
                                                Seq after, std::uint32_t limit) override;
  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override;
  Result<std::vector<StagedMessage>> staged_messages() override;

  // Runs body against what is committed; if it returns ok, its changes are one synced
  // write-ahead log record and visible to readers when write() returns.
  // REQUIRES: body uses only the LogTxn it is given (not this store's reader methods).
  Status write(const std::function<Status(LogTxn&)>& body) override;

  // Bytes of the map in use ((last page + 1) * page size): the lmdb_size metric.
  Result<std::uint64_t> size_bytes() override;
  // The current map size: what the store may hold before it next grows.
  Result<std::uint64_t> map_size_bytes();
  // A checkpoint now: everything written so far applied to LMDB and committed durably.
  Status sync();
  const std::string& path() const { return path_; }

 private:
  struct Dbis {  // by Db (the .cpp), in this order
    MDB_dbi log = 0;  // the layout before chunks: emptied by Open (migrate_legacy_log)
    MDB_dbi ids = 0;  // ditto
    MDB_dbi receipts = 0;
    MDB_dbi heads = 0;
    MDB_dbi audit = 0;   // 8-byte big-endian record number -> audit record (JSON)
    // A relay's staged sends: (tenant, conv, id) -> 8-byte big-endian stage number + frame;
    // the key "\0" holds the last stage number handed out.
    MDB_dbi staged = 0;
    MDB_dbi dead = 0;    // (tenant, conv, id) -> dead letter record (JSON)
    MDB_dbi meta = 0;    // "wal_applied" -> 8 BE
    MDB_dbi convs = 0;   // chunked_log.h
    MDB_dbi chunks = 0;
    MDB_dbi idx = 0;
  };
  static constexpr std::size_t kDbs = 8;
  class Txn;     // an MDB_txn and the map lock it holds; defined in the .cpp
  class WalTxn;  // the LogTxn of write(): its changes over the pending layer over LMDB
  // A written change not yet in LMDB: the value (null: erased) and the batch that wrote it.
  struct Pending {
    std::shared_ptr<const std::string> value;
    std::uint64_t batch = 0;
  };
  using PendingDb = detail::KeyTable<Pending>;
  // The log's and the audit log's tables are ordered (read_after's ranges, the last audit
  // number); the others are hashed.
  static bool ordered_db(std::size_t db);

  LmdbLogStore(std::string path, MDB_env* env, Dbis dbis, std::size_t max_map_bytes,
               std::size_t map_bytes, std::size_t page_bytes, const LmdbOptions& options);

  MDB_dbi dbi(std::size_t db) const;
  Result<Txn> begin(unsigned flags);
  Status adopt_resized_map();
  Status grow_map();
  Status set_map_size_locked(std::size_t bytes);
  // One durable LMDB write transaction running apply (map growth retried), as a checkpoint and
  // the recovery at open use it.
  Status write_lmdb(const std::function<int(MDB_txn*, std::string& failed_call)>& apply);
  // Looks key up in the pending layer, then in LMDB through txn. REQUIRES: pending_mutex_ held.
  Result<std::optional<std::string>> lookup(std::size_t db, std::string_view key, MDB_txn* txn) const;
  // Changes, per sub-database in key order, into LMDB (null: erase): a checkpoint's, the
  // recovery's, the legacy move's. The log and the ids go through ChunkedLog.
  using ChangeList = std::vector<std::pair<std::string_view, const std::string*>>;
  int apply_changes(MDB_txn* txn, const std::array<ChangeList, kDbs>& changes,
                    std::string& call) const;
  Status migrate_legacy_log();
  Status recover();
  Status checkpoint();
  void run_applier();
  std::optional<Error> write_refusal();

  std::string path_;
  MDB_env* env_ = nullptr;
  Dbis dbis_;
  std::size_t max_map_bytes_ = 0;
  std::size_t max_key_bytes_ = 0;
  std::size_t chunk_bytes_ = 0;  // one overflow page's worth: the page size less its header
  mutable ConvNumbers conv_numbers_;

  // mdb_env_set_mapsize remaps the file: no transaction of this process may be open while it
  // runs. Every transaction holds map_mutex_ shared; a resize holds it exclusively.
  std::shared_mutex map_mutex_;
  std::size_t map_bytes_ = 0;  // guarded by map_mutex_
  bool map_lost_ = false;      // a remap failed: LMDB has no map; guarded by map_mutex_
  std::mutex write_mutex_;     // one write() at a time; guards wal_ and last_batch_

  LmdbOptions options_;
  std::unique_ptr<WriteAheadLog> wal_;
  std::uint64_t last_batch_ = 0;  // the last batch in the log; guarded by write_mutex_

  mutable std::shared_mutex pending_mutex_;
  std::array<PendingDb, kDbs> pending_;  // guarded by pending_mutex_

  std::mutex checkpoint_mutex_;  // one checkpoint at a time (the applier, sync(), close)
  std::uint64_t applied_ = 0;    // the last batch in LMDB; guarded by checkpoint_mutex_
  bool other_file_free_ = true;  // the last checkpoint applied the inactive log file; ditto

  std::mutex apply_mutex_;
  std::condition_variable apply_wanted_;
  bool stopping_ = false;              // guarded by apply_mutex_
  bool apply_requested_ = false;       // the active log file reached apply_bytes; ditto
  std::optional<Error> apply_failure_;  // a checkpoint failed: writes refused; ditto
  std::thread applier_;
};

// Reads the audit log of the store in dir, oldest first, without writing anything: safe while
// an edge serves from dir. A store without an audit log has no records.
Status read_audit_log(const std::string& dir,
                      const std::function<void(std::uint64_t number, std::string_view record)>& each);

}  // namespace waymark::edge
