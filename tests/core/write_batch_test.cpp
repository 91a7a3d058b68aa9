// write_batch_test: the edge's write rules (dense seqs, idempotent (conv, id), forward-only
// receipts) through apply_writes/commit_batch over a MemoryLogStore, and all-or-nothing commits.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "waymark/codec.h"
#include "core/memory_log_store.h"
#include "waymark/write_batch.h"

namespace json = boost::json;
using namespace waymark;

namespace {

constexpr std::string_view kTraceA = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr std::string_view kTraceB = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

WriteRequest append(std::uint64_t ticket, std::string tenant, std::string conv, std::string id,
                    TimeMs ts = 1000, std::optional<std::string> trace = std::nullopt,
                    std::optional<std::string> body = std::nullopt) {
  AppendRequest request;
  request.tenant = std::move(tenant);
  request.msg.conv = std::move(conv);
  request.msg.id = std::move(id);
  request.msg.from = "alice";
  request.msg.ts = ts;
  request.msg.cts = ts - 10;
  request.msg.trace = std::move(trace);
  request.msg.body = JsonText{body ? *body : R"({"n":)" + std::to_string(ticket) + "}"};
  return WriteRequest{ticket, std::move(request)};
}

WriteRequest receipt(std::uint64_t ticket, std::string tenant, std::string user, std::string conv,
                     Seq seq, ReceiptKind kind) {
  return WriteRequest{ticket, ReceiptRequest{std::move(tenant), std::move(user), std::move(conv), seq, kind}};
}

std::vector<WriteOutcome> commit(LogStore& store, const std::vector<WriteRequest>& requests) {
  auto result = commit_batch(store, requests);
  if (!result.ok()) FAIL("commit_batch failed: " << result.error().message);
  REQUIRE(result.value().size() == requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) CHECK(result.value()[i].ticket == requests[i].ticket);
  return std::move(result).value();
}

const AppendOutcome& as_append(const WriteOutcome& outcome) {
  const auto* append_outcome = std::get_if<AppendOutcome>(&outcome.result);
  if (!append_outcome) FAIL("ticket " << outcome.ticket << " is not an AppendOutcome");
  return *append_outcome;
}

const ReceiptOutcome& as_receipt(const WriteOutcome& outcome) {
  const auto* receipt_outcome = std::get_if<ReceiptOutcome>(&outcome.result);
  if (!receipt_outcome) FAIL("ticket " << outcome.ticket << " is not a ReceiptOutcome");
  return *receipt_outcome;
}

Seq head_of(MemoryLogStore& store, std::string_view tenant, std::string_view conv) {
  auto head = store.head(tenant, conv);
  REQUIRE(head.ok());
  return head.value();
}

std::vector<StoredMessage> read_all(MemoryLogStore& store, std::string_view tenant, std::string_view conv,
                                    Seq after = 0, std::uint32_t limit = 1000) {
  auto read = store.read_after(tenant, conv, after, limit);
  REQUIRE(read.ok());
  return std::move(read).value();
}

std::vector<Seq> seqs_of(const std::vector<StoredMessage>& messages) {
  std::vector<Seq> seqs;
  for (const auto& m : messages) seqs.push_back(m.seq);
  return seqs;
}

ReceiptCursors cursors_of(MemoryLogStore& store, std::string_view tenant, std::string_view user,
                          std::string_view conv) {
  auto cursors = store.receipts(tenant, user, conv);
  REQUIRE(cursors.ok());
  return cursors.value();
}

Msg parse_stored(const std::string& frame) {
  INFO("stored " << frame);
  auto parsed = parse_frame(frame, Direction::from_edge);
  if (!parsed.ok()) FAIL("stored frame does not parse: " << parsed.error().message);
  const Msg* msg = std::get_if<Msg>(&parsed.value());
  if (!msg) FAIL("stored frame is not a msg");
  return *msg;
}

bool same_data(const MemoryLogStore::Data& a, const MemoryLogStore::Data& b) {
  return a.log == b.log && a.ids == b.ids && a.receipts == b.receipts && a.heads == b.heads &&
         a.audit == b.audit;
}

// A LogStore over a MemoryLogStore whose transactions fail the Nth append: a disk that fills
// up in the middle of a group commit. Everything else passes through.
class FailingAppendStore final : public LogStore {
 public:
  FailingAppendStore(MemoryLogStore& inner, int fail_at_append) : inner_(inner), fail_at_(fail_at_append) {}

