// LmdbLogStore tests: the LogStore contract as MemoryLogStore keeps it (also checked against it
// on a seeded random schedule), durability across reopen, aborted writes, map growth, a full
// map, and reads from one thread while another writes.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "lmdb_log_store.h"
#include "waymark/codec.h"
#include "waymark/identifiers.h"
#include "core/memory_log_store.h"
#include "waymark/write_batch.h"

namespace waymark::edge {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/waymark-lmdb-test-XXXXXX";
    const char* made = ::mkdtemp(pattern.data());
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<LmdbLogStore> open_store(const std::string& dir, const LmdbOptions& options = {}) {
  auto opened = LmdbLogStore::Open(dir, options);
  if (!opened.ok()) FAIL("Open(" << dir << "): " << opened.error().message);
  return std::move(opened).value();
}

WriteRequest append(std::uint64_t ticket, const std::string& tenant, const std::string& conv,
                    const std::string& id, const std::string& text = "hello", TimeMs ts = 1000,
                    std::optional<std::string> trace = std::nullopt) {
  Msg msg;
  msg.conv = conv;
  msg.id = id;
  msg.from = "alice";
  msg.ts = ts;
  msg.trace = std::move(trace);
  msg.body = JsonText{boost::json::serialize(boost::json::object{{"text", text}})};
  return WriteRequest{ticket, AppendRequest{tenant, std::move(msg)}};
}

// prefix then n: "m" + 7 -> "m7". (Appending also keeps GCC 12's false -Wrestrict warning
// about `"literal" + std::to_string(n)` out of the build log.)
std::string numbered(std::string prefix, std::uint64_t n) {
  prefix.append(std::to_string(n));
  return prefix;
}

// A valid W3C traceparent that names n, so stored frames still parse.
std::string traceparent(std::uint64_t n) {
  std::string digits = std::to_string(n);
  return "00-" + std::string(32 - digits.size(), '0') + digits + "-00000000000000ab-01";
}

WriteRequest receipt(std::uint64_t ticket, const std::string& tenant, const std::string& user,
                     const std::string& conv, Seq seq, ReceiptKind kind) {
  return WriteRequest{ticket, ReceiptRequest{tenant, user, conv, seq, kind}};
}

std::vector<WriteOutcome> commit(LogStore& store, const std::vector<WriteRequest>& requests) {
  auto result = commit_batch(store, requests);
  if (!result.ok()) FAIL("commit_batch: " << result.error().message);
  return std::move(result).value();
}

const AppendOutcome& appended(const WriteOutcome& outcome) {
  const auto* append_outcome = std::get_if<AppendOutcome>(&outcome.result);
  REQUIRE(append_outcome != nullptr);
  return *append_outcome;
}

const ReceiptOutcome& receipted(const WriteOutcome& outcome) {
  const auto* receipt_outcome = std::get_if<ReceiptOutcome>(&outcome.result);
  REQUIRE(receipt_outcome != nullptr);
  return *receipt_outcome;
}

Seq head_of(LogReader& store, std::string_view tenant, std::string_view conv) {
  auto head = store.head(tenant, conv);
  if (!head.ok()) FAIL("head: " << head.error().message);
  return head.value();
}

std::vector<StoredMessage> read(LogReader& store, std::string_view tenant, std::string_view conv,
                                Seq after, std::uint32_t limit) {
  auto messages = store.read_after(tenant, conv, after, limit);
  if (!messages.ok()) FAIL("read_after: " << messages.error().message);
  return std::move(messages).value();
}

ReceiptCursors receipts_of(LogReader& store, std::string_view tenant, std::string_view user,
                           std::string_view conv) {
  auto cursors = store.receipts(tenant, user, conv);
  if (!cursors.ok()) FAIL("receipts: " << cursors.error().message);
  return cursors.value();
}

std::vector<Seq> seqs(const std::vector<StoredMessage>& messages) {
  std::vector<Seq> out;
  for (const auto& message : messages) out.push_back(message.seq);
  return out;
}

std::vector<Seq> range(Seq first, Seq last) {
  std::vector<Seq> out;
  for (Seq seq = first; seq <= last; ++seq) out.push_back(seq);
  return out;
}

Msg parse_stored(const std::string& frame) {
  auto parsed = parse_frame(frame, Direction::from_edge);
  if (!parsed.ok()) FAIL("stored frame does not parse: " << parsed.error().message);
  const Msg* msg = std::get_if<Msg>(&parsed.value());
  REQUIRE(msg != nullptr);
  return *msg;
}

std::string text_of(const Msg& msg) {
  return std::string(boost::json::parse(msg.body.text).as_object().at("text").as_string());
}

// One outcome as text, so two stores' outcomes compare with a readable diff.
std::string describe(const WriteOutcome& outcome) {
  std::string out = "ticket " + std::to_string(outcome.ticket) + ": ";
  if (const auto* a = std::get_if<AppendOutcome>(&outcome.result)) {
    out += "append seq=" + std::to_string(a->seq) + " ts=" + std::to_string(a->ts) +
           " trace=" + a->trace.value_or("-") + " dup=" + (a->dup ? "1" : "0") +
           " frame=" + (a->frame ? *a->frame : std::string("null"));
  } else if (const auto* r = std::get_if<ReceiptOutcome>(&outcome.result)) {
    out += "receipt advanced=" + std::string(r->advanced ? "1" : "0") +
           " delivered=" + std::to_string(r->cursors.delivered) +
           " read=" + std::to_string(r->cursors.read);
  } else {
    const auto& error = std::get<Error>(outcome.result);
    out += "error " + std::string(to_string(error.code)) + " " + error.message;
  }
  return out;
}

}  // namespace

TEST_CASE("lmdb: seqs are dense per (tenant, conv); look-alike names never collide", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  // Pairs whose naive concatenation would collide ("a"+"b:c" vs "a:b"+"c"), and a conv that is
  // a prefix of another ("x" vs "x1").
  const std::vector<std::pair<std::string, std::string>> keys = {
      {"a", "b:c"}, {"a:b", "c"}, {"a", "x"}, {"a", "x1"}, {"b", "x"}, {"a", "b"}};

  for (int round = 1; round <= 2; ++round) {
    std::vector<WriteRequest> batch;
    for (int n = 0; n < 3; ++n)
      for (std::size_t k = 0; k < keys.size(); ++k)
        batch.push_back(append(batch.size(), keys[k].first, keys[k].second,
                               numbered(numbered(numbered("k", k) + "r", round) + "n", n),
                               keys[k].first + "|" + keys[k].second));
    auto outcomes = commit(*store, batch);
    REQUIRE(outcomes.size() == batch.size());
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      const Seq expected = static_cast<Seq>((round - 1) * 3 + i / keys.size() + 1);
      CHECK(outcomes[i].ticket == i);
      CHECK(appended(outcomes[i]).seq == expected);
      CHECK_FALSE(appended(outcomes[i]).dup);
      REQUIRE(appended(outcomes[i]).frame != nullptr);
    }
  }

  for (const auto& [tenant, conv] : keys) {
    CAPTURE(tenant, conv);
    CHECK(head_of(*store, tenant, conv) == 6);
    auto messages = read(*store, tenant, conv, 0, 100);
    REQUIRE(seqs(messages) == range(1, 6));
    for (const auto& message : messages) {
      Msg msg = parse_stored(message.frame);
      CHECK(msg.conv == conv);
      CHECK(msg.seq == message.seq);
      CHECK(text_of(msg) == tenant + "|" + conv);
    }
  }
  CHECK(head_of(*store, "a", "b:") == 0);
  CHECK(head_of(*store, "a:b:c", "") == 0);
  CHECK(read(*store, "a", "x2", 0, 100).empty());
}

