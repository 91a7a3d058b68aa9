// The edge's write rules as pure logic over a LogTxn: sequencing (dense seqs), idempotency
// (one (conv, id) is stored once; a repeat learns the original seq), and receipt monotonicity.
// The edge's writer thread calls commit_batch for each group commit; tests call it directly on
// a MemoryLogStore. Pure functions over the given store; the caller's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "waymark/audit.h"
#include "waymark/error.h"
#include "waymark/frames.h"
#include "waymark/log_store.h"

namespace waymark {

struct AppendRequest {
  std::string tenant;
  Msg msg;  // everything but seq, which the batch assigns
  // A relaying edge: stage it (idempotent on (tenant, conv, id), against the staged sends and
  // the sequenced log alike) instead of sequencing it; the root sequences it.
  bool stage = false;
};

// A relaying edge: a msg its upstream sequenced (seq set), appended to the local log at that
// seq, and its staged copy, if any, erased. A seq at or below the head is already here.
struct ReplicateRequest {
  std::string tenant;
  Msg msg;
};

// A relaying edge: the root refused a staged send for good; it moves to the dead letters.
struct DeadLetterRequest {
  std::string tenant, conv, id;
  Error reason;
  TimeMs ts = 0;
};

struct ReceiptRequest {
  std::string tenant;
  std::string user;
  std::string conv;
  Seq seq = 0;
  ReceiptKind kind = ReceiptKind::read;
};

struct AuditRequest {  // appended to the audit log; ticket 0: nobody waits for it
  AuditRecord record;
};

struct WriteRequest {
  std::uint64_t ticket = 0;  // the caller's, handed back in the outcome
  std::variant<AppendRequest, ReceiptRequest, AuditRequest, ReplicateRequest, DeadLetterRequest> op;
};

struct AppendOutcome {
  Seq seq = 0;  // 0: staged (a relay's send, or a repeat of one not yet sequenced)
  TimeMs ts = 0;
  std::optional<std::string> trace;
  bool dup = false;
  std::shared_ptr<const std::string> frame;  // the stored msg frame; null for a dup
  std::optional<Msg> staged;  // a new stage: the msg as staged, for the relay's upstream link
};

struct ReceiptOutcome {
  bool advanced = false;      // false: not past the stored cursor, nothing to fan out
  ReceiptCursors cursors;     // after the write
};

struct AuditOutcome {};

struct ReplicateOutcome {
  bool stored = false;   // false: the log had this seq already
  bool was_staged = false;  // it was one of this node's staged sends
  std::shared_ptr<const std::string> frame;  // the stored msg frame; null when not stored
};

struct DeadLetterOutcome {
  bool found = false;    // false: it was not staged (sequenced meanwhile, or already dead)
  std::string from;      // the sender, from the staged frame
};

// Error: refused, e.g. seq > head
using WriteResult = std::variant<AppendOutcome, ReceiptOutcome, AuditOutcome, ReplicateOutcome,
                                 DeadLetterOutcome, Error>;

struct WriteOutcome {
  std::uint64_t ticket = 0;
  WriteResult result;
};

// Applies the requests in order inside txn. A store error fails the whole batch (the caller
// aborts the transaction: nothing of it is stored, nothing may be acked).
Result<std::vector<WriteOutcome>> apply_writes(LogTxn& txn,
                                               const std::vector<WriteRequest>& requests);

// apply_writes inside one store.write(): the whole group commit.
Result<std::vector<WriteOutcome>> commit_batch(LogStore& store,
                                               const std::vector<WriteRequest>& requests);

// The stored form of a message: its msg frame.
std::string stored_frame(const Msg& msg);

}  // namespace waymark