  Result<Seq> head(std::string_view tenant, std::string_view conv) override { return inner_.head(tenant, conv); }
  Result<std::vector<StoredMessage>> read_after(std::string_view tenant, std::string_view conv, Seq after,
                                                std::uint32_t limit) override {
    return inner_.read_after(tenant, conv, after, limit);
  }
  Result<ReceiptCursors> receipts(std::string_view tenant, std::string_view user,
                                  std::string_view conv) override {
    return inner_.receipts(tenant, user, conv);
  }
  Result<std::vector<StagedMessage>> staged_messages() override { return inner_.staged_messages(); }
  Status write(const std::function<Status(LogTxn&)>& body) override {
    return inner_.write([&](LogTxn& txn) -> Status {
      Txn failing(txn, fail_at_);
      return body(failing);
    });
  }

 private:
  class Txn final : public LogTxn {
   public:
    Txn(LogTxn& inner, int fail_at) : inner_(inner), fail_at_(fail_at) {}
    Result<Seq> head(std::string_view t, std::string_view c) override { return inner_.head(t, c); }
    Result<std::optional<Seq>> find_id(std::string_view t, std::string_view c, std::string_view id) override {
      return inner_.find_id(t, c, id);
    }
    Result<std::optional<std::string>> message(std::string_view t, std::string_view c, Seq s) override {
      return inner_.message(t, c, s);
    }
    Status append(std::string_view t, std::string_view c, Seq s, std::string_view id,
                  std::string_view frame) override {
      if (++appends_ == fail_at_) return make_error(ErrorCode::unavailable, "store: disk full");
      return inner_.append(t, c, s, id, frame);
    }
    Result<ReceiptCursors> receipts(std::string_view t, std::string_view u, std::string_view c) override {
      return inner_.receipts(t, u, c);
    }
    Status put_receipts(std::string_view t, std::string_view u, std::string_view c,
                        const ReceiptCursors& cursors) override {
      return inner_.put_receipts(t, u, c, cursors);
    }
    Status append_audit(std::string_view record) override { return inner_.append_audit(record); }
    Result<std::optional<std::string>> staged(std::string_view t, std::string_view c,
                                              std::string_view id) override {
      return inner_.staged(t, c, id);
    }
    Status put_staged(std::string_view t, std::string_view c, std::string_view id,
                      std::string_view frame) override {
      return inner_.put_staged(t, c, id, frame);
    }
    Status erase_staged(std::string_view t, std::string_view c, std::string_view id) override {
      return inner_.erase_staged(t, c, id);
    }
    Status put_dead_letter(std::string_view t, std::string_view c, std::string_view id,
                           std::string_view record) override {
      return inner_.put_dead_letter(t, c, id, record);
    }

   private:
    LogTxn& inner_;
    int fail_at_;
    int appends_ = 0;
  };

  MemoryLogStore& inner_;
  int fail_at_;
};

}  // namespace

// ---- sequencing ---------------------------------------------------------------------------

TEST_CASE("write_batch: seqs are dense from 1 per (tenant, conv), across batches", "[write_batch]") {
  MemoryLogStore store;
  CHECK(head_of(store, "t1", "ops") == 0);

  auto first = commit(store, {append(1, "t1", "ops", "a"), append(2, "t1", "ops", "b"), append(3, "t1", "ops", "c")});
  CHECK(as_append(first[0]).seq == 1);
  CHECK(as_append(first[1]).seq == 2);
  CHECK(as_append(first[2]).seq == 3);
  for (const auto& outcome : first) CHECK_FALSE(as_append(outcome).dup);

  auto second = commit(store, {append(4, "t1", "ops", "d")});
  CHECK(as_append(second[0]).seq == 4);
  auto third = commit(store, {append(5, "t1", "ops", "e"), append(6, "t1", "ops", "f")});
  CHECK(as_append(third[0]).seq == 5);
  CHECK(as_append(third[1]).seq == 6);

  CHECK(head_of(store, "t1", "ops") == 6);
  CHECK(seqs_of(read_all(store, "t1", "ops")) == std::vector<Seq>{1, 2, 3, 4, 5, 6});
  CHECK(store.commits() == 3);
}