TEST_CASE("lmdb: a repeated (conv, id) is stored once, within a batch and across batches",
          "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  auto first = commit(*store, {append(1, "t", "ops", "id1", "original", 1000, traceparent(1)),
                               append(2, "t", "ops", "id2", "second", 1001),
                               append(3, "t", "ops", "id1", "retry", 2000, traceparent(2))});
  CHECK(appended(first[0]).seq == 1);
  CHECK(appended(first[1]).seq == 2);
  const AppendOutcome& in_batch_dup = appended(first[2]);
  CHECK(in_batch_dup.dup);
  CHECK(in_batch_dup.seq == 1);
  CHECK(in_batch_dup.ts == 1000);  // the original's, read back from the stored frame
  CHECK(in_batch_dup.trace == std::optional<std::string>(traceparent(1)));
  CHECK(in_batch_dup.frame == nullptr);

  auto second = commit(*store, {append(4, "t", "ops", "id1", "again", 3000),
                                append(5, "t", "ops", "id3", "third", 3001),
                                append(6, "t", "ops2", "id1", "other conv", 3002),
                                append(7, "u", "ops", "id1", "other tenant", 3003)});
  CHECK(appended(second[0]).dup);
  CHECK(appended(second[0]).seq == 1);
  CHECK(appended(second[1]).seq == 3);
  CHECK_FALSE(appended(second[2]).dup);
  CHECK(appended(second[2]).seq == 1);
  CHECK_FALSE(appended(second[3]).dup);
  CHECK(appended(second[3]).seq == 1);

  auto messages = read(*store, "t", "ops", 0, 100);
  REQUIRE(seqs(messages) == range(1, 3));
  CHECK(text_of(parse_stored(messages[0].frame)) == "original");
  CHECK(text_of(parse_stored(messages[2].frame)) == "third");
  CHECK(*appended(first[0]).frame == messages[0].frame);
}

TEST_CASE("lmdb: receipts only move forward and stay per (tenant, user, conv)", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  std::vector<WriteRequest> seed;
  for (int i = 0; i < 5; ++i) seed.push_back(append(i, "t", "c", numbered("m", i)));
  seed.push_back(append(9, "t", "d", "m0"));
  commit(*store, seed);

  auto outcomes = commit(*store, {receipt(1, "t", "bob", "c", 3, ReceiptKind::read),
                                  receipt(2, "t", "bob", "c", 2, ReceiptKind::delivered),
                                  receipt(3, "t", "bob", "c", 5, ReceiptKind::delivered),
                                  receipt(4, "t", "bob", "c", 2, ReceiptKind::read),
                                  receipt(5, "t", "bob", "c", 6, ReceiptKind::read)});
  CHECK(receipted(outcomes[0]).advanced);
  CHECK(receipted(outcomes[0]).cursors == ReceiptCursors{3, 3});
  CHECK_FALSE(receipted(outcomes[1]).advanced);
  CHECK(receipted(outcomes[1]).cursors == ReceiptCursors{3, 3});
  CHECK(receipted(outcomes[2]).advanced);
  CHECK(receipted(outcomes[2]).cursors == ReceiptCursors{5, 3});
  CHECK_FALSE(receipted(outcomes[3]).advanced);
  CHECK(receipted(outcomes[3]).cursors == ReceiptCursors{5, 3});
  const auto* refused = std::get_if<Error>(&outcomes[4].result);
  REQUIRE(refused != nullptr);  // seq 6 is past the head 5
  CHECK(refused->code == ErrorCode::invalid);

  CHECK(receipts_of(*store, "t", "bob", "c") == ReceiptCursors{5, 3});
  CHECK(receipts_of(*store, "t", "alice", "c") == ReceiptCursors{});
  CHECK(receipts_of(*store, "t", "bob", "d") == ReceiptCursors{});
  CHECK(receipts_of(*store, "u", "bob", "c") == ReceiptCursors{});

  // A later batch sees the stored cursors and cannot move them back.
  auto later = commit(*store, {receipt(1, "t", "bob", "c", 1, ReceiptKind::read),
                               receipt(2, "t", "bob", "c", 4, ReceiptKind::read)});
  CHECK_FALSE(receipted(later[0]).advanced);
  CHECK(receipted(later[1]).advanced);
  CHECK(receipts_of(*store, "t", "bob", "c") == ReceiptCursors{5, 4});
}

TEST_CASE("lmdb: read_after returns (after, after + limit] of one conversation only", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  // Interleaved across batches, so later "x" appends land below "x1" keys (no MDB_APPEND).
  for (int round = 0; round < 10; ++round) {
    std::vector<WriteRequest> batch;
    const std::string r = std::to_string(round);
    batch.push_back(append(0, "t", "x", "x" + r));
    if (round < 7) batch.push_back(append(1, "t", "x1", "y" + r));
    if (round < 5) batch.push_back(append(2, "t2", "x", "z" + r));
    if (round < 3) batch.push_back(append(3, "s", "x", "w" + r));
    commit(*store, batch);
  }
  CHECK(seqs(read(*store, "t", "x", 0, 100)) == range(1, 10));
  CHECK(seqs(read(*store, "t", "x", 3, 4)) == range(4, 7));
  CHECK(seqs(read(*store, "t", "x", 9, 5)) == range(10, 10));
  CHECK(read(*store, "t", "x", 10, 5).empty());
  CHECK(read(*store, "t", "x", 500, 5).empty());
  CHECK(read(*store, "t", "x", 0, 0).empty());
  CHECK(read(*store, "t", "x", std::numeric_limits<Seq>::max(), 5).empty());
  CHECK(seqs(read(*store, "t", "x1", 0, 100)) == range(1, 7));
  CHECK(seqs(read(*store, "t", "x1", 6, 100)) == range(7, 7));
  CHECK(seqs(read(*store, "t2", "x", 2, 100)) == range(3, 5));
  CHECK(seqs(read(*store, "s", "x", 0, 2)) == range(1, 2));
  CHECK(read(*store, "t", "x0", 0, 100).empty());
  CHECK(read(*store, "t", "", 0, 100).empty());
  CHECK(read(*store, "nobody", "x", 0, 100).empty());
  for (const auto& message : read(*store, "t", "x1", 0, 100))
    CHECK(parse_stored(message.frame).id == numbered("y", message.seq - 1));
}

