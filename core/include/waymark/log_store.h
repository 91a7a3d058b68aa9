// LogStore: the edge's durable log behind an interface (leveldb's Env pattern). The LMDB
// implementation lives in edge/, the in-memory test double in tests/core/memory_log_store.h. Keys are
// (tenant, conv, seq); the idempotency index is (tenant, conv, id) -> seq; receipts are
// (tenant, user, conv); the audit log is a sequence of JSON records. Readers may be called
// from any thread; write() from one writer only.
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
  std::string frame;  // the msg frame exactly as it goes on the wire
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
};

// One write transaction: sees its own writes; nothing is visible to readers until commit.
class LogTxn {
 public:
  virtual ~LogTxn() = default;
  virtual Result<Seq> head(std::string_view tenant, std::string_view conv) = 0;
  virtual Result<std::optional<Seq>> find_id(std::string_view tenant, std::string_view conv,
                                             std::string_view id) = 0;
  virtual Result<std::optional<std::string>> message(std::string_view tenant,
                                                     std::string_view conv, Seq seq) = 0;
  // REQUIRES: seq == head(tenant, conv) + 1 and id not yet indexed; sets the head to seq.
  virtual Status append(std::string_view tenant, std::string_view conv, Seq seq,
                        std::string_view id, std::string_view frame) = 0;
  virtual Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                          std::string_view conv) = 0;
  virtual Status put_receipts(std::string_view tenant, std::string_view user,
                              std::string_view conv, const ReceiptCursors& cursors) = 0;
  // Appends one record (a JSON object) to the audit log, after every earlier one.
  virtual Status append_audit(std::string_view record) = 0;
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