TEST_CASE("write_batch: conversations and tenants are sequenced independently", "[write_batch]") {
  MemoryLogStore store;
  // Interleaved in one batch: each (tenant, conv) counts on its own.
  auto outcomes = commit(store, {append(1, "t1", "ops", "x"), append(2, "t1", "dev", "x"),
                                 append(3, "t2", "ops", "x"), append(4, "t1", "ops", "y"),
                                 append(5, "t2", "ops", "y"), append(6, "t1", "ops", "z"),
                                 append(7, "t1", "ops.", "x")});
  CHECK(as_append(outcomes[0]).seq == 1);
  CHECK(as_append(outcomes[1]).seq == 1);
  CHECK(as_append(outcomes[2]).seq == 1);
  CHECK(as_append(outcomes[3]).seq == 2);
  CHECK(as_append(outcomes[4]).seq == 2);
  CHECK(as_append(outcomes[5]).seq == 3);
  CHECK(as_append(outcomes[6]).seq == 1);
  // The same id in another conversation or tenant is a different message.
  for (const auto& outcome : outcomes) CHECK_FALSE(as_append(outcome).dup);

  CHECK(head_of(store, "t1", "ops") == 3);
  CHECK(head_of(store, "t1", "dev") == 1);
  CHECK(head_of(store, "t2", "ops") == 2);
  CHECK(head_of(store, "t1", "ops.") == 1);
  CHECK(head_of(store, "t2", "dev") == 0);

  auto more = commit(store, {append(8, "t2", "ops", "w"), append(9, "t1", "dev", "w")});
  CHECK(as_append(more[0]).seq == 3);
  CHECK(as_append(more[1]).seq == 2);
}

TEST_CASE("write_batch: the stored frame is the msg frame carrying its seq", "[write_batch]") {
  MemoryLogStore store;
  commit(store, {append(1, "t1", "ops", "first")});
  WriteRequest request = append(2, "t1", "ops", "01JD-x_y", 1700000000123, std::string(kTraceA),
                                std::string(R"({"text":"db failover done","tags":["é",1.5,null]})"));
  std::get<AppendRequest>(request.op).msg.seq = 99;  // the batch assigns seqs; a caller's is ignored
  auto outcomes = commit(store, {request});
  const AppendOutcome& outcome = as_append(outcomes[0]);
  CHECK(outcome.seq == 2);
  CHECK(outcome.ts == 1700000000123);
  CHECK(outcome.trace == std::optional<std::string>(std::string(kTraceA)));
  REQUIRE(outcome.frame);

  auto stored = read_all(store, "t1", "ops");
  REQUIRE(stored.size() == 2);
  CHECK(stored[1].seq == 2);
  CHECK(stored[1].frame == *outcome.frame);  // the fanned-out frame is the stored one

  Msg expected = std::get<AppendRequest>(request.op).msg;
  expected.seq = 2;
  CHECK(parse_stored(stored[1].frame) == expected);
  CHECK(stored[1].frame == stored_frame(expected));
  CHECK(stored_frame(expected) == serialize(Frame{expected}));
}

// ---- idempotency ----------------------------------------------------------------------------

TEST_CASE("write_batch: a repeated (conv, id) in a later batch is a dup with the original seq, ts, trace",
          "[write_batch]") {
  MemoryLogStore store;
  commit(store, {append(1, "t1", "ops", "a", 1000, std::string(kTraceA)), append(2, "t1", "ops", "b", 1001)});
  const MemoryLogStore::Data before = store.data();

  auto outcomes = commit(store, {append(3, "t1", "ops", "a", 5000, std::string(kTraceB),
                                        std::string(R"({"text":"a different body"})"))});
  const AppendOutcome& dup = as_append(outcomes[0]);
  CHECK(dup.dup);
  CHECK(dup.seq == 1);
  CHECK(dup.ts == 1000);
  CHECK(dup.trace == std::optional<std::string>(std::string(kTraceA)));
  CHECK_FALSE(dup.frame);  // nothing to fan out

  // Nothing stored: the log, ids, heads are exactly as before.
  CHECK(same_data(store.data(), before));
  CHECK(head_of(store, "t1", "ops") == 2);

  // A dup of a message stored without a trace reports none.
  auto untraced = commit(store, {append(4, "t1", "ops", "b", 7000, std::string(kTraceB))});
  CHECK(as_append(untraced[0]).dup);
  CHECK(as_append(untraced[0]).seq == 2);
  CHECK(as_append(untraced[0]).ts == 1001);
  CHECK_FALSE(as_append(untraced[0]).trace.has_value());

  // The next new message still gets the next seq.
  auto next = commit(store, {append(5, "t1", "ops", "c")});
  CHECK(as_append(next[0]).seq == 3);
  CHECK_FALSE(as_append(next[0]).dup);
}