TEST_CASE("lmdb: behaves as MemoryLogStore on a seeded random schedule, and after reopen",
          "[lmdb]") {
  const std::uint64_t seed = GENERATE(1u, 2u, 3u);
  INFO("seed " << seed);
  SeededRandom random(seed);
  const std::vector<std::string> tenants = {"a", "a:b", "b"};
  const std::vector<std::string> convs = {"b:c", "c", "x", "x1", "x.1"};
  const std::vector<std::string> users = {"u", "v"};

  TempDir dir;
  auto lmdb = open_store(dir.path());
  MemoryLogStore memory;
  std::map<std::pair<std::string, std::string>, Seq> heads;  // as far as the schedule knows
  std::uint64_t ticket = 0;
  for (int batch_index = 0; batch_index < 60; ++batch_index) {
    std::vector<WriteRequest> batch;
    const auto size = 1 + random.below(8);
    for (std::uint64_t i = 0; i < size; ++i) {
      const std::string& tenant = tenants[random.below(tenants.size())];
      const std::string& conv = convs[random.below(convs.size())];
      // One draw per statement, so a seed replays the same schedule on any compiler.
      ++ticket;
      if (random.below(10) < 7) {
        // Few ids per conversation, so repeats (dups) are frequent.
        const std::string id = numbered("m", random.below(12));
        std::optional<std::string> trace;
        if (random.below(2)) trace = traceparent(ticket);
        batch.push_back(append(ticket, tenant, conv, id, numbered("text ", ticket),
                               static_cast<TimeMs>(ticket), trace));
      } else {
        const Seq seq = random.below(heads[{tenant, conv}] + 3);
        const std::string& user = users[random.below(users.size())];
        const ReceiptKind kind = random.below(2) ? ReceiptKind::read : ReceiptKind::delivered;
        batch.push_back(receipt(ticket, tenant, user, conv, seq, kind));
      }
    }
    auto from_lmdb = commit(*lmdb, batch);
    auto from_memory = commit(memory, batch);
    REQUIRE(from_lmdb.size() == from_memory.size());
    for (std::size_t i = 0; i < from_lmdb.size(); ++i)
      CHECK(describe(from_lmdb[i]) == describe(from_memory[i]));
    for (const auto& request : batch)
      if (const auto* a = std::get_if<AppendRequest>(&request.op))
        heads[{a->tenant, a->msg.conv}] = head_of(memory, a->tenant, a->msg.conv);
  }

  auto compare_reads = [&](LogReader& store) {
    std::size_t total = 0;
    for (const auto& tenant : tenants) {
      for (const auto& conv : convs) {
        CAPTURE(tenant, conv);
        CHECK(head_of(store, tenant, conv) == head_of(memory, tenant, conv));
        auto all = read(store, tenant, conv, 0, 1000);
        auto expected = read(memory, tenant, conv, 0, 1000);
        REQUIRE(seqs(all) == seqs(expected));
        for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].frame == expected[i].frame);
        total += all.size();
        for (int probe = 0; probe < 5; ++probe) {
          const Seq after = random.below(all.size() + 2);
          const auto limit = static_cast<std::uint32_t>(random.below(6));
          CHECK(seqs(read(store, tenant, conv, after, limit)) ==
                seqs(read(memory, tenant, conv, after, limit)));
        }
        for (const auto& user : users)
          CHECK(receipts_of(store, tenant, user, conv) == receipts_of(memory, tenant, user, conv));
      }
    }
    CHECK(total == memory.data().log.size());
  };
  compare_reads(*lmdb);
  lmdb.reset();
  auto reopened = open_store(dir.path());
  compare_reads(*reopened);
}

TEST_CASE("lmdb: committed data survives closing and reopening the store", "[lmdb]") {
  TempDir dir;
  std::vector<std::string> frames;
  {
    auto store = open_store(dir.path());
    auto outcomes = commit(*store, {append(1, "t", "ops", "a1"), append(2, "t", "ops", "a2"),
                                    append(3, "t", "dev", "b1"), append(4, "u", "ops", "c1")});
    for (const auto& outcome : outcomes) frames.push_back(*appended(outcome).frame);
    commit(*store, {receipt(5, "t", "bob", "ops", 2, ReceiptKind::read)});
    REQUIRE(store->sync().ok());
  }
  auto store = open_store(dir.path());
  CHECK(head_of(*store, "t", "ops") == 2);
  CHECK(head_of(*store, "t", "dev") == 1);
  CHECK(head_of(*store, "u", "ops") == 1);
  auto ops = read(*store, "t", "ops", 0, 10);
  REQUIRE(seqs(ops) == range(1, 2));
  CHECK(ops[0].frame == frames[0]);
  CHECK(ops[1].frame == frames[1]);
  CHECK(read(*store, "u", "ops", 0, 10).at(0).frame == frames[3]);
  CHECK(receipts_of(*store, "t", "bob", "ops") == ReceiptCursors{2, 2});

  // The id index survived too, and sequencing continues from the stored head.
  auto after = commit(*store, {append(6, "t", "ops", "a1"), append(7, "t", "ops", "a3")});
  CHECK(appended(after[0]).dup);
  CHECK(appended(after[0]).seq == 1);
  CHECK(appended(after[1]).seq == 3);
}

TEST_CASE("lmdb: an aborted write leaves nothing behind", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  commit(*store, {append(1, "t", "ops", "kept")});

  Status status = store->write([](LogTxn& txn) -> Status {
    if (Status s = txn.append("t", "ops", 2, "lost", "{\"t\":\"msg\"}"); !s.ok()) return s;
    if (Status s = txn.append("t", "new", 1, "lost", "{\"t\":\"msg\"}"); !s.ok()) return s;
    if (Status s = txn.put_receipts("t", "bob", "ops", ReceiptCursors{2, 2}); !s.ok()) return s;
    // The transaction sees its own writes before it is abandoned.
    auto head = txn.head("t", "ops");
    if (!head.ok() || head.value() != 2) return make_error(ErrorCode::invalid, "own write unseen");
    auto found = txn.find_id("t", "new", "lost");
    if (!found.ok() || found.value() != std::optional<Seq>(1))
      return make_error(ErrorCode::invalid, "own id unseen");
    return make_error(ErrorCode::rate_limited, "body gave up");
  });
  REQUIRE_FALSE(status.ok());
  CHECK(status.error() == make_error(ErrorCode::rate_limited, "body gave up"));

  CHECK(head_of(*store, "t", "ops") == 1);
  CHECK(head_of(*store, "t", "new") == 0);
  CHECK(seqs(read(*store, "t", "ops", 0, 10)) == range(1, 1));
  CHECK(read(*store, "t", "new", 0, 10).empty());
  CHECK(receipts_of(*store, "t", "bob", "ops") == ReceiptCursors{});
  auto next = commit(*store, {append(2, "t", "ops", "lost")});
  CHECK_FALSE(appended(next[0]).dup);
  CHECK(appended(next[0]).seq == 2);
}

TEST_CASE("lmdb: a body that ignores a refused operation is not committed", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  // The second append re-indexes id "same": LMDB refuses that put (MDB_NOOVERWRITE) after the
  // log put went through. Committing would leave seq 2 without its id, so nothing may commit.
  Status status = store->write([](LogTxn& txn) -> Status {
    (void)txn.append("t", "ops", 1, "same", "{}");
    (void)txn.append("t", "ops", 2, "same", "{}");
    return ok_status();
  });
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().code == ErrorCode::unavailable);
  CHECK(status.error().message.find("already indexed") != std::string::npos);
  CHECK(head_of(*store, "t", "ops") == 0);
  CHECK(read(*store, "t", "ops", 0, 10).empty());
}

