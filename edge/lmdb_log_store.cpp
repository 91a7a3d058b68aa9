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
#include <utility>

namespace waymark::edge {
namespace {

constexpr std::size_t kSeqBytes = 8;
constexpr std::size_t kReceiptBytes = 2 * kSeqBytes;
constexpr unsigned kNamedDatabases = 8;  // log, ids, receipts, heads, audit, staged, dead; room to grow
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

void put_be64(std::string& out, std::uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((value >> shift) & 0xff));
}

std::uint64_t get_be64(std::string_view bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < kSeqBytes; ++i)
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

std::string encode_seq(Seq seq) {
  std::string out;
  put_be64(out, seq);
  return out;
}

Result<Seq> decode_seq(std::string_view bytes, std::string_view what) {
  if (bytes.size() != kSeqBytes) return corrupt(what, bytes.size());
  return get_be64(bytes);
}

std::string encode_receipts(const ReceiptCursors& cursors) {
  std::string out;
  put_be64(out, cursors.delivered);
  put_be64(out, cursors.read);
  return out;
}

Result<ReceiptCursors> decode_receipts(std::string_view bytes) {
  if (bytes.size() != kReceiptBytes) return corrupt("receipts", bytes.size());
  return ReceiptCursors{get_be64(bytes.substr(0, kSeqBytes)), get_be64(bytes.substr(kSeqBytes))};
}

// LMDB never writes through a key or data MDB_val handed to it, so the const_cast is safe.
MDB_val as_val(std::string_view bytes) {
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view as_view(const MDB_val& val) {
  return {static_cast<const char*>(val.mv_data), val.mv_size};
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
    put_be64(key, *seq);
  }
  if (key.size() > max_key_bytes)
    return make_error(ErrorCode::invalid, "key: " + std::to_string(key.size()) +
                                              " bytes is over LMDB's limit of " +
                                              std::to_string(max_key_bytes));
  return key;
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

// The LogTxn over one write transaction. Once LMDB refuses an operation the transaction may
// only be aborted, so the first failure is remembered and write() never commits after it.
class LmdbLogStore::WriteTxn final : public LogTxn {
 public:
  WriteTxn(const LmdbLogStore& store, MDB_txn* txn) : store_(store), txn_(txn) {}

  bool map_full() const { return map_full_; }
  const std::optional<Error>& failure() const { return failure_; }

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
    std::optional<std::string> value;
    if (int rc = get_copy(txn_, store_.dbis_.ids, key.value(), value)) return fail("mdb_get(ids)", rc);
    if (!value) return std::optional<Seq>();
    auto seq = decode_seq(*value, "ids");
    if (!seq.ok()) return seq.error();
    return std::optional<Seq>(seq.value());
  }

  Result<std::optional<std::string>> message(std::string_view tenant, std::string_view conv,
                                             Seq seq) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}}, seq);
    if (!key.ok()) return key.error();
    std::optional<std::string> value;
    if (int rc = get_copy(txn_, store_.dbis_.log, key.value(), value)) return fail("mdb_get(log)", rc);
    return value;
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

    auto log_flags = append_flags(log_key.value());
    if (!log_flags.ok()) return log_flags.error();
    if (Status put = put_value(store_.dbis_.log, "mdb_put(log)", log_key.value(), frame,
                               log_flags.value());
        !put.ok())
      return put;
    // NOOVERWRITE: an id indexed twice would be a broken caller, not something to paper over.
    std::string seq_bytes = encode_seq(seq);
    if (Status put = put_value(store_.dbis_.ids, "mdb_put(ids)", id_key.value(), seq_bytes,
                               MDB_NOOVERWRITE);
        !put.ok())
      return put;
    return put_value(store_.dbis_.heads, "mdb_put(heads)", head_key.value(), seq_bytes, 0);
  }

  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override {
    auto key = make_key(store_.max_key_bytes_,
                        {{"tenant", tenant}, {"user", user}, {"conv", conv}});
    if (!key.ok()) return key.error();
    std::optional<std::string> value;
    if (int rc = get_copy(txn_, store_.dbis_.receipts, key.value(), value))
      return fail("mdb_get(receipts)", rc);
    if (!value) return ReceiptCursors{};
    return decode_receipts(*value);
  }

  Status put_receipts(std::string_view tenant, std::string_view user, std::string_view conv,
                      const ReceiptCursors& cursors) override {
    auto key = make_key(store_.max_key_bytes_,
                        {{"tenant", tenant}, {"user", user}, {"conv", conv}});
    if (!key.ok()) return key.error();
    return put_value(store_.dbis_.receipts, "mdb_put(receipts)", key.value(),
                     encode_receipts(cursors), 0);
  }

  // Records are numbered from 1 in the order they are appended: the next number is one past
  // the last key (MDB_APPEND: keys only grow).
  Status append_audit(std::string_view record) override {
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(txn_, store_.dbis_.audit, &cursor)) return fail("mdb_cursor_open(audit)", rc);
    MDB_val k{}, v{};
    int rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
    mdb_cursor_close(cursor);
    std::uint64_t last = 0;
    if (rc == MDB_SUCCESS) {
      auto decoded = decode_seq(std::string_view(static_cast<const char*>(k.mv_data), k.mv_size), "audit");
      if (!decoded.ok()) return decoded.error();
      last = decoded.value();
    } else if (rc != MDB_NOTFOUND) {
      return fail("mdb_cursor_get(audit)", rc);
    }
    return put_value(store_.dbis_.audit, "mdb_put(audit)", encode_seq(last + 1), record, MDB_APPEND);
  }

  Result<std::optional<std::string>> staged(std::string_view tenant, std::string_view conv,
                                            std::string_view id) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    std::optional<std::string> value;
    if (int rc = get_copy(txn_, store_.dbis_.staged, key.value(), value)) return fail("mdb_get(staged)", rc);
    if (!value) return value;
    if (value->size() < kSeqBytes) return corrupt("staged", value->size());
    return std::optional<std::string>(value->substr(kSeqBytes));
  }

  Status put_staged(std::string_view tenant, std::string_view conv, std::string_view id,
                    std::string_view frame) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    std::optional<std::string> counter;
    if (int rc = get_copy(txn_, store_.dbis_.staged, kStageCounterKey, counter))
      return fail("mdb_get(staged)", rc);
    std::uint64_t number = 1;
    if (counter) {
      auto last = decode_seq(*counter, "staged");
      if (!last.ok()) return last.error();
      number = last.value() + 1;
    }
    std::string numbered = encode_seq(number);
    if (Status put = put_value(store_.dbis_.staged, "mdb_put(staged)", kStageCounterKey, numbered, 0);
        !put.ok())
      return put;
    numbered.append(frame);
    return put_value(store_.dbis_.staged, "mdb_put(staged)", key.value(), numbered, MDB_NOOVERWRITE);
  }

  Status erase_staged(std::string_view tenant, std::string_view conv, std::string_view id) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    MDB_val k = as_val(key.value());
    int rc = mdb_del(txn_, store_.dbis_.staged, &k, nullptr);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return fail("mdb_del(staged)", rc);
    return ok_status();
  }

  Status put_dead_letter(std::string_view tenant, std::string_view conv, std::string_view id,
                         std::string_view record) override {
    auto key = make_key(store_.max_key_bytes_, {{"tenant", tenant}, {"conv", conv}, {"id", id}});
    if (!key.ok()) return key.error();
    return put_value(store_.dbis_.dead, "mdb_put(dead)", key.value(), record, 0);
  }

 private:
  Error fail(std::string_view call, int rc) {
    if (rc == MDB_MAP_FULL) map_full_ = true;
    Error error = lmdb_error(call, rc);
    if (!failure_) failure_ = error;
    return error;
  }

  Result<Seq> head_at(const std::string& key) {
    std::optional<std::string> value;
    if (int rc = get_copy(txn_, store_.dbis_.heads, key, value)) return fail("mdb_get(heads)", rc);
    if (!value) return Seq{0};
    return decode_seq(*value, "heads");
  }

  Status put_value(MDB_dbi dbi, std::string_view call, std::string_view key,
                   std::string_view data, unsigned flags) {
    MDB_val k = as_val(key);
    MDB_val v = as_val(data);
    if (int rc = mdb_put(txn_, dbi, &k, &v, flags)) return fail(call, rc);
    return ok_status();
  }

  // MDB_APPEND (which fills pages instead of splitting them in half) is valid only for a key
  // above every key in the DB. One conversation's keys ascend, but conversations interleave,
  // so it applies only when this conversation sorts last; otherwise a plain, checked put.
  Result<unsigned> append_flags(std::string_view key) {
    CursorCloser closer;
    if (int rc = mdb_cursor_open(txn_, store_.dbis_.log, &closer.cursor))
      return fail("mdb_cursor_open(log)", rc);
    MDB_val last_key{};
    MDB_val last_data{};
    int rc = mdb_cursor_get(closer.cursor, &last_key, &last_data, MDB_LAST);
    if (rc == MDB_NOTFOUND) return unsigned{MDB_APPEND};
    if (rc != MDB_SUCCESS) return fail("mdb_cursor_get(log, MDB_LAST)", rc);
    MDB_val new_key = as_val(key);
    return mdb_cmp(txn_, store_.dbis_.log, &new_key, &last_key) > 0 ? unsigned{MDB_APPEND}
                                                                     : unsigned{MDB_NOOVERWRITE};
  }

  const LmdbLogStore& store_;
  MDB_txn* txn_;
  bool map_full_ = false;
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
    const std::pair<const char*, MDB_dbi*> named[] = {
        {"log", &dbis.log},     {"ids", &dbis.ids},     {"receipts", &dbis.receipts},
        {"heads", &dbis.heads}, {"audit", &dbis.audit}, {"staged", &dbis.staged},
        {"dead", &dbis.dead}};
    for (const auto& [name, dbi] : named) {
      if (int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi)) {
        mdb_txn_abort(txn);
        return lmdb_error(std::string("mdb_dbi_open(") + name + ")", rc);
      }
    }
    if (int rc = mdb_txn_commit(txn)) return lmdb_error("mdb_txn_commit", rc);
  }

  if (int rc = mdb_env_info(env, &info)) return lmdb_error("mdb_env_info", rc);
  std::unique_ptr<LmdbLogStore> store(
      new LmdbLogStore(canonical.string(), env, dbis, cap, info.me_mapsize));
  rollback.env = nullptr;  // the store owns the environment and the directory claim now
  rollback.dir.clear();
  return store;
}

