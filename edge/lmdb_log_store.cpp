// LmdbLogStore: the LogStore over LMDB. The key layout, the error rules and the map-growth
// policy are described in lmdb_log_store.h.
#include "lmdb_log_store.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "chunked_log.h"
#include "lmdb_bytes.h"
#include "waymark/stored_record.h"

namespace waymark::edge {
namespace {

constexpr std::size_t kSeqBytes = kBe64Bytes;
constexpr std::size_t kReceiptBytes = 2 * kSeqBytes;
constexpr unsigned kNamedDatabases = 16;  // log, ids, receipts, heads, audit, staged, dead, meta,
                                          // convs, chunks, idx; room to grow
constexpr std::size_t kPageHeaderBytes = 16;  // LMDB's PAGEHDRSZ: an overflow page holds the rest
constexpr std::size_t kLegacyMoveBatch = 10000;  // messages per transaction of the legacy move
const std::string kStageCounterKey(1, '\0');  // sorts before every (tenant, conv, id) key
// Read/write by the node's user only: the log holds tenants' messages.
constexpr mdb_mode_t kFileMode = 0600;

Error lmdb_error(std::string_view call, int rc) {
  return make_error(ErrorCode::unavailable,
                    "lmdb: " + std::string(call) + ": " + std::string(mdb_strerror(rc)));
}

Error corrupt(std::string_view what, std::size_t size) {
  return make_error(ErrorCode::unavailable, "store: corrupt " + std::string(what) + " value (" +
                                                std::to_string(size) + " bytes)");
}

std::string encode_seq(Seq seq) {
  std::string out;
  append_be64(out, seq);
  return out;
}

Result<Seq> decode_seq(std::string_view bytes, std::string_view what) {
  if (bytes.size() != kSeqBytes) return corrupt(what, bytes.size());
  return get_be64(bytes);
}

std::string encode_receipts(const ReceiptCursors& cursors) {
  std::string out;
  append_be64(out, cursors.delivered);
  append_be64(out, cursors.read);
  return out;
}

Result<ReceiptCursors> decode_receipts(std::string_view bytes) {
  if (bytes.size() != kReceiptBytes) return corrupt("receipts", bytes.size());
  return ReceiptCursors{get_be64(bytes.substr(0, kSeqBytes)), get_be64(bytes.substr(kSeqBytes))};
}

struct KeyPart {
  std::string_view what;  // the field's name, for the error
  std::string_view value;
};

// The names joined by \0, then the big-endian seq if given. A name holding \0 would make the
// key ambiguous, and LMDB refuses keys over its limit: both are `invalid`.
Result<std::string> make_key(std::size_t max_key_bytes, std::initializer_list<KeyPart> names,
                             std::optional<Seq> seq = std::nullopt) {
  std::string key;
  bool first = true;
  for (const KeyPart& part : names) {
    if (part.value.find('\0') != std::string_view::npos)
      return make_error(ErrorCode::invalid, std::string(part.what) + ": must not contain NUL");
    if (!first) key.push_back('\0');
    first = false;
    key.append(part.value);
  }
  if (seq) {
    key.push_back('\0');
    append_be64(key, *seq);
  }
  if (key.size() > max_key_bytes)
    return make_error(ErrorCode::invalid, "key: " + std::to_string(key.size()) +
                                              " bytes is over LMDB's limit of " +
                                              std::to_string(max_key_bytes));
  return key;
}

// A log key (tenant \0 conv \0 seq) as its conversation's key and seq; an ids key (tenant \0 conv
// \0 id) as its conversation's key and id. REQUIRES: made by make_key.
std::pair<std::string_view, Seq> split_log_key(std::string_view key) {
  return {key.substr(0, key.size() - kSeqBytes - 1), get_be64(key.substr(key.size() - kSeqBytes))};
}
std::pair<std::string_view, std::string_view> split_id_key(std::string_view key) {
  const std::size_t conv_end = key.find('\0', key.find('\0') + 1);
  return {key.substr(0, conv_end), key.substr(conv_end + 1)};
}

// mdb_get, copied out: the value's bytes are only valid until the transaction ends or writes.
int get_copy(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::optional<std::string>& out) {
  MDB_val k = as_val(key);
  MDB_val v{};
  int rc = mdb_get(txn, dbi, &k, &v);
  out.reset();
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc == MDB_SUCCESS) out.emplace(as_view(v));
  return rc;
}

std::size_t os_page_size() {
  long page = ::sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<std::size_t>(page) : 4096;
}

// LMDB forbids opening one environment twice in a process (closing either handle would drop
// the other's file locks), so Open refuses a directory that a live store already holds.
class OpenDirectories {
 public:
  bool claim(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mutex_);
    return dirs_.insert(dir).second;
  }
  void release(const std::string& dir) {
    std::lock_guard<std::mutex> lock(mutex_);
    dirs_.erase(dir);
  }

 private:
  std::mutex mutex_;
  std::set<std::string> dirs_;
};

OpenDirectories& open_directories() {
  static OpenDirectories directories;
  return directories;
}

// Undoes a half-finished Open: closes the environment and releases the directory.
struct OpenRollback {
  MDB_env* env = nullptr;
  std::string dir;
  ~OpenRollback() {
    if (env) mdb_env_close(env);
    if (!dir.empty()) open_directories().release(dir);
  }
};

}  // namespace

// An MDB_txn and the shared map lock it holds for its whole life; aborts unless committed.
class LmdbLogStore::Txn {
 public:
  Txn(std::shared_lock<std::shared_mutex> lock, MDB_txn* txn)
      : lock_(std::move(lock)), txn_(txn) {}
  Txn(Txn&& other) noexcept : lock_(std::move(other.lock_)), txn_(std::exchange(other.txn_, nullptr)) {}
  Txn& operator=(Txn&&) = delete;
  // The abort runs before lock_ is released: the map may not move under a live transaction.
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }

  MDB_txn* get() const { return txn_; }
  // mdb_txn_commit frees the transaction whatever it returns.
  int commit() { return mdb_txn_commit(std::exchange(txn_, nullptr)); }

 private:
  std::shared_lock<std::shared_mutex> lock_;
  MDB_txn* txn_ = nullptr;
};

