// Sequencing, idempotency and receipt monotonicity: the edge's write rules, once.
#include "waymark/write_batch.h"

#include "json_read.h"
#include "json_write.h"
#include "waymark/codec.h"
#include "waymark/stored_record.h"

namespace waymark {
namespace {

// A stored frame's ts, trace and from, for a repeat's ack and a dead letter's sender.
struct FrameFacts {
  TimeMs ts = 0;
  std::optional<std::string> trace;
  std::string from;
};
FrameFacts facts_of(const std::optional<std::string>& stored) {
  FrameFacts facts;
  if (!stored) return facts;
  JsonChecked frame = check_json(*stored, std::size_t(-1));
  if (frame.error || !frame.value.is_object()) return facts;
  const JsonView& o = frame.value;
  if (auto ts = o.find("ts"); ts && ts->is_int64()) facts.ts = ts->get_int64();
  if (auto trace = o.find("trace"); trace && trace->is_string()) facts.trace = trace->get_string();
  if (auto from = o.find("from"); from && from->is_string()) facts.from = from->get_string();
  return facts;
}

// A repeat of a staged id: seq 0, the ts and trace from the staged frame.
AppendOutcome staged_duplicate(const std::optional<std::string>& staged) {
  AppendOutcome outcome;
  outcome.seq = 0;
  outcome.dup = true;
  FrameFacts facts = facts_of(staged);
  outcome.ts = facts.ts;
  outcome.trace = std::move(facts.trace);
  return outcome;
}

// A repeat of a logged id: the original seq, ts and trace from its record.
Result<AppendOutcome> logged_duplicate(const std::optional<std::string>& record,
                                       std::string_view conv, Seq seq) {
  AppendOutcome outcome;
  outcome.seq = seq;
  outcome.dup = true;
  if (!record) return outcome;
  auto stored = decode_record(*record, conv, seq);
  if (!stored.ok())
    return make_error(ErrorCode::unavailable, "store: seq " + std::to_string(seq) + " of " +
                                                  std::string(conv) + ": " +
                                                  stored.error().message);
  outcome.ts = stored.value().ts;
  outcome.trace = std::move(stored.value().trace);
  return outcome;
}

Result<AppendOutcome> apply_append(LogTxn& txn, const AppendRequest& request) {
  const Msg& msg = request.msg;
  auto existing = txn.find_id(request.tenant, msg.conv, msg.id);
  if (!existing.ok()) return existing.error();
  if (existing.value()) {
    auto stored = txn.message(request.tenant, msg.conv, *existing.value());
    if (!stored.ok()) return stored.error();
    return logged_duplicate(stored.value(), msg.conv, *existing.value());
  }
  if (request.stage) {
    auto staged = txn.staged(request.tenant, msg.conv, msg.id);
    if (!staged.ok()) return staged.error();
    if (staged.value()) return staged_duplicate(staged.value());
    Msg provisional = msg;
    provisional.seq.reset();
    provisional.provisional = true;
    auto frame = std::make_shared<const std::string>(stored_frame(provisional));
    Status put = txn.put_staged(request.tenant, msg.conv, msg.id, *frame);
    if (!put.ok()) return put.error();
    AppendOutcome outcome;
    outcome.ts = msg.ts;
    outcome.trace = msg.trace;
    outcome.frame = std::move(frame);
    outcome.staged = std::move(provisional);
    return outcome;
  }

  auto head = txn.head(request.tenant, msg.conv);
  if (!head.ok()) return head.error();
  Msg sequenced = msg;
  sequenced.seq = head.value() + 1;
  auto frame = std::make_shared<const std::string>(stored_frame(sequenced));
  Status appended =
      txn.append(request.tenant, msg.conv, *sequenced.seq, msg.id, encode_record(sequenced));
  if (!appended.ok()) return appended.error();

  AppendOutcome outcome;
  outcome.seq = *sequenced.seq;
  outcome.ts = msg.ts;
  outcome.trace = msg.trace;
  outcome.frame = std::move(frame);
  return outcome;
}

// Receipts only move forward; a read receipt also counts as delivered. A receipt past the
// conversation's head is refused: nobody can have read what does not exist.
Result<WriteResult> apply_receipt(
    LogTxn& txn, const ReceiptRequest& request) {
  auto head = txn.head(request.tenant, request.conv);
  if (!head.ok()) return head.error();
  if (request.seq > head.value())
    return WriteResult(make_error(
        ErrorCode::invalid, "seq: " + std::to_string(request.seq) +
                                " is past the conversation's head " +
                                std::to_string(head.value())));
  auto current = txn.receipts(request.tenant, request.user, request.conv);
  if (!current.ok()) return current.error();
  ReceiptCursors next = current.value();
  if (request.kind == ReceiptKind::read) next.read = std::max(next.read, request.seq);
  next.delivered = std::max({next.delivered, next.read, request.seq});
  ReceiptOutcome outcome;
  outcome.advanced = request.kind == ReceiptKind::read ? next.read > current.value().read
                                                       : next.delivered > current.value().delivered;
  outcome.cursors = next;
  if (!(next == current.value())) {
    Status put = txn.put_receipts(request.tenant, request.user, request.conv, next);
    if (!put.ok()) return put.error();
  }
  return WriteResult(outcome);
}

Result<WriteResult> apply_replicate(LogTxn& txn, const ReplicateRequest& request) {
  const Msg& msg = request.msg;
  if (!msg.seq) return WriteResult(make_error(ErrorCode::invalid, "replicate: msg without seq"));
  auto head = txn.head(request.tenant, msg.conv);
  if (!head.ok()) return head.error();
  ReplicateOutcome outcome;
  if (*msg.seq <= head.value()) return WriteResult(outcome);
  if (*msg.seq != head.value() + 1)
    return WriteResult(make_error(ErrorCode::unavailable,
                                  "replicate: seq " + std::to_string(*msg.seq) +
                                      " would leave a gap after head " +
                                      std::to_string(head.value())));
  auto staged = txn.staged(request.tenant, msg.conv, msg.id);
  if (!staged.ok()) return staged.error();
  if (staged.value()) {
    Status erased = txn.erase_staged(request.tenant, msg.conv, msg.id);
    if (!erased.ok()) return erased.error();
    outcome.was_staged = true;
  }
  Msg stored = msg;
  stored.provisional = false;
  auto frame = std::make_shared<const std::string>(stored_frame(stored));
  Status appended = txn.append(request.tenant, msg.conv, *msg.seq, msg.id, encode_record(stored));
  if (!appended.ok()) return appended.error();
  outcome.stored = true;
  outcome.frame = std::move(frame);
  return WriteResult(outcome);
}

Result<WriteResult> apply_dead_letter(LogTxn& txn, const DeadLetterRequest& request) {
  DeadLetterOutcome outcome;
  auto staged = txn.staged(request.tenant, request.conv, request.id);
  if (!staged.ok()) return staged.error();
  if (!staged.value()) return WriteResult(outcome);
  outcome.found = true;
  outcome.from = facts_of(staged.value()).from;
  std::string text = JsonObject(256 + staged.value()->size())
                         .str("tenant", request.tenant)
                         .str("conv", request.conv)
                         .str("id", request.id)
                         .str("code", to_string(request.reason.code))
                         .str("reason", request.reason.message)
                         .num("ts", request.ts)
                         .raw("msg", *staged.value())
                         .done();
  Status put = txn.put_dead_letter(request.tenant, request.conv, request.id, text);
  if (!put.ok()) return put.error();
  Status erased = txn.erase_staged(request.tenant, request.conv, request.id);
  if (!erased.ok()) return erased.error();
  return WriteResult(outcome);
}

}  // namespace

std::string stored_frame(const Msg& msg) { return serialize(msg); }

Result<std::vector<WriteOutcome>> apply_writes(LogTxn& txn,
                                               const std::vector<WriteRequest>& requests) {
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(requests.size());
  for (const WriteRequest& request : requests) {
    WriteOutcome outcome;
    outcome.ticket = request.ticket;
    if (const auto* append = std::get_if<AppendRequest>(&request.op)) {
      auto result = apply_append(txn, *append);
      if (!result.ok()) return result.error();
      outcome.result = std::move(result).value();
    } else if (const auto* receipt = std::get_if<ReceiptRequest>(&request.op)) {
      auto result = apply_receipt(txn, *receipt);
      if (!result.ok()) return result.error();
      outcome.result = std::move(result).value();
    } else if (const auto* replicate = std::get_if<ReplicateRequest>(&request.op)) {
      auto result = apply_replicate(txn, *replicate);
      if (!result.ok()) return result.error();
      outcome.result = std::move(result).value();
    } else if (const auto* dead = std::get_if<DeadLetterRequest>(&request.op)) {
      auto result = apply_dead_letter(txn, *dead);
      if (!result.ok()) return result.error();
      outcome.result = std::move(result).value();
    } else {
      Status stored = txn.append_audit(audit_json(std::get<AuditRequest>(request.op).record));
      if (!stored.ok()) return stored.error();
      outcome.result = AuditOutcome{};
    }
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

Result<std::vector<WriteOutcome>> commit_batch(LogStore& store,
                                               const std::vector<WriteRequest>& requests) {
  std::vector<WriteOutcome> outcomes;
  Status status = store.write([&](LogTxn& txn) -> Status {
    auto applied = apply_writes(txn, requests);
    if (!applied.ok()) return applied.error();
    outcomes = std::move(applied).value();
    return ok_status();
  });
  if (!status.ok()) return status.error();
  return outcomes;
}

}  // namespace waymark