LmdbLogStore::LmdbLogStore(std::string path, MDB_env* env, Dbis dbis, std::size_t max_map_bytes,
                           std::size_t map_bytes)
    : path_(std::move(path)),
      env_(env),
      dbis_(dbis),
      max_map_bytes_(max_map_bytes),
      max_key_bytes_(static_cast<std::size_t>(mdb_env_get_maxkeysize(env))),
      map_bytes_(map_bytes) {}

LmdbLogStore::~LmdbLogStore() {
  mdb_env_close(env_);
  open_directories().release(path_);
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

Status LmdbLogStore::write(const std::function<Status(LogTxn&)>& body) {
  std::lock_guard<std::mutex> writer(write_mutex_);
  // Each MAP_FULL doubles the map, so this ends: at the cap grow_map returns "store full".
  for (;;) {
    bool map_full = false;
    Status status = attempt_write(body, map_full);
    if (!map_full) return status;
    if (Status grown = grow_map(); !grown.ok()) return grown;
  }
}

Status LmdbLogStore::attempt_write(const std::function<Status(LogTxn&)>& body, bool& map_full) {
  auto begun = begin(0);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  WriteTxn log_txn(*this, txn.get());
  Status status = body(log_txn);
  // Every early return below aborts txn (~Txn) before the map lock is released.
  if (log_txn.map_full()) {
    map_full = true;
    return *log_txn.failure();
  }
  if (!status.ok()) return status;
  // A body that swallowed an LMDB error must not commit what LMDB has refused.
  if (log_txn.failure()) return *log_txn.failure();
  int rc = txn.commit();
  if (rc == MDB_MAP_FULL) map_full = true;  // the commit's own pages (free list) did not fit
  if (rc != MDB_SUCCESS) return lmdb_error("mdb_txn_commit", rc);
  return ok_status();
}

// ---- reading ---------------------------------------------------------------------------

Result<Seq> LmdbLogStore::head(std::string_view tenant, std::string_view conv) {
  auto key = make_key(max_key_bytes_, {{"tenant", tenant}, {"conv", conv}});
  if (!key.ok()) return key.error();
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  std::optional<std::string> value;
  if (int rc = get_copy(txn.get(), dbis_.heads, key.value(), value))
    return lmdb_error("mdb_get(heads)", rc);
  if (!value) return Seq{0};
  return decode_seq(*value, "heads");
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

  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  CursorCloser closer;  // after txn: closed first
  if (int rc = mdb_cursor_open(txn.get(), dbis_.log, &closer.cursor))
    return lmdb_error("mdb_cursor_open(log)", rc);
  MDB_val key = as_val(start.value());
  MDB_val data{};
  int rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_SET_RANGE);
  while (rc == MDB_SUCCESS && out.size() < limit) {
    std::string_view found = as_view(key);
    if (found.size() != prefix.size() + kSeqBytes || found.substr(0, prefix.size()) != prefix)
      break;
    out.push_back(StoredMessage{get_be64(found.substr(prefix.size())), std::string(as_view(data))});
    rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_NEXT);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get(log)", rc);
  return out;
}