TEST_CASE("write_batch: a repeated (conv, id) within one batch is a dup of the first", "[write_batch]") {
  MemoryLogStore store;
  auto outcomes = commit(store, {append(1, "t1", "ops", "a", 1000, std::string(kTraceA)),
                                 append(2, "t1", "ops", "b", 1001),
                                 append(3, "t1", "ops", "a", 1002, std::string(kTraceB)),
                                 append(4, "t1", "ops", "a", 1003)});
  CHECK(as_append(outcomes[0]).seq == 1);
  CHECK_FALSE(as_append(outcomes[0]).dup);
  CHECK(as_append(outcomes[1]).seq == 2);
  for (std::size_t i : {std::size_t{2}, std::size_t{3}}) {
    INFO("outcome " << i);
    const AppendOutcome& dup = as_append(outcomes[i]);
    CHECK(dup.dup);
    CHECK(dup.seq == 1);
    CHECK(dup.ts == 1000);
    CHECK(dup.trace == std::optional<std::string>(std::string(kTraceA)));
    CHECK_FALSE(dup.frame);
  }
  auto stored = read_all(store, "t1", "ops");
  CHECK(seqs_of(stored) == std::vector<Seq>{1, 2});
  CHECK(parse_stored(stored[0].frame).trace == std::optional<std::string>(std::string(kTraceA)));
  CHECK(store.data().ids.size() == 2);
}

// ---- receipts ---------------------------------------------------------------------------------

TEST_CASE("write_batch: receipts only move forward, and read counts as delivered", "[write_batch]") {
  MemoryLogStore store;
  std::vector<WriteRequest> five;
  for (int i = 1; i <= 5; ++i) five.push_back(append(static_cast<std::uint64_t>(i), "t1", "ops", std::string("m").append(std::to_string(i))));
  commit(store, five);

  struct Step {
    Seq seq;
    ReceiptKind kind;
    bool advanced;
    ReceiptCursors after;
  };
  const std::vector<Step> steps = {
      {2, ReceiptKind::delivered, true, {2, 0}},
      {1, ReceiptKind::delivered, false, {2, 0}},   // backwards: ignored
      {2, ReceiptKind::delivered, false, {2, 0}},   // same: nothing new
      {3, ReceiptKind::read, true, {3, 3}},         // read raises delivered too
      {3, ReceiptKind::delivered, false, {3, 3}},
      {2, ReceiptKind::read, false, {3, 3}},
      {5, ReceiptKind::delivered, true, {5, 3}},
      {4, ReceiptKind::read, true, {5, 4}},         // read below delivered: delivered stays
      {5, ReceiptKind::read, true, {5, 5}},
      {5, ReceiptKind::read, false, {5, 5}},
  };
  std::uint64_t ticket = 100;
  for (const Step& step : steps) {
    INFO("rcpt " << to_string(step.kind) << " " << step.seq);
    auto outcomes = commit(store, {receipt(++ticket, "t1", "alice", "ops", step.seq, step.kind)});
    const ReceiptOutcome& outcome = as_receipt(outcomes[0]);
    CHECK(outcome.advanced == step.advanced);
    CHECK(outcome.cursors == step.after);
    CHECK(cursors_of(store, "t1", "alice", "ops") == step.after);
  }
  // Cursors are per user, conversation and tenant.
  CHECK(cursors_of(store, "t1", "bob", "ops") == ReceiptCursors{0, 0});
  CHECK(cursors_of(store, "t2", "alice", "ops") == ReceiptCursors{0, 0});
  CHECK(cursors_of(store, "t1", "alice", "dev") == ReceiptCursors{0, 0});
}

TEST_CASE("write_batch: a read receipt after the same delivered one still advances read only",
          "[write_batch]") {
  MemoryLogStore store;
  commit(store, {append(1, "t1", "ops", "a"), append(2, "t1", "ops", "b")});
  // In one batch: later receipts see the earlier ones.
  auto outcomes = commit(store, {receipt(10, "t1", "bob", "ops", 2, ReceiptKind::read),
                                 receipt(11, "t1", "bob", "ops", 2, ReceiptKind::delivered),
                                 receipt(12, "t1", "carol", "ops", 1, ReceiptKind::delivered),
                                 receipt(13, "t1", "carol", "ops", 1, ReceiptKind::read)});
  CHECK(as_receipt(outcomes[0]).advanced);
  CHECK(as_receipt(outcomes[0]).cursors == ReceiptCursors{2, 2});
  CHECK_FALSE(as_receipt(outcomes[1]).advanced);  // read 2 already delivered 2
  CHECK(as_receipt(outcomes[2]).advanced);
  CHECK(as_receipt(outcomes[2]).cursors == ReceiptCursors{1, 0});
  CHECK(as_receipt(outcomes[3]).advanced);        // delivered 1 does not mean read 1
  CHECK(as_receipt(outcomes[3]).cursors == ReceiptCursors{1, 1});
}