TEST_CASE("lmdb: out-of-order appends and names holding NUL are refused", "[lmdb]") {
  TempDir dir;
  auto store = open_store(dir.path());
  Status gap = store->write([](LogTxn& txn) { return txn.append("t", "ops", 2, "x", "{}"); });
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.error().code == ErrorCode::unavailable);

  const std::string nul_tenant("a\0b", 3);
  Status bad = store->write([&](LogTxn& txn) { return txn.append(nul_tenant, "c", 1, "x", "{}"); });
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::invalid);
  CHECK(bad.error().message.find("tenant") == 0);
  auto head = store->head(nul_tenant, "c");
  REQUIRE_FALSE(head.ok());
  CHECK(head.error().code == ErrorCode::invalid);
  CHECK_FALSE(store->read_after("t", std::string("c\0d", 3), 0, 10).ok());
  CHECK_FALSE(store->receipts("t", std::string("u\0", 2), "c").ok());

  // A key over LMDB's limit (511 bytes) is refused up front, not by mdb_put.
  const std::string long_tenant(600, 't');
  auto long_head = store->head(long_tenant, "c");
  REQUIRE_FALSE(long_head.ok());
  CHECK(long_head.error().code == ErrorCode::invalid);
  CHECK(head_of(*store, "t", "ops") == 0);
}

TEST_CASE("lmdb: a small map grows as data arrives, retrying the batch it did not fit", "[lmdb]") {
  TempDir dir;
  LmdbOptions options;
  options.initial_map_bytes = 256 * kKiB;
  options.max_map_bytes = 256 * kMiB;
  auto store = open_store(dir.path(), options);
  auto initial_map = store->map_size_bytes();
  REQUIRE(initial_map.ok());
  CHECK(initial_map.value() == 256 * kKiB);

  // One batch of ~2 MiB: it outgrows the map several times inside a single write(), so the
  // body runs again after each growth; the outcomes must still be dense and unrepeated.
  std::vector<WriteRequest> big;
  for (int i = 0; i < 2000; ++i)
    big.push_back(append(i, "t", "big", numbered("b", i), std::string(1000, 'a' + i % 26)));
  auto outcomes = commit(*store, big);
  for (std::size_t i = 0; i < outcomes.size(); ++i)
    REQUIRE(appended(outcomes[i]).seq == i + 1);

  // Then many small batches over several conversations: ~3 MiB more.
  Seq per_conv[3] = {0, 0, 0};
  for (int b = 0; b < 200; ++b) {
    std::vector<WriteRequest> batch;
    for (int i = 0; i < 15; ++i) {
      const int c = (b + i) % 3;
      batch.push_back(append(i, "t", numbered("c", c),
                             numbered(numbered("s", b) + "_", i),
                             std::string(1000, 'k')));
      ++per_conv[c];
    }
    commit(*store, batch);
  }

  REQUIRE(store->sync().ok());  // a checkpoint: everything in LMDB, which has grown for it
  auto map = store->map_size_bytes();
  auto used = store->size_bytes();
  REQUIRE(map.ok());
  REQUIRE(used.ok());
  CHECK(used.value() > 5 * kMiB);
  CHECK(map.value() >= used.value());
  CHECK(map.value() > initial_map.value());
  CHECK(map.value() <= 256 * kMiB);

  CHECK(head_of(*store, "t", "big") == 2000);
  std::size_t read_back = 0;
  for (Seq after = 0;; after += 700) {
    auto page = read(*store, "t", "big", after, 700);
    if (page.empty()) break;
    REQUIRE(seqs(page) == range(after + 1, after + page.size()));
    for (const auto& message : page)
      CHECK(message.frame == *appended(outcomes[message.seq - 1]).frame);
    read_back += page.size();
  }
  CHECK(read_back == 2000);
  for (int c = 0; c < 3; ++c)
    CHECK(seqs(read(*store, "t", numbered("c", c), 0, 5000)) == range(1, per_conv[c]));
}

TEST_CASE("lmdb: at the map cap writes fail as unavailable, and nothing partial is kept",
          "[lmdb]") {
  TempDir dir;
  LmdbOptions options;
  options.initial_map_bytes = 256 * kKiB;
  options.max_map_bytes = 2 * kMiB;
  auto store = open_store(dir.path(), options);

  std::vector<std::string> frames;  // every acknowledged frame of conv "fill", by seq - 1
  std::optional<Error> failure;
  std::vector<WriteRequest> failed_batch;
  for (int b = 0; b < 1000 && !failure; ++b) {
    std::vector<WriteRequest> batch;
    for (int i = 0; i < 8; ++i)
      batch.push_back(append(i, "t", "fill", numbered(numbered("f", b) + "_", i),
                             std::string(1500, 'a' + b % 26)));
    auto result = commit_batch(*store, batch);
    if (!result.ok()) {
      failure = result.error();
      failed_batch = batch;
      break;
    }
    for (const auto& outcome : result.value()) frames.push_back(*appended(outcome).frame);
  }
  REQUIRE(failure.has_value());
  CHECK(failure->code == ErrorCode::unavailable);
  CHECK(failure->message.find("store full") == 0);
  REQUIRE_FALSE(frames.empty());

  auto map = store->map_size_bytes();
  REQUIRE(map.ok());
  CHECK(map.value() == 2 * kMiB);

  // Earlier data intact; nothing of the failed batch visible; reads still work.
  CHECK(head_of(*store, "t", "fill") == frames.size());
  CHECK(read(*store, "t", "fill", frames.size(), 10).empty());
  auto all = read(*store, "t", "fill", 0, 100000);
  REQUIRE(all.size() == frames.size());
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].frame == frames[i]);
  Status lookup = store->write([&](LogTxn& txn) -> Status {
    for (const auto& request : failed_batch) {
      const auto& a = std::get<AppendRequest>(request.op);
      auto found = txn.find_id(a.tenant, a.msg.conv, a.msg.id);
      if (!found.ok()) return found.error();
      if (found.value()) return make_error(ErrorCode::invalid, "failed id indexed: " + a.msg.id);
    }
    return ok_status();
  });
  CHECK(lookup.ok());

  // A body that swallows the MAP_FULL errors still does not commit.
  Status swallowed = store->write([](LogTxn& txn) -> Status {
    for (Seq seq = 1; seq <= 2000; ++seq)
      (void)txn.append("t", "swallow", seq, numbered("s", seq), std::string(1500, 's'));
    return ok_status();
  });
  REQUIRE_FALSE(swallowed.ok());
  CHECK(swallowed.error().code == ErrorCode::unavailable);
  CHECK(head_of(*store, "t", "swallow") == 0);

  // Raising the cap (a restart with a bigger disk) lets writes through again, data intact.
  store.reset();
  options.max_map_bytes = 64 * kMiB;
  store = open_store(dir.path(), options);
  CHECK(head_of(*store, "t", "fill") == frames.size());
  auto more = commit(*store, failed_batch);
  CHECK(appended(more.front()).seq == frames.size() + 1);
}