// The sub-databases by number: the Db of a write-ahead log change and the pending layer's index.
enum Db : std::uint8_t { kLog, kIds, kReceipts, kHeads, kAudit, kStaged, kDead, kMeta };
const std::string kWalAppliedKey = "wal_applied";

// The LogTxn of write(): reads see this write's own changes, then the pending layer, then the
// LMDB snapshot; writes only collect changes. Once an operation is refused the write may not
// be logged, so the first failure is remembered and write() returns it.
class LmdbLogStore::WalTxn final : public LogTxn {
 public:
  // REQUIRES: the caller holds store.pending_mutex_ (shared) for the txn's whole life.
  WalTxn(const LmdbLogStore& store, MDB_txn* snapshot) : store_(store), snapshot_(snapshot) {
    for (std::size_t db = 0; db < kDbs; ++db) changes_[db].set_ordered(ordered_db(db));
  }

  const std::optional<Error>& failure() const { return failure_; }

  // The collected changes, each key once (its last value), in key order per sub-database.
  std::vector<WalChange> take_changes() {
    std::vector<WalChange> out;
    for (std::size_t db = 0; db < kDbs; ++db)
      changes_[db].drain([&](std::string&& key, std::optional<std::string>&& value) {
        out.push_back(WalChange{static_cast<std::uint8_t>(db), std::move(key), std::move(value)});
      });
    return out;
  }

  Result<Seq> head(std::string_view tenant, std::string_view conv) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}});
    if (!key.ok()) return key.error();
    return head_at(key.value());
  }

  Result<std::optional<Seq>> find_id(std::string_view tenant, std::string_view conv,
                                     std::string_view id) override {
    auto key = make_key(store_.max_key_bytes_,
                        {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    auto value = get(kIds, key.value());
    if (!value.ok()) return value.error();
    if (!value.value()) return std::optional<Seq>();
    auto seq = decode_seq(*value.value(), "ids");
    if (!seq.ok()) return seq.error();
    return std::optional<Seq>(seq.value());
  }

  Result<std::optional<std::string>> message(std::string_view tenant, std::string_view conv,
                                             Seq seq) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}}, seq);
    if (!key.ok()) return key.error();
    return get(kLog, key.value());
  }

  Status append(std::string_view tenant, std::string_view conv, Seq seq, std::string_view id,
                std::string_view frame) override {
    const std::size_t max_key = store_.max_key_bytes_;
    auto head_key = make_key(max_key, {{"tenant", tenant}, {"conv", conv}});
    if (!head_key.ok()) return head_key.error();
    auto log_key = make_key(max_key, {{"tenant", tenant}, {"conv", conv}}, seq);
    if (!log_key.ok()) return log_key.error();
    auto id_key = make_key(max_key, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!id_key.ok()) return id_key.error();

    auto current = head_at(head_key.value());
    if (!current.ok()) return current.error();
    if (seq != current.value() + 1)
      return make_error(ErrorCode::unavailable, "store: append out of order: seq " +
                                                    std::to_string(seq) + " after head " +
                                                    std::to_string(current.value()));
    // An id indexed twice would be a broken caller, not something to paper over.
    auto indexed = get(kIds, id_key.value());
    if (!indexed.ok()) return indexed.error();
    if (indexed.value()) return refuse("store: id " + std::string(id) + " is already indexed");
    std::string seq_bytes = encode_seq(seq);
    put(kLog, std::move(log_key).value(), std::string(frame));
    put(kIds, std::move(id_key).value(), seq_bytes);
    put(kHeads, std::move(head_key).value(), std::move(seq_bytes));
    return ok_status();
  }

  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override {
    auto key = make_key(store_.max_key_bytes_,
                        {{"tenant", tenant}, {"user", user}, {"conv", conv}});
    if (!key.ok()) return key.error();
    auto value = get(kReceipts, key.value());
    if (!value.ok()) return value.error();
    if (!value.value()) return ReceiptCursors{};
    return decode_receipts(*value.value());
  }

  Status put_receipts(std::string_view tenant, std::string_view user, std::string_view conv,
                      const ReceiptCursors& cursors) override {
    auto key = make_key(store_.max_key_bytes_,
                        {{"tenant", tenant}, {"user", user}, {"conv", conv}});
    if (!key.ok()) return key.error();
    put(kReceipts, std::move(key).value(), encode_receipts(cursors));
    return ok_status();
  }

  // Records are numbered from 1 in the order they are appended: the next number is one past
  // the last key, in this write, the pending layer or LMDB.
  Status append_audit(std::string_view record) override {
    std::optional<std::string> last;
    if (!changes_[kAudit].empty()) last = changes_[kAudit].ordered().rbegin()->first;
    if (!last && !store_.pending_[kAudit].empty())
      last = store_.pending_[kAudit].ordered().rbegin()->first;
    if (!last) {
      CursorCloser closer;
      if (int rc = mdb_cursor_open(snapshot_, store_.dbis_.audit, &closer.cursor))
        return fail("mdb_cursor_open(audit)", rc);
      MDB_val k{}, v{};
      int rc = mdb_cursor_get(closer.cursor, &k, &v, MDB_LAST);
      if (rc == MDB_SUCCESS) last = std::string(as_view(k));
      else if (rc != MDB_NOTFOUND) return fail("mdb_cursor_get(audit)", rc);
    }
    std::uint64_t number = 0;
    if (last) {
      auto decoded = decode_seq(*last, "audit");
      if (!decoded.ok()) return decoded.error();
      number = decoded.value();
    }
    put(kAudit, encode_seq(number + 1), std::string(record));
    return ok_status();
  }

  Result<std::optional<std::string>> staged(std::string_view tenant, std::string_view conv,
                                            std::string_view id) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    auto value = get(kStaged, key.value());
    if (!value.ok() || !value.value()) return value;
    if (value.value()->size() < kSeqBytes) return corrupt("staged", value.value()->size());
    return std::optional<std::string>(value.value()->substr(kSeqBytes));
  }

  Status put_staged(std::string_view tenant, std::string_view conv, std::string_view id,
                    std::string_view frame) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    auto existing = get(kStaged, key.value());
    if (!existing.ok()) return existing.error();
    if (existing.value()) return refuse("store: " + std::string(id) + " is already staged");
    auto counter = get(kStaged, kStageCounterKey);
    if (!counter.ok()) return counter.error();
    std::uint64_t number = 1;
    if (counter.value()) {
      auto last = decode_seq(*counter.value(), "staged");
      if (!last.ok()) return last.error();
      number = last.value() + 1;
    }
    std::string numbered = encode_seq(number);
    put(kStaged, kStageCounterKey, numbered);
    numbered.append(frame);
    put(kStaged, std::move(key).value(), std::move(numbered));
    return ok_status();
  }

  Status erase_staged(std::string_view tenant, std::string_view conv, std::string_view id) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    changes_[kStaged][std::move(key).value()] = std::nullopt;
    return ok_status();
  }

  Status put_dead_letter(std::string_view tenant, std::string_view conv, std::string_view id,
                         std::string_view record) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    put(kDead, std::move(key).value(), std::string(record));
    return ok_status();
  }

 private:
  Error fail(std::string_view call, int rc) {
    Error error = lmdb_error(call, rc);
    if (!failure_) failure_ = error;
    return error;
  }
  Error refuse(std::string message) {
    Error error = make_error(ErrorCode::unavailable, std::move(message));
    if (!failure_) failure_ = error;
    return error;
  }

  Result<std::optional<std::string>> get(Db db, std::string_view key) {
    if (const auto* change = changes_[db].find(key)) return *change;
    auto found = store_.lookup(db, key, snapshot_);
    if (!found.ok() && !failure_) failure_ = found.error();
    return found;
  }
  void put(Db db, std::string key, std::string value) {
    changes_[db][std::move(key)] = std::move(value);
  }

  Result<Seq> head_at(const std::string& key) {
    auto value = get(kHeads, key);
    if (!value.ok()) return value.error();
    if (!value.value()) return Seq{0};
    return decode_seq(*value.value(), "heads");
  }

  const LmdbLogStore& store_;
  MDB_txn* snapshot_;
  std::array<detail::KeyTable<std::optional<std::string>>, kDbs> changes_;
  std::optional<Error> failure_;
};