Result<ReceiptCursors> LmdbLogStore::receipts(std::string_view tenant, std::string_view user,
                                              std::string_view conv) {
  auto key = make_key(max_key_bytes_, {{"tenant", tenant}, {"user", user}, {"conv", conv}});
  if (!key.ok()) return key.error();
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  std::optional<std::string> value;
  if (int rc = get_copy(txn.get(), dbis_.receipts, key.value(), value))
    return lmdb_error("mdb_get(receipts)", rc);
  if (!value) return ReceiptCursors{};
  return decode_receipts(*value);
}

Result<std::vector<StagedMessage>> LmdbLogStore::staged_messages() {
  auto begun = begin(MDB_RDONLY);
  if (!begun.ok()) return begun.error();
  Txn txn = std::move(begun).value();
  CursorCloser closer;  // after txn: closed first
  if (int rc = mdb_cursor_open(txn.get(), dbis_.staged, &closer.cursor))
    return lmdb_error("mdb_cursor_open(staged)", rc);
  std::vector<std::pair<std::uint64_t, StagedMessage>> numbered;
  MDB_val key{}, data{};
  int rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_FIRST);
  for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(closer.cursor, &key, &data, MDB_NEXT)) {
    std::string_view k = as_view(key), v = as_view(data);
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
  if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get(staged)", rc);
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

Status LmdbLogStore::sync() {
  std::shared_lock<std::shared_mutex> lock(map_mutex_);
  if (map_lost_) return make_error(ErrorCode::unavailable, "store: the map was lost");
  if (int rc = mdb_env_sync(env_, 1)) return lmdb_error("mdb_env_sync", rc);
  return ok_status();
}

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
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn, "audit", 0, &dbi);
  if (rc == MDB_NOTFOUND) return ok_status();
  if (rc) return lmdb_error("mdb_dbi_open(audit)", rc);
  MDB_cursor* cursor = nullptr;
  if ((rc = mdb_cursor_open(txn, dbi, &cursor))) return lmdb_error("mdb_cursor_open(audit)", rc);
  std::unique_ptr<MDB_cursor, decltype(&mdb_cursor_close)> owned_cursor(cursor, &mdb_cursor_close);
  MDB_val k{}, v{};
  for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    auto number = decode_seq(std::string_view(static_cast<const char*>(k.mv_data), k.mv_size), "audit");
    if (!number.ok()) return number.error();
    each(number.value(), std::string_view(static_cast<const char*>(v.mv_data), v.mv_size));
  }
  if (rc != MDB_NOTFOUND) return lmdb_error("mdb_cursor_get(audit)", rc);
  return ok_status();
}

}  // namespace waymark::edge