TEST_CASE("write_batch: a receipt past the head is refused as invalid", "[write_batch]") {
  MemoryLogStore store;
  SECTION("an empty conversation") {
    auto outcomes = commit(store, {receipt(1, "t1", "alice", "ops", 1, ReceiptKind::read)});
    const Error* error = std::get_if<Error>(&outcomes[0].result);
    REQUIRE(error);
    CHECK(to_string(error->code) == "invalid");
    CHECK(error->message.rfind("seq:", 0) == 0);
    CHECK(store.data().receipts.empty());
  }
  SECTION("one past the head, next to accepted writes in the same batch") {
    commit(store, {append(1, "t1", "ops", "a"), append(2, "t1", "ops", "b")});
    auto outcomes = commit(store, {receipt(3, "t1", "alice", "ops", 2, ReceiptKind::delivered),
                                   receipt(4, "t1", "alice", "ops", 3, ReceiptKind::read),
                                   receipt(5, "t1", "alice", "ops", 1000, ReceiptKind::delivered),
                                   append(6, "t1", "ops", "c"),
                                   receipt(7, "t1", "alice", "ops", 3, ReceiptKind::read)});
    CHECK(as_receipt(outcomes[0]).advanced);
    for (std::size_t i : {std::size_t{1}, std::size_t{2}}) {
      INFO("outcome " << i);
      const Error* error = std::get_if<Error>(&outcomes[i].result);
      REQUIRE(error);
      CHECK(to_string(error->code) == "invalid");
      CHECK(error->message.rfind("seq:", 0) == 0);
    }
    // A refused receipt does not fail the batch: the append and the later receipt stand.
    CHECK(as_append(outcomes[3]).seq == 3);
    CHECK(as_receipt(outcomes[4]).cursors == ReceiptCursors{3, 3});
    CHECK(cursors_of(store, "t1", "alice", "ops") == ReceiptCursors{3, 3});
    CHECK(head_of(store, "t1", "ops") == 3);
  }
  SECTION("the head is per tenant") {
    commit(store, {append(1, "t1", "ops", "a")});
    auto outcomes = commit(store, {receipt(2, "t2", "alice", "ops", 1, ReceiptKind::read)});
    CHECK(std::holds_alternative<Error>(outcomes[0].result));
  }
}

// ---- all or nothing ---------------------------------------------------------------------------

TEST_CASE("write_batch: a failing store fails the batch and nothing of it is visible", "[write_batch]") {
  MemoryLogStore store;
  commit(store, {append(1, "t1", "ops", "a"), append(2, "t1", "ops", "b"),
                 receipt(3, "t1", "alice", "ops", 1, ReceiptKind::read)});
  const MemoryLogStore::Data before = store.data();
  const std::size_t commits_before = store.commits();
  const std::vector<WriteRequest> batch = {append(10, "t1", "ops", "c"), append(11, "t1", "new", "a"),
                                           append(12, "t1", "ops", "a"),  // a dup: nothing to write anyway
                                           receipt(13, "t1", "alice", "ops", 2, ReceiptKind::read)};

  SECTION("the store refuses the commit") {
    const Error disk_full{ErrorCode::unavailable, "store: disk full"};
    store.fail_writes(disk_full);
    auto result = commit_batch(store, batch);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error() == disk_full);
    CHECK(same_data(store.data(), before));
    CHECK(store.commits() == commits_before);
    CHECK(head_of(store, "t1", "ops") == 2);
    CHECK(head_of(store, "t1", "new") == 0);
    CHECK(cursors_of(store, "t1", "alice", "ops") == ReceiptCursors{1, 1});
    CHECK(seqs_of(read_all(store, "t1", "ops")) == std::vector<Seq>{1, 2});

    // Once the disk recovers the same batch goes through, with the seqs it would have had.
    store.fail_writes(std::nullopt);
    auto outcomes = commit(store, batch);
    CHECK(as_append(outcomes[0]).seq == 3);
    CHECK(as_append(outcomes[1]).seq == 1);
    CHECK(as_append(outcomes[2]).dup);
    CHECK(as_receipt(outcomes[3]).cursors == ReceiptCursors{2, 2});
  }

  SECTION("an append fails in the middle of the batch") {
    FailingAppendStore failing(store, 2);  // the second append of the transaction
    auto result = commit_batch(failing, batch);
    REQUIRE_FALSE(result.ok());
    CHECK(to_string(result.error().code) == "unavailable");
    CHECK(result.error().message == "store: disk full");
    // The first append had already been staged: it must not be visible either.
    CHECK(same_data(store.data(), before));
    CHECK(store.commits() == commits_before);
    CHECK(head_of(store, "t1", "ops") == 2);
    CHECK(read_all(store, "t1", "new").empty());
  }
}