// ---- opening and closing -------------------------------------------------------------

Result<std::unique_ptr<LmdbLogStore>> LmdbLogStore::Open(const std::string& dir,
                                                         const LmdbOptions& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return make_error(ErrorCode::unavailable,
                      "store: cannot create directory " + dir + ": " + ec.message());
  std::filesystem::path canonical = std::filesystem::canonical(dir, ec);
  if (ec)
    return make_error(ErrorCode::unavailable, "store: cannot resolve " + dir + ": " + ec.message());
  if (!std::filesystem::is_directory(canonical, ec))
    return make_error(ErrorCode::unavailable, "store: " + dir + " is not a directory");

  OpenRollback rollback;
  if (!open_directories().claim(canonical.string()))
    return make_error(ErrorCode::unavailable,
                      "store: " + canonical.string() + " is already open in this process");
  rollback.dir = canonical.string();

  // Map sizes in whole OS pages, as mdb_env_set_mapsize asks; the initial size within the cap.
  const std::size_t page = os_page_size();
  std::size_t cap = std::max(page, options.max_map_bytes / page * page);
  std::size_t initial = std::max(page, options.initial_map_bytes);
  initial = std::min(cap, (initial + page - 1) / page * page);

  if (int rc = mdb_env_create(&rollback.env)) return lmdb_error("mdb_env_create", rc);
  MDB_env* env = rollback.env;
  if (int rc = mdb_env_set_maxdbs(env, kNamedDatabases)) return lmdb_error("mdb_env_set_maxdbs", rc);
  if (int rc = mdb_env_set_maxreaders(env, options.max_readers))
    return lmdb_error("mdb_env_set_maxreaders", rc);
  if (int rc = mdb_env_set_mapsize(env, initial)) return lmdb_error("mdb_env_set_mapsize", rc);
  // MDB_NOTLS: a read transaction belongs to its MDB_txn, not to a thread, so the lws thread and
  // the writer thread may both read. No MDB_NOSYNC / MDB_NOMETASYNC: a commit is an fsync.
  if (int rc = mdb_env_open(env, canonical.c_str(), MDB_NOTLS, kFileMode))
    return lmdb_error("mdb_env_open(" + canonical.string() + ")", rc);

  // Reader slots left by a process that died mid-read would pin old pages forever.
  int stale_readers = 0;
  if (int rc = mdb_reader_check(env, &stale_readers)) return lmdb_error("mdb_reader_check", rc);

  // A reopened store may already hold more than `initial` (LMDB then maps exactly what is used):
  // leave room so the first write after a restart does not start with a MAP_FULL retry.
  MDB_envinfo info{};
  MDB_stat stat{};
  if (int rc = mdb_env_info(env, &info)) return lmdb_error("mdb_env_info", rc);
  if (int rc = mdb_env_stat(env, &stat)) return lmdb_error("mdb_env_stat", rc);
  const std::size_t used = (info.me_last_pgno + 1) * std::size_t{stat.ms_psize};
  const std::size_t wanted = std::max(initial, std::min(cap, used * 2));
  if (wanted > info.me_mapsize) {
    if (int rc = mdb_env_set_mapsize(env, wanted)) return lmdb_error("mdb_env_set_mapsize", rc);
  }

  // The named databases are created once, in a committed transaction, so that every later
  // transaction may use the handles.
  Dbis dbis;
  {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env, nullptr, 0, &txn)) return lmdb_error("mdb_txn_begin", rc);
    const std::tuple<const char*, MDB_dbi*, unsigned> named[] = {
        {"log", &dbis.log, 0},       {"ids", &dbis.ids, 0},       {"receipts", &dbis.receipts, 0},
        {"heads", &dbis.heads, 0},   {"audit", &dbis.audit, 0},   {"staged", &dbis.staged, 0},
        {"dead", &dbis.dead, 0},     {"meta", &dbis.meta, 0},     {"convs", &dbis.convs, 0},
        {"chunks", &dbis.chunks, 0}, {"idx", &dbis.idx, MDB_DUPSORT}};
    for (const auto& [name, dbi, flags] : named) {
      if (int rc = mdb_dbi_open(txn, name, MDB_CREATE | flags, dbi)) {
        mdb_txn_abort(txn);
        return lmdb_error(std::string("mdb_dbi_open(") + name + ")", rc);
      }
    }
    if (int rc = mdb_txn_commit(txn)) return lmdb_error("mdb_txn_commit", rc);
  }

  if (int rc = mdb_env_info(env, &info)) return lmdb_error("mdb_env_info", rc);
  std::unique_ptr<LmdbLogStore> store(
      new LmdbLogStore(canonical.string(), env, dbis, cap, info.me_mapsize, stat.ms_psize, options));
  rollback.env = nullptr;  // the store owns the environment and the directory claim now
  rollback.dir.clear();
  // The legacy move first: the log's batches follow what LMDB already holds.
  if (Status moved = store->migrate_legacy_log(); !moved.ok()) return moved.error();
  if (Status recovered = store->recover(); !recovered.ok()) return recovered.error();
  store->applier_ = std::thread([raw = store.get()] { raw->run_applier(); });
  return store;
}

