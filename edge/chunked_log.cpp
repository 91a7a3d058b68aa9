// ChunkedLog: the log's layout in LMDB (chunked_log.h).
#include "chunked_log.h"

#include <vector>

#include "lmdb_bytes.h"
#include "waymark/varint.h"

namespace waymark::edge {
namespace {

constexpr std::size_t kNumberBytes = kBe64Bytes;
constexpr std::size_t kChunkKeyBytes = 2 * kNumberBytes;
const std::string kNextConvKey = "next_conv";

// A chunk's records in order; a chunk that does not parse stops the walk with `broken`.
class ChunkWalk {
 public:
  explicit ChunkWalk(std::string_view bytes) : bytes_(bytes) {}
  // The next record, or false at the end (or when broken()).
  bool next(std::string_view& record) {
    if (at_ == bytes_.size()) return false;
    std::uint64_t size = 0;
    if (!read_varint(bytes_, at_, size) || size == 0 || size > bytes_.size() - at_) return fail();
    record = bytes_.substr(at_, static_cast<std::size_t>(size));
    at_ += static_cast<std::size_t>(size);
    return true;
  }
  bool broken() const { return broken_; }

 private:
  bool fail() {
    broken_ = true;
    return false;
  }
  std::string_view bytes_;
  std::size_t at_ = 0;
  bool broken_ = false;
};

struct ChunkKey {
  char bytes[kChunkKeyBytes];
  ChunkKey(std::uint64_t number, Seq first) {
    put_be64(bytes, number);
    put_be64(bytes + kNumberBytes, first);
  }
};

}  // namespace

int ChunkedLog::conv_number(std::string_view conv_key, std::optional<std::uint64_t>& out) {
  out = known_.find(conv_key);
  if (out) return MDB_SUCCESS;
  MDB_val k = as_val(conv_key.data(), conv_key.size()), v{};
  int rc = mdb_get(txn_, dbis_.convs, &k, &v);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) {
    call_ = "mdb_get(convs)";
    return rc;
  }
  if (v.mv_size != kNumberBytes) {
    call_ = "convs: a number of " + std::to_string(v.mv_size) + " bytes";
    return MDB_CORRUPTED;
  }
  out = get_be64(static_cast<const char*>(v.mv_data));
  if (read_only_) known_.remember(conv_key, *out);
  return MDB_SUCCESS;
}

int ChunkedLog::open_conv(std::string_view conv_key, MDB_dbi dbi, const char* name,
                          std::optional<std::uint64_t>& number, CursorCloser& cursor) {
  if (int rc = conv_number(conv_key, number); rc || !number) return rc;
  if (int rc = mdb_cursor_open(txn_, dbi, &cursor.cursor)) {
    call_ = std::string("mdb_cursor_open(") + name + ")";
    return rc;
  }
  return MDB_SUCCESS;
}

int ChunkedLog::assign_number(std::string_view conv_key, std::uint64_t& out) {
  std::optional<std::uint64_t> known;
  if (int rc = conv_number(conv_key, known)) return rc;
  if (known) {
    out = *known;
    return MDB_SUCCESS;
  }
  MDB_val k = as_val(kNextConvKey.data(), kNextConvKey.size()), v{};
  int rc = mdb_get(txn_, dbis_.meta, &k, &v);
  std::uint64_t next = 1;
  if (rc == MDB_SUCCESS) {
    if (v.mv_size != kNumberBytes) {
      call_ = "meta: next_conv of " + std::to_string(v.mv_size) + " bytes";
      return MDB_CORRUPTED;
    }
    next = get_be64(static_cast<const char*>(v.mv_data));
  } else if (rc != MDB_NOTFOUND) {
    call_ = "mdb_get(meta)";
    return rc;
  }
  char number[kNumberBytes], following[kNumberBytes];
  put_be64(number, next);
  put_be64(following, next + 1);
  MDB_val nv = as_val(following, kNumberBytes);
  if ((rc = mdb_put(txn_, dbis_.meta, &k, &nv, 0))) {
    call_ = "mdb_put(meta)";
    return rc;
  }
  MDB_val ck = as_val(conv_key.data(), conv_key.size()), cv = as_val(number, kNumberBytes);
  if ((rc = mdb_put(txn_, dbis_.convs, &ck, &cv, 0))) {
    call_ = "mdb_put(convs)";
    return rc;
  }
  out = next;
  return MDB_SUCCESS;
}