// ---- reading --------------------------------------------------------------------------------

TEST_CASE("write_batch: read_after returns (after, after + limit] in order", "[write_batch]") {
  MemoryLogStore store;
  std::vector<WriteRequest> ten;
  for (int i = 1; i <= 10; ++i) ten.push_back(append(static_cast<std::uint64_t>(i), "t1", "a", std::string("m").append(std::to_string(i))));
  commit(store, ten);
  // Neighbours in key order that must never leak into conv "a" of tenant "t1".
  commit(store, {append(20, "t1", "a.", "x"), append(21, "t1", "a0", "x"), append(22, "t1", "A", "x"),
                 append(23, "t0", "a", "x"), append(24, "t2", "a", "x"), append(25, "t1", "b", "x")});

  CHECK(seqs_of(read_all(store, "t1", "a", 0, 3)) == std::vector<Seq>{1, 2, 3});
  CHECK(seqs_of(read_all(store, "t1", "a", 3, 3)) == std::vector<Seq>{4, 5, 6});
  CHECK(seqs_of(read_all(store, "t1", "a", 8, 5)) == std::vector<Seq>{9, 10});
  CHECK(seqs_of(read_all(store, "t1", "a", 0, 1000)) == std::vector<Seq>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  CHECK(read_all(store, "t1", "a", 10, 5).empty());
  CHECK(read_all(store, "t1", "a", 50, 5).empty());
  CHECK(read_all(store, "t1", "a", 0, 0).empty());
  CHECK(read_all(store, "t1", "nothing", 0, 10).empty());
  CHECK(seqs_of(read_all(store, "t1", "a.", 0, 10)) == std::vector<Seq>{1});

  auto page = read_all(store, "t1", "a", 4, 2);
  REQUIRE(page.size() == 2);
  CHECK(parse_stored(page[0].frame).id == "m5");
  CHECK(parse_stored(page[1].frame).id == "m6");
  CHECK(parse_stored(page[1].frame).seq == std::optional<Seq>(6));
  for (const auto& m : read_all(store, "t1", "a")) {
    Msg msg = parse_stored(m.frame);
    CHECK(msg.conv == "a");
    CHECK(msg.seq == std::optional<Seq>(m.seq));
  }
}

TEST_CASE("write_batch: apply_writes sees its own writes inside one transaction", "[write_batch]") {
  MemoryLogStore store;
  std::vector<WriteOutcome> outcomes;
  Status status = store.write([&](LogTxn& txn) -> Status {
    auto applied = apply_writes(txn, {append(1, "t1", "ops", "a"), append(2, "t1", "ops", "b")});
    if (!applied.ok()) return applied.error();
    outcomes = std::move(applied).value();
    auto head = txn.head("t1", "ops");
    REQUIRE(head.ok());
    CHECK(head.value() == 2);
    CHECK(head_of(store, "t1", "ops") == 0);  // readers see committed state only
    return ok_status();
  });
  REQUIRE(status.ok());
  REQUIRE(outcomes.size() == 2);
  CHECK(as_append(outcomes[1]).seq == 2);
  CHECK(head_of(store, "t1", "ops") == 2);

  // A body that fails after applying writes leaves nothing behind.
  const MemoryLogStore::Data before = store.data();
  Status aborted = store.write([&](LogTxn& txn) -> Status {
    auto applied = apply_writes(txn, {append(3, "t1", "ops", "c")});
    REQUIRE(applied.ok());
    return make_error(ErrorCode::unavailable, "store: aborted");
  });
  CHECK_FALSE(aborted.ok());
  CHECK(same_data(store.data(), before));
}

TEST_CASE("write_batch: audit records are appended in order with the batch, and fail with it",
          "[write_batch]") {
  MemoryLogStore store;
  AuditRecord forbidden;
  forbidden.ts = 5;
  forbidden.event = "forbidden";
  forbidden.conv = "payroll";
  AuditRecord reload;
  reload.ts = 6;
  reload.event = "secret_reload";
  std::vector<WriteRequest> batch{WriteRequest{0, AuditRequest{forbidden}},
                                  WriteRequest{0, AuditRequest{reload}}};
  auto outcomes = commit_batch(store, batch);
  REQUIRE(outcomes.ok());
  REQUIRE(outcomes.value().size() == 2);
  CHECK(std::holds_alternative<AuditOutcome>(outcomes.value()[0].result));
  CHECK(store.data().audit == std::vector<std::string>{
                                  R"({"ts":5,"event":"forbidden","conv":"payroll"})",
                                  R"({"ts":6,"event":"secret_reload"})"});
  // A failed commit stores none of its audit records either.
  store.fail_writes(make_error(ErrorCode::unavailable, "store: disk full"));
  CHECK(!commit_batch(store, batch).ok());
  CHECK(store.data().audit.size() == 2);
}

// ---- a relaying edge: staging, replication, dead letters ----------------------------------

namespace {

WriteRequest stage(std::uint64_t ticket, std::string conv, std::string id, TimeMs ts = 1000) {
  WriteRequest request = append(ticket, "dev", std::move(conv), std::move(id), ts, std::string(kTraceA));
  std::get<AppendRequest>(request.op).stage = true;
  return request;
}

WriteRequest replicate(std::uint64_t ticket, std::string conv, std::string id, Seq seq) {
  ReplicateRequest request;
  request.tenant = "dev";
  request.msg.conv = std::move(conv);
  request.msg.id = std::move(id);
  request.msg.seq = seq;
  request.msg.from = "bob";
  request.msg.ts = 5000;
  request.msg.body = JsonText{R"({"seq":)" + std::to_string(seq) + "}"};
  return WriteRequest{ticket, std::move(request)};
}

WriteRequest dead_letter(std::uint64_t ticket, std::string conv, std::string id) {
  return WriteRequest{ticket, DeadLetterRequest{"dev", std::move(conv), std::move(id),
                                                make_error(ErrorCode::forbidden, "conv: no access"), 9000}};
}

const ReplicateOutcome& as_replicate(const WriteOutcome& outcome) {
  const auto* replicated = std::get_if<ReplicateOutcome>(&outcome.result);
  if (!replicated) FAIL("ticket " << outcome.ticket << " is not a ReplicateOutcome");
  return *replicated;
}

const DeadLetterOutcome& as_dead(const WriteOutcome& outcome) {
  const auto* dead = std::get_if<DeadLetterOutcome>(&outcome.result);
  if (!dead) FAIL("ticket " << outcome.ticket << " is not a DeadLetterOutcome");
  return *dead;
}

std::vector<std::string> staged_ids(MemoryLogStore& store) {
  std::vector<std::string> ids;
  auto staged = store.staged_messages();  // named: the loop must not outlive it
  for (const auto& m : staged.value()) ids.push_back(m.id);
  return ids;
}

}  // namespace

TEST_CASE("write_batch: a staged send is stored unsequenced, once, against staged and sequenced ids",
          "[write_batch][relay]") {
  MemoryLogStore store;
  auto first = commit(store, {stage(1, "ops", "s1", 1000), stage(2, "ops", "s2"), stage(3, "ops", "s1", 2000)});
  CHECK(as_append(first[0]).seq == 0);
  CHECK_FALSE(as_append(first[0]).dup);
  REQUIRE(as_append(first[0]).frame);
  Frame frame = parse_frame(*as_append(first[0]).frame, Direction::from_edge).value();
  CHECK(std::get<Msg>(frame).provisional);
  CHECK_FALSE(std::get<Msg>(frame).seq);
  CHECK(std::get<Msg>(frame).trace == std::optional<std::string>(kTraceA));
  // The repeat in the same batch: a dup with the first's ts and trace, seq 0 (staged), no frame.
  CHECK(as_append(first[2]).dup);
  CHECK(as_append(first[2]).seq == 0);
  CHECK(as_append(first[2]).ts == 1000);
  CHECK(as_append(first[2]).trace == std::optional<std::string>(kTraceA));
  CHECK_FALSE(as_append(first[2]).frame);
  CHECK(store.head("dev", "ops").value() == 0);  // nothing sequenced here
  CHECK(staged_ids(store) == std::vector<std::string>{"s1", "s2"});

  // In a later batch too; and the same id in another conversation is another message.
  auto later = commit(store, {stage(4, "ops", "s2"), stage(5, "other", "s1")});
  CHECK(as_append(later[0]).dup);
  CHECK_FALSE(as_append(later[1]).dup);
  CHECK(staged_ids(store) == std::vector<std::string>{"s1", "s2", "s1"});

  // Once the root's msg is replicated, a repeat learns its seq; it is never staged again.
  commit(store, {replicate(6, "ops", "s1", 1)});
  auto again = commit(store, {stage(7, "ops", "s1")});
  CHECK(as_append(again[0]).dup);
  CHECK(as_append(again[0]).seq == 1);
  CHECK(staged_ids(store) == std::vector<std::string>{"s2", "s1"});
  // A sequenced id (replicated, never staged here) is a dup too.
  commit(store, {replicate(8, "ops", "x9", 2)});
  auto sequenced = commit(store, {stage(9, "ops", "x9")});
  CHECK(as_append(sequenced[0]).dup);
  CHECK(as_append(sequenced[0]).seq == 2);
  CHECK(store.data().staged.size() == 2);
}

TEST_CASE("write_batch: replicate appends at head+1, ignores seqs at or below the head, refuses a gap",
          "[write_batch][relay]") {
  MemoryLogStore store;
  commit(store, {stage(1, "ops", "mine")});
  auto out = commit(store, {replicate(2, "ops", "theirs", 1), replicate(3, "ops", "mine", 2)});
  CHECK(as_replicate(out[0]).stored);
  CHECK_FALSE(as_replicate(out[0]).was_staged);
  CHECK(as_replicate(out[1]).stored);
  CHECK(as_replicate(out[1]).was_staged);  // its staged copy is gone
  REQUIRE(as_replicate(out[1]).frame);
  Msg stored = std::get<Msg>(parse_frame(*as_replicate(out[1]).frame, Direction::from_edge).value());
  CHECK(stored.seq == Seq{2});
  CHECK_FALSE(stored.provisional);
  CHECK(store.head("dev", "ops").value() == 2);
  CHECK(store.staged_messages().value().empty());

  // At or below the head: already here, nothing changes (a replay after a reconnect).
  auto repeat = commit(store, {replicate(4, "ops", "theirs", 1), replicate(5, "ops", "other", 2)});
  CHECK_FALSE(as_replicate(repeat[0]).stored);
  CHECK_FALSE(as_replicate(repeat[0]).frame);
  CHECK_FALSE(as_replicate(repeat[1]).stored);
  CHECK(store.head("dev", "ops").value() == 2);
  CHECK(store.read_after("dev", "ops", 1, 1).value().at(0).frame == *as_replicate(out[1]).frame);

  // A gap: refused (the node rewinds), the rest of the batch goes on.
  auto gap = commit(store, {replicate(6, "ops", "far", 4), replicate(7, "ops", "next", 3)});
  const auto* refused = std::get_if<Error>(&gap[0].result);
  REQUIRE(refused);
  CHECK(refused->code == ErrorCode::unavailable);
  CHECK(as_replicate(gap[1]).stored);
  CHECK(store.head("dev", "ops").value() == 3);

  // Without a seq: refused as invalid.
  WriteRequest unsequenced = replicate(8, "ops", "none", 4);
  std::get<ReplicateRequest>(unsequenced.op).msg.seq.reset();
  auto none = commit(store, {unsequenced});
  REQUIRE(std::get_if<Error>(&none[0].result));
  CHECK(std::get<Error>(none[0].result).code == ErrorCode::invalid);
  CHECK(store.head("dev", "ops").value() == 3);
}

TEST_CASE("write_batch: a dead letter moves a staged send aside; a non-staged id is not found",
          "[write_batch][relay]") {
  MemoryLogStore store;
  commit(store, {stage(1, "ops", "bad"), stage(2, "ops", "good")});
  auto out = commit(store, {dead_letter(3, "ops", "bad"), dead_letter(4, "ops", "bad"),
                            dead_letter(5, "ops", "never")});
  CHECK(as_dead(out[0]).found);
  CHECK(as_dead(out[0]).from == "alice");
  CHECK_FALSE(as_dead(out[1]).found);  // already dead
  CHECK_FALSE(as_dead(out[2]).found);
  CHECK(staged_ids(store) == std::vector<std::string>{"good"});
  REQUIRE(store.data().dead_letters.size() == 1);
  const std::string& record = store.data().dead_letters.begin()->second;
  json::object parsed = json::parse(record).as_object();
  CHECK(parsed.at("id").as_string() == "bad");
  CHECK(parsed.at("conv").as_string() == "ops");
  CHECK(parsed.at("code").as_string() == "forbidden");
  CHECK(parsed.at("reason").as_string() == "conv: no access");
  CHECK(parsed.at("ts").as_int64() == 9000);
  CHECK(parsed.at("msg").as_object().at("id").as_string() == "bad");  // the staged frame kept

  // A sequenced id is not dead-lettered: it made it after all.
  commit(store, {replicate(6, "ops", "good", 1)});
  auto late = commit(store, {dead_letter(7, "ops", "good")});
  CHECK_FALSE(as_dead(late[0]).found);
  CHECK(store.data().dead_letters.size() == 1);
  CHECK(store.head("dev", "ops").value() == 1);
}