TEST_CASE("lmdb: readers on one thread see whole commits while another thread writes",
          "[lmdb]") {
  TempDir dir;
  LmdbOptions options;
  options.initial_map_bytes = 256 * kKiB;  // small, so the map grows (remaps) under the readers
  options.apply_bytes = 16 * kKiB;         // and checkpoints move data into LMDB under them
  options.apply_interval = std::chrono::milliseconds(1);
  auto store = open_store(dir.path(), options);

  constexpr int kBatches = 300;
  constexpr int kPerBatch = 10;
  constexpr Seq kTotal = kBatches * kPerBatch;
  std::atomic<bool> writer_done{false};
  std::string writer_failure;
  std::thread writer([&] {
    for (int b = 0; b < kBatches && writer_failure.empty(); ++b) {
      std::vector<WriteRequest> batch;
      for (int i = 0; i < kPerBatch; ++i)
        batch.push_back(append(i, "t", "live", numbered("w", b * kPerBatch + i),
                               std::string(600, 'w')));
      batch.push_back(receipt(99, "t", "bob", "live", static_cast<Seq>(b * kPerBatch + 1),
                              ReceiptKind::read));
      auto result = commit_batch(*store, batch);
      if (!result.ok()) writer_failure = result.error().message;
    }
    writer_done = true;
  });

  // Each commit holds ten messages and a receipt, so a reader must only ever see heads that
  // are multiples of ten, a dense tail up to the head, and a read cursor of head - 9.
  Seq last_head = 0;
  std::string reader_failure;
  while (!writer_done && reader_failure.empty()) {
    auto head = store->head("t", "live");
    auto tail = store->read_after("t", "live", last_head, 20);
    auto cursors = store->receipts("t", "bob", "live");
    if (!head.ok() || !tail.ok() || !cursors.ok()) {
      reader_failure = "a read failed";
      break;
    }
    const Seq h = head.value();
    if (h < last_head || h % kPerBatch != 0) reader_failure = numbered("head ", h);
    const auto& messages = tail.value();
    for (std::size_t i = 0; i < messages.size(); ++i)
      if (messages[i].seq != last_head + 1 + i) reader_failure = numbered("gap after ", last_head);
    if (messages.size() % kPerBatch != 0) reader_failure = "partial commit visible";
    if (cursors.value().read != 0 && cursors.value().read % kPerBatch != 1)
      reader_failure = numbered("read cursor ", cursors.value().read);
    last_head = h;
  }
  writer.join();
  CHECK(writer_failure.empty());
  CHECK(reader_failure.empty());
  CHECK(head_of(*store, "t", "live") == kTotal);
  CHECK(seqs(read(*store, "t", "live", 0, 5000)) == range(1, kTotal));
  CHECK(receipts_of(*store, "t", "bob", "live") == ReceiptCursors{kTotal - kPerBatch + 1,
                                                                  kTotal - kPerBatch + 1});
}

TEST_CASE("lmdb: Open creates the directory, refuses a file and a second open", "[lmdb]") {
  TempDir dir;
  const std::string nested = dir.path() + "/a/b";
  auto store = open_store(nested);
  CHECK(std::filesystem::is_directory(nested));
  CHECK(store->path() == std::filesystem::canonical(nested).string());
  auto used = store->size_bytes();
  REQUIRE(used.ok());
  CHECK(used.value() > 0);

  auto again = LmdbLogStore::Open(nested + "/../b");
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == ErrorCode::unavailable);
  store.reset();
  CHECK(LmdbLogStore::Open(nested).ok());

  const std::string file = dir.path() + "/plain-file";
  std::ofstream(file) << "not a directory";
  auto on_file = LmdbLogStore::Open(file);
  REQUIRE_FALSE(on_file.ok());
  CHECK(on_file.error().code == ErrorCode::unavailable);
}

TEST_CASE("lmdb: audit records are numbered in order, survive reopen, and read while open",
          "[lmdb][audit]") {
  TempDir dir;
  auto audit = [](std::uint64_t ticket, std::string event) {
    AuditRecord record;
    record.ts = static_cast<TimeMs>(ticket);
    record.event = std::move(event);
    return WriteRequest{ticket, AuditRequest{record}};
  };
  std::vector<std::pair<std::uint64_t, std::string>> seen;
  auto collect = [&](std::uint64_t number, std::string_view record) {
    seen.emplace_back(number, std::string(record));
  };
  {
    // A directory without a store is an error; a fresh store has no records.
    CHECK(!read_audit_log(dir.path() + "/missing", collect).ok());
    auto store = open_store(dir.path());
    REQUIRE(read_audit_log(dir.path(), collect).ok());
    CHECK(seen.empty());
    commit(*store, {audit(0, "auth_failed"), append(1, "t", "ops", "a1"), audit(0, "forbidden")});
    // Readable by another environment handle while this store is open (an edge running).
    REQUIRE(read_audit_log(dir.path(), collect).ok());
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == std::make_pair(std::uint64_t{1}, std::string(R"({"ts":0,"event":"auth_failed"})")));
    CHECK(seen[1].first == 2);
    CHECK(seen[1].second == R"({"ts":0,"event":"forbidden"})");
  }
  auto store = open_store(dir.path());
  commit(*store, {audit(3, "secret_reload")});
  seen.clear();
  REQUIRE(read_audit_log(dir.path(), collect).ok());
  REQUIRE(seen.size() == 3);
  CHECK(seen[2] == std::make_pair(std::uint64_t{3}, std::string(R"({"ts":3,"event":"secret_reload"})")));
  CHECK(head_of(*store, "t", "ops") == 1);
}


// ---- a relaying edge's staged sends and dead letters (sub-dbs staged, dead) ---------------

namespace {

WriteRequest staged_send(std::uint64_t ticket, const std::string& tenant, const std::string& conv,
                         const std::string& id) {
  WriteRequest request = append(ticket, tenant, conv, id, numbered("staged ", ticket), 1000,
                                traceparent(ticket));
  std::get<AppendRequest>(request.op).stage = true;
  return request;
}

WriteRequest replicated(std::uint64_t ticket, const std::string& conv, const std::string& id, Seq seq) {
  Msg msg;
  msg.conv = conv;
  msg.id = id;
  msg.seq = seq;
  msg.from = "alice";
  msg.ts = 2000;
  msg.body = JsonText{R"({"text":"sequenced"})"};
  return WriteRequest{ticket, ReplicateRequest{"dev", std::move(msg)}};
}

std::vector<std::string> staged_keys(LogReader& store) {
  auto staged = store.staged_messages();
  if (!staged.ok()) FAIL("staged_messages: " << staged.error().message);
  std::vector<std::string> keys;
  for (const auto& m : staged.value()) keys.push_back(m.tenant + "/" + m.conv + "/" + m.id);
  return keys;
}

// The dead sub-db as (key, record), read with LMDB itself once the store is closed.
std::vector<std::pair<std::string, std::string>> dead_letters_in(const std::string& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == MDB_SUCCESS);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == MDB_SUCCESS);
  int rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0644);
  if (rc != MDB_SUCCESS) {
    mdb_env_close(env);
    FAIL("mdb_env_open: " << mdb_strerror(rc));
  }
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == MDB_SUCCESS);
  MDB_dbi dbi = 0;
  rc = mdb_dbi_open(txn, "dead", 0, &dbi);
  if (rc == MDB_SUCCESS) {
    MDB_cursor* cursor = nullptr;
    REQUIRE(mdb_cursor_open(txn, dbi, &cursor) == MDB_SUCCESS);
    MDB_val key{}, data{};
    for (rc = mdb_cursor_get(cursor, &key, &data, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cursor, &key, &data, MDB_NEXT))
      out.emplace_back(std::string(static_cast<const char*>(key.mv_data), key.mv_size),
                       std::string(static_cast<const char*>(data.mv_data), data.mv_size));
    mdb_cursor_close(cursor);
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return out;
}

}  // namespace