// What the write-ahead log holds past LMDB's last applied batch goes into LMDB, in one durable
// transaction, before anything else runs; then the log starts over.
Status LmdbLogStore::recover() {
  std::uint64_t applied = 0;
  {
    auto begun = begin(MDB_RDONLY);
    if (!begun.ok()) return begun.error();
    Txn txn = std::move(begun).value();
    std::optional<std::string> value;
    if (int rc = get_copy(txn.get(), dbis_.meta, kWalAppliedKey, value))
      return lmdb_error("mdb_get(meta)", rc);
    if (value) {
      auto decoded = decode_seq(*value, "meta");
      if (!decoded.ok()) return decoded.error();
      applied = decoded.value();
    }
  }
  auto batches = WriteAheadLog::read(path_, applied);
  if (!batches.ok()) return batches.error();
  if (!batches.value().empty()) {
    const std::uint64_t last = batches.value().back().number;
    // Each key's last value, in key order: the state the batches leave, applied at once.
    std::array<std::map<std::string_view, const std::optional<std::string>*>, kDbs> last_values;
    for (const WalBatch& batch : batches.value())
      for (const WalChange& change : batch.changes) {
        if (change.db >= kDbs)
          return make_error(ErrorCode::unavailable,
                            "wal: change for sub-database " + std::to_string(change.db));
        last_values[change.db][change.key] = &change.value;
      }
    std::array<ChangeList, kDbs> changes;
    for (std::size_t db = 0; db < kDbs; ++db)
      for (const auto& [key, value] : last_values[db])
        changes[db].emplace_back(key, *value ? &**value : nullptr);
    Status written = write_lmdb([&](MDB_txn* txn, std::string& call) -> int {
      if (int rc = apply_changes(txn, changes, call)) return rc;
      std::string number = encode_seq(last);
      MDB_val k = as_val(kWalAppliedKey), v = as_val(number);
      call = "mdb_put(meta)";
      return mdb_put(txn, dbis_.meta, &k, &v, 0);
    });
    if (!written.ok()) return written.error();
    applied = last;
  }
  applied_ = applied;
  last_batch_ = applied;
  auto wal = WriteAheadLog::Open(path_);
  if (!wal.ok()) return wal.error();
  wal_ = std::move(wal).value();
  return ok_status();
}

LmdbLogStore::LmdbLogStore(std::string path, MDB_env* env, Dbis dbis, std::size_t max_map_bytes,
                           std::size_t map_bytes, std::size_t page_bytes,
                           const LmdbOptions& options)
    : path_(std::move(path)),
      env_(env),
      dbis_(dbis),
      max_map_bytes_(max_map_bytes),
      max_key_bytes_(static_cast<std::size_t>(mdb_env_get_maxkeysize(env))),
      chunk_bytes_(page_bytes - kPageHeaderBytes),
      map_bytes_(map_bytes),
      options_(options) {
  for (std::size_t db = 0; db < kDbs; ++db) pending_[db].set_ordered(ordered_db(db));
}

LmdbLogStore::~LmdbLogStore() {
  {
    std::lock_guard<std::mutex> lock(apply_mutex_);
    stopping_ = true;
  }
  apply_wanted_.notify_one();
  if (applier_.joinable()) applier_.join();  // its last checkpoint applies everything
  mdb_env_close(env_);
  open_directories().release(path_);
}

bool LmdbLogStore::ordered_db(std::size_t db) { return db == kLog || db == kAudit; }

MDB_dbi LmdbLogStore::dbi(std::size_t db) const {
  const MDB_dbi all[kDbs] = {dbis_.log,   dbis_.ids,    dbis_.receipts, dbis_.heads,
                             dbis_.audit, dbis_.staged, dbis_.dead,     dbis_.meta};
  return all[db];
}

// ---- transactions and the map --------------------------------------------------------

Result<LmdbLogStore::Txn> LmdbLogStore::begin(unsigned flags) {
  // Bounded: each MDB_MAP_RESIZED means another process grew the map again meanwhile.
  constexpr int kMaxResizeRetries = 8;
  for (int attempt = 0;; ++attempt) {
    std::shared_lock<std::shared_mutex> lock(map_mutex_);
    if (map_lost_)
      return make_error(ErrorCode::unavailable,
                        "store: the map was lost when a resize failed; restart the node");
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, flags, &txn);
    if (rc == MDB_SUCCESS) return Txn(std::move(lock), txn);
    lock.unlock();
    if (rc != MDB_MAP_RESIZED || attempt == kMaxResizeRetries)
      return lmdb_error("mdb_txn_begin", rc);
    if (Status adopted = adopt_resized_map(); !adopted.ok()) return adopted.error();
  }
}