// The chunk with the greatest first seq <= seq in conversation `number`.
int ChunkedLog::chunk_at(MDB_cursor* cursor, std::uint64_t number, Seq seq, Seq& first,
                         std::string_view& bytes) {
  ChunkKey wanted(number, seq);
  MDB_val k = as_val(wanted.bytes, kChunkKeyBytes), v{};
  int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  const bool exact = rc == MDB_SUCCESS && k.mv_size == kChunkKeyBytes &&
                     as_view(k) == std::string_view(wanted.bytes, kChunkKeyBytes);
  if (!exact) {
    if (rc == MDB_SUCCESS) rc = mdb_cursor_get(cursor, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND) rc = mdb_cursor_get(cursor, &k, &v, MDB_LAST);
  }
  if (rc != MDB_SUCCESS) {
    call_ = "mdb_cursor_get(chunks)";
    return rc;
  }
  if (k.mv_size != kChunkKeyBytes) {
    call_ = "chunks: a key of " + std::to_string(k.mv_size) + " bytes";
    return MDB_CORRUPTED;
  }
  if (get_be64(static_cast<const char*>(k.mv_data)) != number) return MDB_NOTFOUND;
  first = get_be64(static_cast<const char*>(k.mv_data) + kNumberBytes);
  bytes = as_view(v);
  return MDB_SUCCESS;
}

int ChunkedLog::record(std::string_view conv_key, Seq seq, std::optional<std::string>& out) {
  out.reset();
  std::optional<std::uint64_t> number;
  CursorCloser c;
  if (int rc = open_conv(conv_key, dbis_.chunks, "chunks", number, c); rc || !number) return rc;
  Seq first = 0;
  std::string_view bytes;
  int rc = chunk_at(c.cursor, *number, seq, first, bytes);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc) return rc;
  ChunkWalk walk(bytes);
  std::string_view found;
  for (Seq at = first; walk.next(found); ++at)
    if (at == seq) {
      out.emplace(found);
      return MDB_SUCCESS;
    }
  if (walk.broken()) {
    call_ = "chunks: a chunk that does not parse";
    return MDB_CORRUPTED;
  }
  return MDB_SUCCESS;
}

namespace {
// An index entry: the id, \0 (which no id holds, so no entry is a prefix of another's), the seq.
std::string index_entry(std::string_view id, Seq seq) {
  std::string entry(id.size() + 1 + kNumberBytes, '\0');
  id.copy(entry.data(), id.size());
  put_be64(entry.data() + id.size() + 1, seq);
  return entry;
}
}  // namespace

int ChunkedLog::find_id(std::string_view conv_key, std::string_view id, std::optional<Seq>& out) {
  out.reset();
  std::optional<std::uint64_t> number;
  CursorCloser c;
  if (int rc = open_conv(conv_key, dbis_.idx, "idx", number, c); rc || !number) return rc;
  char key[kNumberBytes];
  put_be64(key, *number);
  const std::string lowest = index_entry(id, 0);  // sorts first among the id's entries
  MDB_val k = as_val(key, kNumberBytes), v = as_val(lowest.data(), lowest.size());
  int rc = mdb_cursor_get(c.cursor, &k, &v, MDB_GET_BOTH_RANGE);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc != MDB_SUCCESS) {
    call_ = "mdb_cursor_get(idx)";
    return rc;
  }
  if (v.mv_size == lowest.size() &&
      as_view(v).substr(0, id.size() + 1) == std::string_view(lowest).substr(0, id.size() + 1))
    out = get_be64(static_cast<const char*>(v.mv_data) + id.size() + 1);
  return MDB_SUCCESS;
}