TEST_CASE("lmdb: staged sends come back in staged order, across batches and a reopen", "[lmdb][relay]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    // Key order (tenant, conv, id) differs from staged order on purpose.
    auto first = commit(*store, {staged_send(1, "dev", "zeta", "m9"), staged_send(2, "acme", "ops", "m5")});
    CHECK(appended(first[0]).seq == 0);
    CHECK_FALSE(appended(first[0]).dup);
    auto second = commit(*store, {staged_send(3, "dev", "alpha", "m1"), staged_send(4, "dev", "zeta", "m9")});
    CHECK(appended(second[1]).dup);  // staged already
    CHECK(appended(second[1]).seq == 0);
    CHECK(staged_keys(*store) == std::vector<std::string>{"dev/zeta/m9", "acme/ops/m5", "dev/alpha/m1"});
    CHECK(head_of(*store, "dev", "zeta") == 0);
  }
  auto store = open_store(dir.path());
  CHECK(staged_keys(*store) == std::vector<std::string>{"dev/zeta/m9", "acme/ops/m5", "dev/alpha/m1"});
  // The frame survives as written: provisional, no seq, the sender's trace.
  auto staged = store->staged_messages().value();
  Msg frame = parse_stored(staged.at(0).frame);
  CHECK(frame.provisional);
  CHECK_FALSE(frame.seq);
  CHECK(frame.trace == std::optional<std::string>(traceparent(1)));
  // The stage counter survived too: a send staged after the reopen goes last.
  commit(*store, {staged_send(5, "acme", "a", "m0")});
  CHECK(staged_keys(*store) ==
        std::vector<std::string>{"dev/zeta/m9", "acme/ops/m5", "dev/alpha/m1", "acme/a/m0"});
  auto repeat = commit(*store, {staged_send(6, "acme", "ops", "m5")});
  CHECK(appended(repeat[0]).dup);
}

TEST_CASE("lmdb: replicating a staged send erases it, in the same batch too; its repeat is a dup",
          "[lmdb][relay]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    commit(*store, {staged_send(1, "dev", "ops", "a"), staged_send(2, "dev", "ops", "b")});
    auto out = commit(*store, {replicated(3, "ops", "a", 1), staged_send(4, "dev", "ops", "c"),
                               replicated(5, "ops", "c", 2)});
    const auto* first = std::get_if<ReplicateOutcome>(&out[0].result);
    REQUIRE(first);
    CHECK(first->stored);
    CHECK(first->was_staged);
    const auto* third = std::get_if<ReplicateOutcome>(&out[2].result);
    REQUIRE(third);
    CHECK(third->was_staged);  // staged and replicated within one transaction
    CHECK(staged_keys(*store) == std::vector<std::string>{"dev/ops/b"});
    CHECK(seqs(read(*store, "dev", "ops", 0, 10)) == range(1, 2));
    CHECK_FALSE(parse_stored(read(*store, "dev", "ops", 0, 10).at(0).frame).provisional);
  }
  auto store = open_store(dir.path());
  CHECK(staged_keys(*store) == std::vector<std::string>{"dev/ops/b"});
  auto again = commit(*store, {staged_send(6, "dev", "ops", "a")});
  CHECK(appended(again[0]).dup);
  CHECK(appended(again[0]).seq == 1);
  CHECK(staged_keys(*store) == std::vector<std::string>{"dev/ops/b"});
}

TEST_CASE("lmdb: a dead letter leaves the staged sends and is kept in the dead sub-db", "[lmdb][relay]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    commit(*store, {staged_send(1, "dev", "ops", "bad"), staged_send(2, "dev", "ops", "good")});
    auto out = commit(*store, {WriteRequest{3, DeadLetterRequest{"dev", "ops", "bad",
                                                                 make_error(ErrorCode::forbidden, "conv: no access"), 4242}},
                               WriteRequest{4, DeadLetterRequest{"dev", "ops", "unknown",
                                                                 make_error(ErrorCode::forbidden, "x"), 4243}}});
    const auto* dead = std::get_if<DeadLetterOutcome>(&out[0].result);
    REQUIRE(dead);
    CHECK(dead->found);
    CHECK(dead->from == "alice");
    const auto* unknown = std::get_if<DeadLetterOutcome>(&out[1].result);
    REQUIRE(unknown);
    CHECK_FALSE(unknown->found);
    CHECK(staged_keys(*store) == std::vector<std::string>{"dev/ops/good"});
  }
  auto letters = dead_letters_in(dir.path());
  REQUIRE(letters.size() == 1);
  CHECK(letters[0].first == std::string("dev\0ops\0bad", 11));
  auto record = boost::json::parse(letters[0].second).as_object();
  CHECK(record.at("id").as_string() == "bad");
  CHECK(record.at("code").as_string() == "forbidden");
  CHECK(record.at("ts").as_int64() == 4242);
  CHECK(record.at("msg").as_object().at("prov").as_bool());
  auto store = open_store(dir.path());
  CHECK(staged_keys(*store) == std::vector<std::string>{"dev/ops/good"});
}

// ---- the write-ahead log: what a crash leaves, and what reopening makes of it ------------