// REQUIRES: map_mutex_ held exclusively (no transaction of this process is open).
Status LmdbLogStore::set_map_size_locked(std::size_t bytes) {
  if (int rc = mdb_env_set_mapsize(env_, bytes)) {
    // LMDB unmaps before it remaps: after a failure there may be no map at all, and any
    // transaction would touch unmapped memory. Refuse everything from now on.
    map_lost_ = true;
    return lmdb_error("mdb_env_set_mapsize", rc);
  }
  MDB_envinfo info{};
  if (int rc = mdb_env_info(env_, &info)) return lmdb_error("mdb_env_info", rc);
  map_bytes_ = info.me_mapsize;
  return ok_status();
}

Status LmdbLogStore::adopt_resized_map() {
  std::unique_lock<std::shared_mutex> lock(map_mutex_);
  if (map_lost_)
    return make_error(ErrorCode::unavailable,
                      "store: the map was lost when a resize failed; restart the node");
  return set_map_size_locked(0);  // 0: adopt the size another process committed
}

Status LmdbLogStore::grow_map() {
  std::unique_lock<std::shared_mutex> lock(map_mutex_);
  if (map_lost_)
    return make_error(ErrorCode::unavailable,
                      "store: the map was lost when a resize failed; restart the node");
  if (map_bytes_ >= max_map_bytes_)
    return make_error(ErrorCode::unavailable, "store full: the map reached its cap of " +
                                                  std::to_string(max_map_bytes_) + " bytes");
  const std::size_t next =
      map_bytes_ > max_map_bytes_ / 2 ? max_map_bytes_ : map_bytes_ * 2;
  const std::size_t before = map_bytes_;
  if (Status set = set_map_size_locked(next); !set.ok()) return set;
  // write() retries only after real growth, so a map that will not grow cannot spin it.
  if (map_bytes_ <= before)
    return make_error(ErrorCode::unavailable, "store full: the map did not grow past " +
                                                  std::to_string(before) + " bytes");
  return ok_status();
}

// ---- writing ---------------------------------------------------------------------------

std::optional<Error> LmdbLogStore::write_refusal() {
  std::lock_guard<std::mutex> lock(apply_mutex_);
  return apply_failure_;
}

Status LmdbLogStore::write(const std::function<Status(LogTxn&)>& body) {
  std::lock_guard<std::mutex> writer(write_mutex_);
  std::vector<WalChange> changes;
  {
    // Held while the body reads: a checkpoint drops applied entries from the pending layer only
    // after LMDB has them, and never while this snapshot could still miss them.
    std::shared_lock<std::shared_mutex> pending(pending_mutex_);
    auto begun = begin(MDB_RDONLY);
    if (!begun.ok()) return begun.error();
    Txn snapshot = std::move(begun).value();
    WalTxn txn(*this, snapshot.get());
    Status status = body(txn);
    if (!status.ok()) return status;
    // A body that swallowed a refusal must not log what was refused.
    if (txn.failure()) return *txn.failure();
    changes = txn.take_changes();
  }
  if (changes.empty()) return ok_status();  // nothing to make durable (a body that only read)
  if (std::optional<Error> refused = write_refusal()) return *refused;
  const std::uint64_t number = last_batch_ + 1;
  if (Status logged = wal_->append(number, changes); !logged.ok()) return logged;
  last_batch_ = number;
  {
    std::unique_lock<std::shared_mutex> pending(pending_mutex_);
    for (WalChange& change : changes) {
      Pending& entry = pending_[change.db][std::move(change.key)];
      entry.value = change.value ? std::make_shared<const std::string>(std::move(*change.value)) : nullptr;
      entry.batch = number;
    }
  }
  if (wal_->active_bytes() >= options_.apply_bytes) {
    {
      std::lock_guard<std::mutex> lock(apply_mutex_);
      apply_requested_ = true;
    }
    apply_wanted_.notify_one();
  }
  return ok_status();
}

Status LmdbLogStore::write_lmdb(const std::function<int(MDB_txn*, std::string& failed_call)>& apply) {
  // Each MAP_FULL doubles the map, so this ends: at the cap grow_map returns "store full".
  for (;;) {
    int rc = MDB_SUCCESS;
    std::string call;
    {
      auto begun = begin(0);
      if (!begun.ok()) return begun.error();
      Txn txn = std::move(begun).value();
      rc = apply(txn.get(), call);
      if (rc == MDB_SUCCESS) {
        call = "mdb_txn_commit";
        rc = txn.commit();
      }
    }  // aborted here unless committed, before the map lock is released
    if (rc == MDB_SUCCESS) return ok_status();
    if (rc != MDB_MAP_FULL) return lmdb_error(call, rc);
    if (Status grown = grow_map(); !grown.ok()) return grown;
  }
}

// A checkpoint: the log's batches up to the newest go into LMDB in one durable transaction,
// then leave the pending layer. The log switches files first, so writes go on meanwhile into
// the other file; a file is written again only once a checkpoint has applied all it held.
Status LmdbLogStore::checkpoint() {
  std::lock_guard<std::mutex> one_at_a_time(checkpoint_mutex_);
  std::uint64_t upto = 0;
  {
    std::lock_guard<std::mutex> writer(write_mutex_);
    upto = last_batch_;
    if (upto == applied_) return ok_status();
    // After a failed checkpoint the inactive file still holds unapplied batches: keep writing
    // the active one until a checkpoint succeeds.
    if (other_file_free_) {
      wal_->rotate();
      other_file_free_ = false;
    }
  }
  // The entries to apply, each with its value as it stands (values are shared, not copied).
  std::array<std::vector<std::pair<std::string, std::shared_ptr<const std::string>>>, kDbs> work;
  {
    std::shared_lock<std::shared_mutex> pending(pending_mutex_);
    for (std::size_t db = 0; db < kDbs; ++db)
      pending_[db].for_each([&](const std::string& key, const Pending& entry) {
        if (entry.batch <= upto) work[db].emplace_back(key, entry.value);
      });
  }
  // In key order: neighbouring keys share LMDB pages, and a conversation's log is one run.
  std::array<ChangeList, kDbs> changes;
  for (std::size_t db = 0; db < kDbs; ++db) {
    auto& entries = work[db];
    if (!std::is_sorted(entries.begin(), entries.end(),
                        [](const auto& a, const auto& b) { return a.first < b.first; }))
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    changes[db].reserve(entries.size());
    for (const auto& [key, value] : entries) changes[db].emplace_back(key, value.get());
  }
  Status written = write_lmdb([&](MDB_txn* txn, std::string& call) -> int {
    if (int rc = apply_changes(txn, changes, call)) return rc;
    std::string number = encode_seq(upto);
    MDB_val k = as_val(kWalAppliedKey), v = as_val(number);
    call = "mdb_put(meta)";
    return mdb_put(txn, dbis_.meta, &k, &v, 0);
  });
  if (!written.ok()) return written;
  {
    std::unique_lock<std::shared_mutex> pending(pending_mutex_);
    for (std::size_t db = 0; db < kDbs; ++db)
      for (const auto& [key, value] : work[db]) {
        const Pending* entry = pending_[db].find(key);
        if (entry && entry->batch <= upto) pending_[db].erase(key);
      }
  }
  applied_ = upto;
  other_file_free_ = true;
  return ok_status();
}

