// Sequencing, idempotency and receipt monotonicity: the edge's write rules, once.
#include "waymark/write_batch.h"

#include <boost/json.hpp>

#include "waymark/codec.h"

namespace waymark {
namespace {

// A repeat of a stored id: the original seq, ts and trace, read back from the stored frame.
Result<AppendOutcome> duplicate_outcome(LogTxn& txn, const AppendRequest& request, Seq seq) {
  AppendOutcome outcome;
  outcome.seq = seq;
  outcome.dup = true;
  auto stored = txn.message(request.tenant, request.msg.conv, seq);
  if (!stored.ok()) return stored.error();
  if (stored.value()) {
    boost::json::error_code ec;
    boost::json::value frame = boost::json::parse(*stored.value(), ec);
    if (!ec && frame.is_object()) {
      const auto& o = frame.get_object();
      if (auto ts = o.find("ts"); ts != o.end() && ts->value().is_int64())
        outcome.ts = ts->value().get_int64();
      if (auto trace = o.find("trace"); trace != o.end() && trace->value().is_string())
        outcome.trace = std::string(trace->value().get_string());
    }
  }
  return outcome;
}

Result<AppendOutcome> apply_append(LogTxn& txn, const AppendRequest& request) {
  const Msg& msg = request.msg;
  auto existing = txn.find_id(request.tenant, msg.conv, msg.id);
  if (!existing.ok()) return existing.error();
  if (existing.value()) return duplicate_outcome(txn, request, *existing.value());

  auto head = txn.head(request.tenant, msg.conv);
  if (!head.ok()) return head.error();
  Msg sequenced = msg;
  sequenced.seq = head.value() + 1;
  auto frame = std::make_shared<const std::string>(stored_frame(sequenced));
  Status appended = txn.append(request.tenant, msg.conv, *sequenced.seq, msg.id, *frame);
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

}  // namespace

std::string stored_frame(const Msg& msg) { return serialize(Frame{msg}); }

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