namespace {

// Options that keep everything in the write-ahead log: no checkpoint runs by itself.
LmdbOptions log_only() {
  LmdbOptions options;
  options.apply_bytes = std::uint64_t{1} << 40;
  options.apply_interval = std::chrono::hours(1);
  return options;
}

// Runs work in a child process that then ends with _exit, as kill -9 would end it: no
// destructor runs, so no checkpoint; whatever work wrote is only where write() put it. The
// child reports a failure by its exit code (no Catch2 there).
void in_crashing_child(const std::function<bool()>& work) {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(work() ? 0 : 1);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

bool child_commit(LogStore& store, const std::vector<WriteRequest>& requests) {
  return commit_batch(store, requests).ok();
}

// The child's store, never closed (closing would checkpoint): released, and gone with the child.
LmdbLogStore* child_store(const std::string& dir, const LmdbOptions& options) {
  auto opened = LmdbLogStore::Open(dir, options);
  return opened.ok() ? std::move(opened).value().release() : nullptr;
}

std::uintmax_t file_size(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace

TEST_CASE("wal: a crash after the acks loses nothing the log held, and reopening applies it",
          "[lmdb][wal]") {
  TempDir dir;
  in_crashing_child([&] {
    LmdbLogStore* opened = child_store(dir.path(), log_only());
    if (!opened) return false;
    LmdbLogStore& store = *opened;
    return child_commit(store, {append(1, "t", "ops", "a1", "one"), append(2, "t", "dev", "b1")}) &&
           child_commit(store, {append(3, "t", "ops", "a2", "two"),
                                receipt(4, "t", "bob", "ops", 2, ReceiptKind::read),
                                WriteRequest{0, AuditRequest{AuditRecord{5, "forbidden"}}}}) &&
           child_commit(store, {staged_send(6, "t", "ops", "s1"), staged_send(7, "t", "ops", "s2")}) &&
           store.write([](LogTxn& txn) { return txn.erase_staged("t", "ops", "s1"); }).ok();
  });
  // Nothing reached LMDB's log: the child never checkpointed.
  CHECK(file_size(dir.path() + "/wal-0") > 0);
  std::vector<std::pair<std::uint64_t, std::string>> audit;
  REQUIRE(read_audit_log(dir.path(), [&](std::uint64_t n, std::string_view r) {
            audit.emplace_back(n, std::string(r));
          }).ok());
  REQUIRE(audit.size() == 1);  // read from the log, as `waymark-edge audit` reads a running edge
  CHECK(audit[0].first == 1);

  auto store = open_store(dir.path(), log_only());
  CHECK(head_of(*store, "t", "ops") == 2);
  CHECK(head_of(*store, "t", "dev") == 1);
  auto ops = read(*store, "t", "ops", 0, 10);
  REQUIRE(seqs(ops) == range(1, 2));
  CHECK(text_of(parse_stored(ops[1].frame)) == "two");
  CHECK(receipts_of(*store, "t", "bob", "ops") == ReceiptCursors{2, 2});
  CHECK(staged_keys(*store) == std::vector<std::string>{"t/ops/s2"});
  // The id index came back too: a resend is a dup of seq 1, and sequencing goes on from 2.
  auto again = commit(*store, {append(8, "t", "ops", "a1"), append(9, "t", "ops", "a3")});
  CHECK(appended(again[0]).dup);
  CHECK(appended(again[0]).seq == 1);
  CHECK(appended(again[1]).seq == 3);
  // Applied and checkpointed on reopen: a second crash-free reopen sees the same.
  store.reset();
  store = open_store(dir.path());
  CHECK(head_of(*store, "t", "ops") == 3);
}

TEST_CASE("wal: a torn last record is dropped and every batch before it kept", "[lmdb][wal]") {
  TempDir dir;
  in_crashing_child([&] {
    LmdbLogStore* opened = child_store(dir.path(), log_only());
    if (!opened) return false;
    for (int b = 1; b <= 5; ++b)
      if (!child_commit(*opened, {append(b, "t", "ops", numbered("m", b), std::string(300, 'x'))}))
        return false;
    return true;
  });
  // Damage the last byte written (the log pads its files with zeros): the fifth record's CRC
  // no longer matches, as after a crash in the middle of writing it, before its ack.
  const std::string wal = dir.path() + "/wal-0";
  std::string bytes;
  {
    std::ifstream in(wal, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto last = bytes.find_last_not_of('\0');
  REQUIRE(last != std::string::npos);
  bytes[last] = static_cast<char>(bytes[last] ^ 0x5a);
  {
    std::ofstream out(wal, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  auto store = open_store(dir.path(), log_only());
  CHECK(head_of(*store, "t", "ops") == 4);
  CHECK(seqs(read(*store, "t", "ops", 0, 10)) == range(1, 4));
  // The torn batch was never acknowledged; sent again it is new, and takes seq 5.
  auto again = commit(*store, {append(9, "t", "ops", "m5")});
  CHECK_FALSE(appended(again[0]).dup);
  CHECK(appended(again[0]).seq == 5);
}

TEST_CASE("wal: after many checkpoints reusing both files, a crash still recovers exactly",
          "[lmdb][wal]") {
  TempDir dir;
  constexpr int kBatches = 400;
  in_crashing_child([&] {
    LmdbOptions options;
    options.apply_bytes = 8 * kKiB;  // a checkpoint every few batches: the files are reused often
    options.apply_interval = std::chrono::milliseconds(1);
    LmdbLogStore* opened = child_store(dir.path(), options);
    if (!opened) return false;
    for (int b = 0; b < kBatches; ++b) {
      std::vector<WriteRequest> batch;
      for (int i = 0; i < 3; ++i)
        batch.push_back(append(i, "t", numbered("c", i), numbered(numbered("b", b) + "_", i),
                               std::string(200, 'a' + b % 26)));
      if (!child_commit(*opened, batch)) return false;
    }
    return true;
  });
  auto store = open_store(dir.path(), log_only());
  for (int i = 0; i < 3; ++i) {
    CHECK(head_of(*store, "t", numbered("c", i)) == kBatches);
    auto all = read(*store, "t", numbered("c", i), 0, 10000);
    REQUIRE(seqs(all) == range(1, kBatches));
    CHECK(text_of(parse_stored(all.back().frame)) == std::string(200, 'a' + (kBatches - 1) % 26));
  }
}


// ---- the log's chunks, and the layout before them ----------------------------------------

TEST_CASE("lmdb: the log's chunks: interleaved conversations, checkpoints mid-run, every cursor "
          "and every id after reopen", "[lmdb][chunks]") {
  TempDir dir;
  LmdbOptions options = log_only();  // checkpoints only where this test syncs
  const std::vector<std::string> convs = {"a", "b", "a1"};
  std::map<std::string, std::vector<std::string>> frames;  // per conv, the frames fanned out
  std::map<std::string, std::vector<std::tuple<std::string, TimeMs, std::string>>> sent;
  auto check_reads = [&](LogReader& store, bool every_cursor) {
    for (const auto& conv : convs) {
      const auto& expected = frames[conv];
      CAPTURE(conv, expected.size());
      REQUIRE(head_of(store, "t", conv) == expected.size());
      const std::vector<std::uint32_t> limits = {1, 7, 100000};
      for (Seq after = 0; after <= expected.size(); after += every_cursor ? 1 : 25)
        for (std::uint32_t limit : limits) {
          auto got = read(store, "t", conv, after, limit);
          const std::size_t want = std::min<std::size_t>(limit, expected.size() - after);
          REQUIRE(got.size() == want);
          for (std::size_t i = 0; i < want; ++i) {
            CHECK(got[i].seq == after + 1 + i);
            CHECK(got[i].frame == expected[after + i]);
          }
        }
    }
  };
  {
    auto store = open_store(dir.path(), options);
    std::uint64_t n = 0;
    for (int b = 0; b < 60; ++b) {
      std::vector<WriteRequest> batch;
      for (int i = 0; i < 7; ++i, ++n) {
        const std::string& conv = convs[n % convs.size()];
        // Bodies from a few bytes to a few hundred, and now and then one bigger than a page.
        std::string text(n % 41 == 40 ? 9000 : (n * 37) % 700, static_cast<char>('a' + n % 26));
        std::string id = numbered(numbered("id", n) + "-", n * 7919 % 1000);
        const TimeMs ts = 1000 + static_cast<TimeMs>(n);
        batch.push_back(append(n, "t", conv, id, text, ts, traceparent(n + 1)));
        sent[conv].emplace_back(id, ts, traceparent(n + 1));
      }
      auto outcomes = commit(*store, batch);
      for (std::size_t i = 0; i < outcomes.size(); ++i)
        frames[std::get<AppendRequest>(batch[i].op).msg.conv].push_back(*appended(outcomes[i]).frame);
      if (b % 3 == 2) REQUIRE(store->sync().ok());
      if (b % 10 == 9) check_reads(*store, false);  // LMDB's chunks under the pending layer
    }
  }
  auto store = open_store(dir.path(), options);
  check_reads(*store, true);
  // Every id is found in the index: each retry is a dup with the original's seq, ts and trace.
  std::vector<WriteRequest> retries;
  std::vector<std::tuple<Seq, TimeMs, std::string>> originals;
  for (const auto& conv : convs)
    for (std::size_t i = 0; i < sent[conv].size(); ++i) {
      const auto& [id, ts, trace] = sent[conv][i];
      retries.push_back(append(retries.size(), "t", conv, id, "retried", 999999));
      originals.emplace_back(i + 1, ts, trace);
    }
  auto outcomes = commit(*store, retries);
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    const AppendOutcome& outcome = appended(outcomes[i]);
    CAPTURE(i);
    CHECK(outcome.dup);
    CHECK(outcome.seq == std::get<0>(originals[i]));
    CHECK(outcome.ts == std::get<1>(originals[i]));
    CHECK(outcome.trace == std::optional<std::string>(std::get<2>(originals[i])));
  }
  // A new id still gets the next seq, and an id of one conversation is new in another.
  auto fresh = commit(*store, {append(1, "t", "a", "brand-new"), append(2, "t", "b", std::get<0>(sent["a"][0]))});
  CHECK_FALSE(appended(fresh[0]).dup);
  CHECK(appended(fresh[0]).seq == frames["a"].size() + 1);
  CHECK_FALSE(appended(fresh[1]).dup);
  CHECK(appended(fresh[1]).seq == frames["b"].size() + 1);
}

namespace {

// A store as an edge wrote it before the chunked layout: "log" (tenant \0 conv \0 seq -> msg
// frame), "ids" and "heads", written with LMDB directly.
void write_legacy_store(const std::string& dir, const std::vector<Msg>& msgs, const std::string& tenant) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == MDB_SUCCESS);
  std::unique_ptr<MDB_env, decltype(&mdb_env_close)> owned(env, &mdb_env_close);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == MDB_SUCCESS);
  REQUIRE(mdb_env_set_mapsize(env, 256 * kMiB) == MDB_SUCCESS);
  REQUIRE(mdb_env_open(env, dir.c_str(), 0, 0600) == MDB_SUCCESS);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == MDB_SUCCESS);
  MDB_dbi log = 0, ids = 0, heads = 0;
  REQUIRE(mdb_dbi_open(txn, "log", MDB_CREATE, &log) == MDB_SUCCESS);
  REQUIRE(mdb_dbi_open(txn, "ids", MDB_CREATE, &ids) == MDB_SUCCESS);
  REQUIRE(mdb_dbi_open(txn, "heads", MDB_CREATE, &heads) == MDB_SUCCESS);
  auto be64 = [](std::uint64_t value) {
    std::string out(8, '\0');
    for (int i = 7; i >= 0; --i, value >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(value & 0xff);
    return out;
  };
  auto put = [&](MDB_dbi dbi, const std::string& key, const std::string& value) {
    MDB_val k{key.size(), const_cast<char*>(key.data())}, v{value.size(), const_cast<char*>(value.data())};
    REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == MDB_SUCCESS);
  };
  for (const Msg& msg : msgs) {
    const std::string conv_key = tenant + '\0' + msg.conv;
    put(log, conv_key + '\0' + be64(*msg.seq), serialize(msg));
    put(ids, conv_key + '\0' + msg.id, be64(*msg.seq));
    put(heads, conv_key, be64(*msg.seq));
  }
  REQUIRE(mdb_txn_commit(txn) == MDB_SUCCESS);
}

// Entries in the named sub-database of the store in dir (opened read-only).
std::size_t entries_in(const std::string& dir, const char* name) {
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == MDB_SUCCESS);
  std::unique_ptr<MDB_env, decltype(&mdb_env_close)> owned(env, &mdb_env_close);
  REQUIRE(mdb_env_set_maxdbs(env, 16) == MDB_SUCCESS);
  REQUIRE(mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0600) == MDB_SUCCESS);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == MDB_SUCCESS);
  std::unique_ptr<MDB_txn, decltype(&mdb_txn_abort)> owned_txn(txn, &mdb_txn_abort);
  MDB_dbi dbi = 0;
  REQUIRE(mdb_dbi_open(txn, name, 0, &dbi) == MDB_SUCCESS);
  MDB_stat stat{};
  REQUIRE(mdb_stat(txn, dbi, &stat) == MDB_SUCCESS);
  return stat.ms_entries;
}