int LmdbLogStore::apply_changes(MDB_txn* txn, const std::array<ChangeList, kDbs>& changes,
                                std::string& call) const {
  ChunkedLog log(txn, ChunkedLogDbis{dbis_.convs, dbis_.chunks, dbis_.idx, dbis_.meta},
                 chunk_bytes_, conv_numbers_, false, call);
  // The log: each conversation's run of consecutive seqs appended at once. A value that is a
  // JSON frame comes from a write-ahead log an older edge wrote: it becomes a record here.
  {
    std::vector<std::string> converted;
    std::vector<std::string_view> run;
    std::string_view run_conv;
    Seq run_first = 0;
    auto flush = [&]() -> int {
      int rc = run.empty() ? MDB_SUCCESS : log.append(run_conv, run_first, run);
      run.clear();
      converted.clear();
      return rc;
    };
    converted.reserve(changes[kLog].size());  // the views in `run` must not move
    for (const auto& [key, value] : changes[kLog]) {
      if (!value) {
        call = "wal: a log entry erased";
        return MDB_CORRUPTED;
      }
      auto [conv_key, seq] = split_log_key(key);
      if (!run.empty() && (conv_key != run_conv || seq != run_first + run.size())) {
        if (int rc = flush()) return rc;
      }
      if (run.empty()) {
        run_conv = conv_key;
        run_first = seq;
      }
      std::string_view record = *value;
      if (!record.empty() && record.front() == '{') {
        auto made = record_from_frame(record);
        if (!made.ok()) {
          call = "log: seq " + std::to_string(seq) + ": " + made.error().message;
          return MDB_CORRUPTED;
        }
        converted.push_back(std::move(made).value());
        record = converted.back();
      }
      run.push_back(record);
    }
    if (int rc = flush()) return rc;
  }
  for (const auto& [key, value] : changes[kIds]) {
    if (!value) {
      call = "wal: an id erased";
      return MDB_CORRUPTED;
    }
    auto seq = decode_seq(*value, "ids");
    if (!seq.ok()) {
      call = seq.error().message;
      return MDB_CORRUPTED;
    }
    auto [conv_key, id] = split_id_key(key);
    if (int rc = log.index_id(conv_key, id, seq.value())) return rc;
  }
  for (std::size_t db = 0; db < kDbs; ++db) {
    if (db == kLog || db == kIds) continue;
    const MDB_dbi handle = dbi(db);
    for (const auto& [key, value] : changes[db]) {
      MDB_val k = as_val(key);
      int rc = MDB_SUCCESS;
      if (value) {
        MDB_val v = as_val(*value);
        rc = mdb_put(txn, handle, &k, &v, 0);
        call = "mdb_put";
      } else {
        rc = mdb_del(txn, handle, &k, nullptr);
        if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
        call = "mdb_del";
      }
      if (rc != MDB_SUCCESS) return rc;
    }
  }
  return MDB_SUCCESS;
}

// A store written before the chunked layout: its "log" moves into the chunks, a batch per
// durable transaction in key order, each batch erased from "log" in the transaction that
// moves it, so a move cut short resumes at the next start; the id index is rebuilt from the
// records. "ids" is emptied once "log" is.
Status LmdbLogStore::migrate_legacy_log() {
  for (;;) {
    bool more = false;
    Status written = write_lmdb([&](MDB_txn* txn, std::string& call) -> int {
      std::vector<std::pair<std::string, std::string>> moved;  // log key, frame
      {
        CursorCloser closer;
        if (int rc = mdb_cursor_open(txn, dbis_.log, &closer.cursor)) {
          call = "mdb_cursor_open(log)";
          return rc;
        }
        MDB_val k{}, v{};
        int rc = mdb_cursor_get(closer.cursor, &k, &v, MDB_FIRST);
        for (; rc == MDB_SUCCESS && moved.size() < kLegacyMoveBatch;
             rc = mdb_cursor_get(closer.cursor, &k, &v, MDB_NEXT))
          moved.emplace_back(as_view(k), as_view(v));
        if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
          call = "mdb_cursor_get(log)";
          return rc;
        }
        more = rc == MDB_SUCCESS;
      }
      // With the last of "log" moved (or none ever there), the old id index goes too.
      auto drop_ids_when_done = [&]() -> int {
        if (more) return MDB_SUCCESS;
        MDB_stat ids{};
        call = "mdb_stat(ids)";
        if (int rc = mdb_stat(txn, dbis_.ids, &ids)) return rc;
        call = "mdb_drop(ids)";
        return ids.ms_entries == 0 ? MDB_SUCCESS : mdb_drop(txn, dbis_.ids, 0);
      };
      if (moved.empty()) return drop_ids_when_done();
      std::vector<std::string> ids, seqs;
      ids.reserve(moved.size());
      seqs.reserve(moved.size());
      std::array<ChangeList, kDbs> changes;
      for (const auto& [key, frame] : moved) {
        if (key.size() <= kSeqBytes + 1) {
          call = "log: a legacy key of " + std::to_string(key.size()) + " bytes";
          return MDB_CORRUPTED;
        }
        auto [conv_key, seq] = split_log_key(key);
        auto record = record_from_frame(frame);
        if (!record.ok()) {
          call = "log: legacy seq " + std::to_string(seq) + ": " + record.error().message;
          return MDB_CORRUPTED;
        }
        auto id = record_id(record.value());
        ids.push_back(std::string(conv_key) + '\0' + std::string(id.value()));
        seqs.push_back(encode_seq(seq));
        changes[kLog].emplace_back(key, &frame);  // converted by apply_changes
      }
      for (std::size_t i = 0; i < ids.size(); ++i) changes[kIds].emplace_back(ids[i], &seqs[i]);
      if (int rc = apply_changes(txn, changes, call)) return rc;
      for (const auto& [key, frame] : moved) {
        MDB_val k = as_val(key);
        if (int rc = mdb_del(txn, dbis_.log, &k, nullptr)) {
          call = "mdb_del(log)";
          return rc;
        }
      }
      return drop_ids_when_done();
    });
    if (!written.ok()) return written;
    if (!more) return ok_status();
  }
}