int ChunkedLog::read_after(std::string_view conv_key, Seq after, std::uint32_t limit,
                           const std::function<void(Seq, std::string_view)>& each) {
  if (limit == 0) return MDB_SUCCESS;
  std::optional<std::uint64_t> number;
  CursorCloser c;
  if (int rc = open_conv(conv_key, dbis_.chunks, "chunks", number, c); rc || !number) return rc;
  Seq first = 0;
  std::string_view bytes;
  int rc = chunk_at(c.cursor, *number, after + 1, first, bytes);
  if (rc == MDB_NOTFOUND) {  // nothing at or below after + 1: start at the conversation's first
    ChunkKey start(*number, 0);
    MDB_val k = as_val(start.bytes, kChunkKeyBytes), v{};
    rc = mdb_cursor_get(c.cursor, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
    if (rc == MDB_SUCCESS && (k.mv_size != kChunkKeyBytes ||
                              get_be64(static_cast<const char*>(k.mv_data)) != *number))
      return MDB_SUCCESS;
    if (rc == MDB_SUCCESS) {
      first = get_be64(static_cast<const char*>(k.mv_data) + kNumberBytes);
      bytes = as_view(v);
    }
  }
  std::uint32_t taken = 0;
  while (rc == MDB_SUCCESS) {
    ChunkWalk walk(bytes);
    std::string_view found;
    for (Seq at = first; walk.next(found); ++at) {
      if (at <= after) continue;
      each(at, found);
      if (++taken == limit) return MDB_SUCCESS;
    }
    if (walk.broken()) {
      call_ = "chunks: a chunk that does not parse";
      return MDB_CORRUPTED;
    }
    MDB_val k{}, v{};
    rc = mdb_cursor_get(c.cursor, &k, &v, MDB_NEXT);
    if (rc != MDB_SUCCESS) break;
    if (k.mv_size != kChunkKeyBytes || get_be64(static_cast<const char*>(k.mv_data)) != *number)
      return MDB_SUCCESS;
    first = get_be64(static_cast<const char*>(k.mv_data) + kNumberBytes);
    bytes = as_view(v);
  }
  if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
    call_ = "mdb_cursor_get(chunks)";
    return rc;
  }
  return MDB_SUCCESS;
}

int ChunkedLog::append(std::string_view conv_key, Seq first,
                       const std::vector<std::string_view>& records) {
  if (records.empty()) return MDB_SUCCESS;
  std::uint64_t number = 0;
  if (int rc = assign_number(conv_key, number)) return rc;
  CursorCloser c;
  if (int rc = mdb_cursor_open(txn_, dbis_.chunks, &c.cursor)) {
    call_ = "mdb_cursor_open(chunks)";
    return rc;
  }
  // The conversation's last chunk, extended while it has room and the seqs follow on.
  std::string chunk;
  Seq chunk_first = first;
  Seq last_first = 0;
  std::string_view last_bytes;
  int rc = chunk_at(c.cursor, number, ~Seq{0}, last_first, last_bytes);
  if (rc == MDB_SUCCESS) {
    ChunkWalk walk(last_bytes);
    std::string_view found;
    Seq next = last_first;
    while (walk.next(found)) ++next;
    if (walk.broken()) {
      call_ = "chunks: a chunk that does not parse";
      return MDB_CORRUPTED;
    }
    if (next > first) {
      call_ = "chunks: seq " + std::to_string(first) + " is already stored";
      return MDB_CORRUPTED;
    }
    if (next == first && last_bytes.size() < chunk_bytes_) {
      chunk.assign(last_bytes);
      chunk_first = last_first;
    }
  } else if (rc != MDB_NOTFOUND) {
    return rc;
  }
  auto flush = [&]() -> int {
    ChunkKey key(number, chunk_first);
    MDB_val k = as_val(key.bytes, kChunkKeyBytes), v = as_val(chunk.data(), chunk.size());
    if (int put = mdb_put(txn_, dbis_.chunks, &k, &v, 0)) {
      call_ = "mdb_put(chunks)";
      return put;
    }
    return MDB_SUCCESS;
  };
  Seq seq = first;
  for (std::string_view record : records) {
    const std::size_t adds = record.size() + 10;
    if (!chunk.empty() && chunk.size() + adds > chunk_bytes_) {
      if (int put = flush()) return put;
      chunk.clear();
      chunk_first = seq;
    }
    append_varint(chunk, record.size());
    chunk.append(record);
    ++seq;
  }
  return flush();
}

int ChunkedLog::index_id(std::string_view conv_key, std::string_view id, Seq seq) {
  std::uint64_t number = 0;
  if (int rc = assign_number(conv_key, number)) return rc;
  char key[kNumberBytes];
  put_be64(key, number);
  const std::string entry = index_entry(id, seq);
  MDB_val k = as_val(key, kNumberBytes), v = as_val(entry.data(), entry.size());
  // Ids that ascend (the SDK's do: the time first) go at the end of the conversation's entries,
  // where MDB_APPENDDUP leaves the pages they fill full; any other id is put in its place.
  int rc = mdb_put(txn_, dbis_.idx, &k, &v, MDB_APPENDDUP);
  if (rc == MDB_KEYEXIST) rc = mdb_put(txn_, dbis_.idx, &k, &v, 0);
  if (rc == MDB_KEYEXIST) rc = MDB_SUCCESS;  // this very entry is there already
  if (rc) call_ = "mdb_put(idx)";
  return rc;
}

}  // namespace waymark::edge