Msg legacy_msg(const std::string& conv, Seq seq) {
  Msg msg = std::get<AppendRequest>(append(0, "t", conv, numbered("m", seq), numbered("old ", seq),
                                           500 + static_cast<TimeMs>(seq), traceparent(seq))
                                        .op)
                .msg;
  msg.seq = seq;
  return msg;
}

}  // namespace

TEST_CASE("lmdb: a store in the layout before chunks moves into them at Open, ids and heads intact",
          "[lmdb][chunks]") {
  TempDir dir;
  constexpr Seq kOps = 10050;  // more than one move transaction's worth
  std::vector<Msg> msgs;
  for (Seq seq = 1; seq <= kOps; ++seq) msgs.push_back(legacy_msg("ops", seq));
  for (Seq seq = 1; seq <= 3; ++seq) msgs.push_back(legacy_msg("dev", seq));
  write_legacy_store(dir.path(), msgs, "t");
  {
    auto store = open_store(dir.path());
    CHECK(head_of(*store, "t", "ops") == kOps);
    auto ops = read(*store, "t", "ops", 0, 100000);
    REQUIRE(ops.size() == kOps);
    for (Seq seq = 1; seq <= kOps; ++seq) REQUIRE(ops[seq - 1].frame == serialize(msgs[seq - 1]));
    auto dev = read(*store, "t", "dev", 1, 10);
    REQUIRE(seqs(dev) == range(2, 3));
    CHECK(dev[0].frame == serialize(msgs[kOps + 1]));
    // A retry of an id stored before the move is a dup with its original seq, ts and trace.
    auto retry = commit(*store, {append(1, "t", "ops", "m5", "again", 99), append(2, "t", "ops", "new")});
    CHECK(appended(retry[0]).dup);
    CHECK(appended(retry[0]).seq == 5);
    CHECK(appended(retry[0]).ts == 505);
    CHECK(appended(retry[0]).trace == std::optional<std::string>(traceparent(5)));
    CHECK_FALSE(appended(retry[1]).dup);
    CHECK(appended(retry[1]).seq == kOps + 1);
  }
  CHECK(entries_in(dir.path(), "log") == 0);
  CHECK(entries_in(dir.path(), "ids") == 0);
  auto store = open_store(dir.path());
  CHECK(read(*store, "t", "ops", kOps - 1, 10).size() == 2);
  CHECK(appended(commit(*store, {append(1, "t", "ops", "m10050")})[0]).dup);
}

TEST_CASE("wal: a log an older edge wrote (msg frames as values) is recovered into records",
          "[lmdb][wal][chunks]") {
  TempDir dir;
  { auto store = open_store(dir.path()); }  // an empty store, all applied
  const Msg msg = legacy_msg("ops", 1);
  {
    auto wal = WriteAheadLog::Open(dir.path());
    REQUIRE(wal.ok());
    const std::string conv_key = std::string("t") + '\0' + "ops";
    const std::string seq_one("\0\0\0\0\0\0\0\x01", 8);
    // The sub-database numbers of lmdb_log_store.cpp: log 0, ids 1, heads 3.
    REQUIRE(wal.value()
                ->append(1, {WalChange{0, conv_key + '\0' + seq_one, serialize(msg)},
                             WalChange{1, conv_key + '\0' + msg.id, seq_one},
                             WalChange{3, conv_key, seq_one}})
                .ok());
  }
  auto store = open_store(dir.path());
  CHECK(head_of(*store, "t", "ops") == 1);
  auto ops = read(*store, "t", "ops", 0, 10);
  REQUIRE(ops.size() == 1);
  CHECK(ops[0].frame == serialize(msg));
  CHECK(appended(commit(*store, {append(1, "t", "ops", msg.id)})[0]).dup);
}

}  // namespace waymark::edge