void LmdbLogStore::run_applier() {
  std::unique_lock<std::mutex> lock(apply_mutex_);
  for (;;) {
    const bool failing = apply_failure_.has_value();
    apply_wanted_.wait_for(lock, failing ? std::chrono::milliseconds(1000) : options_.apply_interval,
                           [&] { return stopping_ || (apply_requested_ && !failing); });
    apply_requested_ = false;
    const bool last = stopping_;
    lock.unlock();
    Status done = checkpoint();
    lock.lock();
    if (done.ok()) {
      apply_failure_.reset();
    } else {
      apply_failure_ = done.error();
    }
    if (last) return;
  }
}

// ---- reading ---------------------------------------------------------------------------
// Every read holds pending_mutex_ shared and then takes its LMDB snapshot, so it sees each
// committed write whole: in the pending layer, in LMDB, or (just after a checkpoint) in both,
// where the pending entry wins.

Result<std::optional<std::string>> LmdbLogStore::lookup(std::size_t db, std::string_view key,
                                                        MDB_txn* txn) const {
  if (const Pending* entry = pending_[db].find(key)) {
    if (!entry->value) return std::optional<std::string>();
    return std::optional<std::string>(*entry->value);
  }
  std::optional<std::string> value;
  if (db == kLog || db == kIds) {
    std::string call;
    ChunkedLog log(txn, ChunkedLogDbis{dbis_.convs, dbis_.chunks, dbis_.idx, dbis_.meta},
                   chunk_bytes_, conv_numbers_, true, call);
    if (db == kLog) {
      auto [conv_key, seq] = split_log_key(key);
      if (int rc = log.record(conv_key, seq, value)) return lmdb_error(call, rc);
    } else {
      auto [conv_key, id] = split_id_key(key);
      std::optional<Seq> seq;
      if (int rc = log.find_id(conv_key, id, seq)) return lmdb_error(call, rc);
      if (seq) value = encode_seq(*seq);
    }
    return value;
  }
  if (int rc = get_copy(txn, dbi(db), key, value)) return lmdb_error("mdb_get", rc);
  return value;
}

Result<Seq> LmdbLogStore::head(std::string_view tenant, std::string_view conv) {
  auto key = make_key(max_key_bytes_, {{"tenant", tenant}, {"conv", conv}});
  if (!key.ok()) return key.error();
  std::shared_lock<std::shared_mutex> pending(pending_mutex_);
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  auto value = lookup(kHeads, key.value(), txn.get());
  if (!value.ok()) return value.error();
  if (!value.value()) return Seq{0};
  return decode_seq(*value.value(), "heads");
}

Result<std::vector<StoredMessage>> LmdbLogStore::read_after(std::string_view tenant,
                                                            std::string_view conv, Seq after,
                                                            std::uint32_t limit) {
  // Validate the names even when the answer is trivially empty: a bad name is always an error.
  const Seq first = after == std::numeric_limits<Seq>::max() ? after : after + 1;
  auto start = make_key(max_key_bytes_, {{"tenant", tenant}, {"conv", conv}}, first);
  if (!start.ok()) return start.error();
  std::vector<StoredMessage> out;
  if (limit == 0 || after == std::numeric_limits<Seq>::max()) return out;
  // Every key of this conversation is prefix + 8 bytes; no other conversation's key starts
  // with prefix, since names hold no \0.
  const std::string_view prefix =
      std::string_view(start.value()).substr(0, start.value().size() - kSeqBytes);
  auto in_conv = [&](std::string_view key) {
    return key.size() == prefix.size() + kSeqBytes && key.substr(0, prefix.size()) == prefix;
  };

  std::shared_lock<std::shared_mutex> pending(pending_mutex_);
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  // Up to `limit` from each layer, merged by seq (the pending one wins): the first `limit` of
  // the union are among them. The records are views into the LMDB snapshot or the pending
  // layer, both held until the frames are made below.
  std::map<Seq, std::string_view> merged;
  {
    std::string call;
    ChunkedLog log(txn.get(), ChunkedLogDbis{dbis_.convs, dbis_.chunks, dbis_.idx, dbis_.meta},
                   chunk_bytes_, conv_numbers_, true, call);
    if (int rc = log.read_after(prefix.substr(0, prefix.size() - 1), after, limit,
                                [&](Seq seq, std::string_view record) { merged.emplace(seq, record); }))
      return lmdb_error(call, rc);
  }
  std::size_t taken = 0;
  const auto& log = pending_[kLog].ordered();
  for (auto it = log.lower_bound(start.value()); it != log.end() && taken < limit && in_conv(it->first);
       ++it, ++taken) {
    const Seq seq = get_be64(std::string_view(it->first).substr(prefix.size()));
    if (it->second.value) merged[seq] = *it->second.value;
    else merged.erase(seq);
  }
  const std::string_view conv_name = conv;
  for (const auto& [seq, record] : merged) {
    if (out.size() == limit) break;
    auto frame = record_frame(record, conv_name, seq);
    if (!frame.ok())
      return make_error(ErrorCode::unavailable, "store: seq " + std::to_string(seq) + " of " +
                                                    std::string(conv) + ": " +
                                                    frame.error().message);
    out.push_back(StoredMessage{seq, std::move(frame).value()});
  }
  return out;
}

