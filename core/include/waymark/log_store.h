// LogStore: the edge's durable log behind an interface (leveldb's Env pattern). The LMDB
// implementation lives in edge/, the in-memory test double in tests/core/memory_log_store.h. Keys
// are (tenant, conv, seq), each holding a msg's stored record (stored_record.h); the idempotency
// index is (tenant, conv, id) -> seq; receipts are (tenant, user, conv); the audit log is a
// sequence of JSON records. Readers may be called from any thread; write() from one writer only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

using Status = Result<std::monostate>;
inline Status ok_status() { return std::monostate{}; }

struct StoredMessage {
  Seq seq = 0;
  std::string frame;  // the msg frame exactly as it goes on the wire (record_frame of the record)
};

// A relaying edge's staged send: stored here, not yet sequenced by the root (docs/regions.md).
struct StagedMessage {
  std::string tenant, conv, id;
  std::string frame;  // the provisional msg frame (prov:true, no seq)
};

struct ReceiptCursors {
  Seq delivered = 0;
  Seq read = 0;
  bool operator==(const ReceiptCursors&) const = default;
};

// Reads committed state only.
class LogReader {
 public:
  virtual ~LogReader() = default;
  virtual Result<Seq> head(std::string_view tenant, std::string_view conv) = 0;
  // The messages with seq in (after, after + limit], ascending.
  virtual Result<std::vector<StoredMessage>> read_after(std::string_view tenant,
                                                        std::string_view conv, Seq after,
                                                        std::uint32_t limit) = 0;
  virtual Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                          std::string_view conv) = 0;
  // Every staged send, in the order it was staged (a relay drains them upstream in it).
  virtual Result<std::vector<StagedMessage>> staged_messages() = 0;
};

// One write transaction: sees its own writes; nothing is visible to readers until commit.
class LogTxn {
 public:
  virtual ~LogTxn() = default;
  virtual Result<Seq> head(std::string_view tenant, std::string_view conv) = 0;
  virtual Result<std::optional<Seq>> find_id(std::string_view tenant, std::string_view conv,
                                             std::string_view id) = 0;
  // The stored record (stored_record.h) of seq.
  virtual Result<std::optional<std::string>> message(std::string_view tenant,
                                                     std::string_view conv, Seq seq) = 0;
  // REQUIRES: seq == head(tenant, conv) + 1, id not yet indexed, record an encode_record of
  // the msg whose id is id; sets the head to seq.
  virtual Status append(std::string_view tenant, std::string_view conv, Seq seq,
                        std::string_view id, std::string_view record) = 0;
  virtual Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                          std::string_view conv) = 0;
  virtual Status put_receipts(std::string_view tenant, std::string_view user,
                              std::string_view conv, const ReceiptCursors& cursors) = 0;
  // Appends one record (a JSON object) to the audit log, after every earlier one.
  virtual Status append_audit(std::string_view record) = 0;

  // ---- a relaying edge's staged sends, keyed (tenant, conv, id) ----
  virtual Result<std::optional<std::string>> staged(std::string_view tenant, std::string_view conv,
                                                    std::string_view id) = 0;
  // REQUIRES: not staged yet. Places it after every staged one in staged_messages().
  virtual Status put_staged(std::string_view tenant, std::string_view conv, std::string_view id,
                            std::string_view frame) = 0;
  virtual Status erase_staged(std::string_view tenant, std::string_view conv,
                              std::string_view id) = 0;
  // Keeps what the root refused for good (record: a JSON object), where an operator finds it.
  virtual Status put_dead_letter(std::string_view tenant, std::string_view conv,
                                 std::string_view id, std::string_view record) = 0;
};

class LogStore : public LogReader {
 public:
  // Bytes of data the store holds, for the metrics (waymark_lmdb_bytes); a store that cannot
  // tell says unavailable. Any thread.
  virtual Result<std::uint64_t> size_bytes() {
    return make_error(ErrorCode::unavailable, "store: size unknown");
  }

  // Runs body in one write transaction and commits it durably if body returns ok; aborts it
  // otherwise. Returns body's error, or the commit's.
  virtual Status write(const std::function<Status(LogTxn&)>& body) = 0;
};

}  // namespace waymark
