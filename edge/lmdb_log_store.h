// LmdbLogStore: the edge's durable LogStore over LMDB. Readers (head, read_after, receipts,
// size_bytes) may be called from any thread, concurrently with write(); write() from one
// writer thread at a time (the group-commit writer). Every commit is fsync'd before it returns.
#pragma once

#include <lmdb.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "waymark/log_store.h"

namespace waymark::edge {

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
};

// The layout: four named sub-databases; every seq is 8 bytes big-endian, so that in keys byte
// order is numeric order:
//   "log"      tenant \0 conv \0 seq(8 BE)  -> the stored msg frame (JSON text)
//   "ids"      tenant \0 conv \0 id         -> seq (8 BE)
//   "receipts" tenant \0 user \0 conv       -> delivered (8 BE) read (8 BE)
//   "heads"    tenant \0 conv               -> seq (8 BE)
// The \0 separator is unambiguous because no tenant, conv, user or id may contain \0 (the
// identifier rules); the store checks it anyway and refuses such a name with `invalid`, since
// a tenant from a token's claim is not covered by those rules. Because \0 sorts first, one
// conversation's log is one contiguous key range ("x" never bleeds into "x1").
//
// Errors: every LMDB return code is checked; a failure is Error{unavailable, "lmdb: <call>:
// <mdb_strerror>"}. A bad name is Error{invalid, ...}.
//
// Map growth: on MDB_MAP_FULL anywhere in a write, the transaction is aborted, the map doubled
// (up to max_map_bytes) and the whole body run again; so a write body must be safe to re-run
// (commit_batch's is: it only touches the LogTxn and its own outcome vector).
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

  // Runs body in one LMDB write transaction and commits it durably if body returns ok.
  // REQUIRES: body uses only the LogTxn it is given (not this store's reader methods), and is
  // safe to run more than once (see "Map growth" above).
  Status write(const std::function<Status(LogTxn&)>& body) override;

  // Bytes of the map in use ((last page + 1) * page size): the lmdb_size metric.
  Result<std::uint64_t> size_bytes() override;
  // The current map size: what the store may hold before it next grows.
  Result<std::uint64_t> map_size_bytes();
  // Flushes to disk. Commits already fsync; this is for callers that want to be explicit.
  Status sync();
  const std::string& path() const { return path_; }

 private:
  struct Dbis {
    MDB_dbi log = 0;
    MDB_dbi ids = 0;
    MDB_dbi receipts = 0;
    MDB_dbi heads = 0;
    MDB_dbi audit = 0;   // 8-byte big-endian record number -> audit record (JSON)
    // A relay's staged sends: (tenant, conv, id) -> 8-byte big-endian stage number + frame;
    // the key "\0" holds the last stage number handed out.
    MDB_dbi staged = 0;
    MDB_dbi dead = 0;    // (tenant, conv, id) -> dead letter record (JSON)
  };
  class Txn;       // an MDB_txn and the map lock it holds; defined in the .cpp
  class WriteTxn;  // the LogTxn over a write Txn

  LmdbLogStore(std::string path, MDB_env* env, Dbis dbis, std::size_t max_map_bytes,
               std::size_t map_bytes);

  Result<Txn> begin(unsigned flags);
  Status adopt_resized_map();
  Status grow_map();
  Status attempt_write(const std::function<Status(LogTxn&)>& body, bool& map_full);
  Status set_map_size_locked(std::size_t bytes);

  std::string path_;
  MDB_env* env_ = nullptr;
  Dbis dbis_;
  std::size_t max_map_bytes_ = 0;
  std::size_t max_key_bytes_ = 0;

  // mdb_env_set_mapsize remaps the file: no transaction of this process may be open while it
  // runs. Every transaction holds map_mutex_ shared; a resize holds it exclusively.
  std::shared_mutex map_mutex_;
  std::size_t map_bytes_ = 0;  // guarded by map_mutex_
  bool map_lost_ = false;      // a remap failed: LMDB has no map; guarded by map_mutex_
  std::mutex write_mutex_;     // one write() at a time, so growth never races a writer
};

// Reads the audit log of the store in dir, oldest first, without writing anything: safe while
// an edge serves from dir. A store without an audit log has no records.
Status read_audit_log(const std::string& dir,
                      const std::function<void(std::uint64_t number, std::string_view record)>& each);

}  // namespace waymark::edge