Result<ReceiptCursors> LmdbLogStore::receipts(std::string_view tenant, std::string_view user,
                                              std::string_view conv) {
  auto key = make_key(max_key_bytes_, {{"tenant", tenant}, {"user", user}, {"conv", conv}});
  if (!key.ok()) return key.error();
  std::shared_lock<std::shared_mutex> pending(pending_mutex_);
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  auto value = lookup(kReceipts, key.value(), txn.get());
  if (!value.ok()) return value.error();
  if (!value.value()) return ReceiptCursors{};
  return decode_receipts(*value.value());
}

Result<std::vector<StagedMessage>> LmdbLogStore::staged_messages() {
  std::shared_lock<std::shared_mutex> pending(pending_mutex_);
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  std::map<std::string_view, std::string_view> merged;
  {
    CursorCloser closer;  // after txn: closed first
    if (int rc = mdb_cursor_open(txn.get(), dbis_.staged, &closer.cursor))
      return lmdb_error("mdb_cursor_open(staged)", rc);
    MDB_val key{}, data{};
    int rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_FIRST);
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_NEXT))
      merged.emplace(as_view(key), as_view(data));
    if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get(staged)", rc);
  }
  pending_[kStaged].for_each([&](const std::string& key, const Pending& entry) {
    if (entry.value) merged[key] = *entry.value;
    else merged.erase(key);
  });
  std::vector<std::pair<std::uint64_t, StagedMessage>> numbered;
  for (const auto& [k, v] : merged) {
    if (k == kStageCounterKey) continue;
    if (v.size() < kSeqBytes) return corrupt("staged", v.size());
    // tenant \0 conv \0 id
    std::size_t first = k.find('\0'), second = first == std::string_view::npos ? first : k.find('\0', first + 1);
    if (second == std::string_view::npos) return corrupt("staged key", k.size());
    numbered.push_back({get_be64(v.substr(0, kSeqBytes)),
                        StagedMessage{std::string(k.substr(0, first)),
                                      std::string(k.substr(first + 1, second - first - 1)),
                                      std::string(k.substr(second + 1)),
                                      std::string(v.substr(kSeqBytes))}});
  }
  std::sort(numbered.begin(), numbered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<StagedMessage> out;
  out.reserve(numbered.size());
  for (auto& entry : numbered) out.push_back(std::move(entry.second));
  return out;
}

// ---- housekeeping ----------------------------------------------------------------------

Result<std::uint64_t> LmdbLogStore::size_bytes() {
  std::shared_lock<std::shared_mutex> lock(map_mutex_);
  if (map_lost_) return make_error(ErrorCode::unavailable, "store: the map was lost");
  MDB_envinfo info{};
  MDB_stat stat{};
  if (int rc = mdb_env_info(env_, &info)) return lmdb_error("mdb_env_info", rc);
  if (int rc = mdb_env_stat(env_, &stat)) return lmdb_error("mdb_env_stat", rc);
  return static_cast<std::uint64_t>(info.me_last_pgno + 1) * stat.ms_psize;
}

Result<std::uint64_t> LmdbLogStore::map_size_bytes() {
  std::shared_lock<std::shared_mutex> lock(map_mutex_);
  if (map_lost_) return make_error(ErrorCode::unavailable, "store: the map was lost");
  return static_cast<std::uint64_t>(map_bytes_);
}

Status LmdbLogStore::sync() { return checkpoint(); }

// ---- the audit log, read-only ------------------------------------------------------------

Status read_audit_log(const std::string& dir,
                      const std::function<void(std::uint64_t number, std::string_view record)>& each) {
  MDB_env* env = nullptr;
  if (int rc = mdb_env_create(&env)) return lmdb_error("mdb_env_create", rc);
  std::unique_ptr<MDB_env, decltype(&mdb_env_close)> owned(env, &mdb_env_close);
  if (int rc = mdb_env_set_maxdbs(env, kNamedDatabases)) return lmdb_error("mdb_env_set_maxdbs", rc);
  if (int rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOTLS, kFileMode))
    return lmdb_error("mdb_env_open(" + dir + ")", rc);
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn)) return lmdb_error("mdb_txn_begin", rc);
  std::unique_ptr<MDB_txn, decltype(&mdb_txn_abort)> owned_txn(txn, &mdb_txn_abort);
  // The records in LMDB, then those a running edge has in its write-ahead log only.
  std::map<std::uint64_t, std::string> records;
  std::uint64_t applied = 0;
  MDB_dbi meta = 0;
  if (mdb_dbi_open(txn, "meta", 0, &meta) == MDB_SUCCESS) {
    std::optional<std::string> value;
    if (int rc = get_copy(txn, meta, kWalAppliedKey, value)) return lmdb_error("mdb_get(meta)", rc);
    if (value) {
      auto decoded = decode_seq(*value, "meta");
      if (!decoded.ok()) return decoded.error();
      applied = decoded.value();
    }
  }
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn, "audit", 0, &dbi);
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_error("mdb_dbi_open(audit)", rc);
  if (rc == MDB_SUCCESS) {
    MDB_cursor* cursor = nullptr;
    if ((rc = mdb_cursor_open(txn, dbi, &cursor))) return lmdb_error("mdb_cursor_open(audit)", rc);
    std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> owned_cursor(cursor, &mdb_cursor_close);
    MDB_val k{}, v{};
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      auto number = decode_seq(as_view(k), "audit");
      if (!number.ok()) return number.error();
      records[number.value()] = std::string(as_view(v));
    }
    if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get(audit)", rc);
  }
  auto logged = WriteAheadLog::read(dir, applied);
  if (!logged.ok()) return logged.error();
  for (const WalBatch& batch : logged.value())
    for (const WalChange& change : batch.changes)
      if (change.db == kAudit && change.value) {
        auto number = decode_seq(change.key, "audit");
        if (!number.ok()) return number.error();
        records[number.value()] = *change.value;
      }
  for (const auto& [number, record] : records) each(number, record);
  return ok_status();
}

}  // namespace waymark::edge
