// EdgeNode's limits, deadlines and audit records (docs/security.md): the per-connection frame
// bucket and abuse close, typing rate, subscription and per-user connection caps, the hello
// deadline, token expiry, and what is audited.
#include "edge_harness.h"

namespace {

// Tokens that expire, and an authenticator whose reload succeeds or fails on demand.
class ExpiringAuthenticator final : public Authenticator {
 public:
  std::optional<TimeMs> expires_at;
  std::optional<Result<std::string>> next_reload;

  Result<Identity> authenticate(std::string_view token, TimeMs now) override {
    if (token.substr(0, 4) != "tok:") return make_error(ErrorCode::unauthorized, "token: unknown");
    if (expires_at && *expires_at <= now) return make_error(ErrorCode::unauthorized, "token: expired");
    Identity id = identity("acme", std::string(token.substr(4)));
    id.expires_at = expires_at;
    return id;
  }
  std::optional<Result<std::string>> reload() override { return next_reload; }
};

// The audit records waiting in the writer, as JSON.
std::vector<std::string> audit_records(const Harness& h) {
  std::vector<std::string> out;
  for (const WriteRequest& request : h.writer)
    if (const auto* audit = std::get_if<AuditRequest>(&request.op)) out.push_back(audit_json(audit->record));
  return out;
}

}  // namespace

TEST_CASE("limits: a connection over its frame bucket is refused rate_limited, then refilled",
          "[edge_node][limits]") {
  EdgeConfig config = test_config();
  config.rate_per_sec = 10;
  config.rate_burst = 4;
  Harness h(config);
  ConnId ann = h.join_dev("ann");  // the hello took no token: limits start after it
  for (int i = 1; i <= 4; ++i) h.text(ann, send_frame("ops", "m" + std::to_string(i)));
  h.text(ann, send_frame("ops", "m5", R"(,"rid":"r5")"));
  h.text(ann, sub_frame("ops", std::nullopt, std::nullopt, R"(,"rid":"s")"));
  h.text(ann, "not json");
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"nack", "err", "err"});
  const Nack& nack = as<Nack>(got[0]);
  CHECK(nack.code == ErrorCode::rate_limited);
  CHECK(nack.retry);
  CHECK(nack.id == "m5");
  CHECK(nack.rid == std::optional<std::string>("r5"));
  CHECK(as<Err>(got[1]).code == ErrorCode::rate_limited);
  CHECK(as<Err>(got[1]).rid == std::optional<std::string>("s"));
  CHECK(as<Err>(got[2]).code == ErrorCode::rate_limited);
  CHECK(h.writer.size() == 4);  // the four admitted sends

  // 100 ms later one token is back: one frame passes, the next is refused again.
  h.now += 100;
  h.text(ann, send_frame("ops", "m5"));
  h.text(ann, send_frame("ops", "m6"));
  h.commit();
  got = h.take(ann);
  CHECK(all_of<Ack>(got).size() == 5);
  REQUIRE(all_of<Nack>(got).size() == 1);
  CHECK(all_of<Nack>(got)[0].id == "m6");

  // Others are not affected by ann's bucket.
  ConnId bob = h.join_dev("bob");
  h.text(bob, send_frame("ops", "b1"));
  h.commit();
  CHECK(all_of<Ack>(h.take(bob)).size() == 1);

  // rate_per_sec 0: no limit at all.
  EdgeConfig unlimited = test_config();
  unlimited.rate_per_sec = 0;
  Harness free(unlimited);
  ConnId cat = free.join_dev("cat");
  for (int i = 0; i < 5000; ++i) free.text(cat, R"({"t":"ping"})");
  auto pongs = free.take(cat);
  CHECK(all_of<Pong>(pongs).size() == 5000);
}

TEST_CASE("limits: repeated refusals close the connection as abusive, 4008, audited",
          "[edge_node][limits]") {
  EdgeConfig config = test_config();
  config.rate_per_sec = 1;
  config.rate_burst = 1;
  config.abuse_refusals = 3;
  Harness h(config);
  ConnId ann = h.join_dev("ann");
  h.text(ann, R"({"t":"ping"})");  // the one token
  h.text(ann, R"({"t":"ping"})");
  h.text(ann, R"({"t":"ping"})");
  CHECK(types(h.take(ann)) == std::vector<std::string>{"pong", "err", "err"});
  h.text(ann, R"({"t":"ping"})");  // the third refusal
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"err", "bye", "close:4008"});
  CHECK(as<Bye>(got[1]).reason == "abusive");
  CHECK(as<Bye>(got[1]).retry_min_ms == config.abuse_retry_min_ms);
  CHECK(as<Bye>(got[1]).retry_max_ms == config.abuse_retry_max_ms);
  auto records = audit_records(h);
  REQUIRE(records.size() == 1);
  CHECK(contains(records[0], R"("event":"abusive")"));
  CHECK(contains(records[0], R"("user":"ann")"));

  // Refusals spread wider than the window do not add up.
  Harness slow(config);
  ConnId bob = slow.join_dev("bob");
  for (int i = 0; i < 10; ++i) {
    slow.text(bob, R"({"t":"ping"})");
    slow.text(bob, R"({"t":"ping"})");  // refused: bucket empty
    slow.now += config.abuse_window_ms / 2;
  }
  for (const Out& out : slow.take(bob)) CHECK(!out.close_code);
}

TEST_CASE("limits: typing on is capped per conversation and not fanned out over the cap",
          "[edge_node][limits]") {
  Harness h;  // the default: 2 per second per conversation
  ConnId watcher = h.subscriber("bob", "ops");
  ConnId ann = h.join_dev("ann");
  // on, off, on: a message sent and typing again at once; "off" is never limited.
  h.text(ann, R"({"t":"typing","conv":"ops","on":true})");
  h.text(ann, R"({"t":"typing","conv":"ops","on":false})");
  h.text(ann, R"({"t":"typing","conv":"ops","on":true})");
  h.text(ann, R"({"t":"typing","conv":"ops","on":true,"rid":"t3"})");  // the third "on"
  h.text(ann, R"({"t":"typing","conv":"ops","on":false})");
  h.text(ann, R"({"t":"typing","conv":"ops2","on":true})");  // its own bucket
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"err"});
  CHECK(as<Err>(got[0]).code == ErrorCode::rate_limited);
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("t3"));
  CHECK(all_of<Typing>(h.take(watcher)).size() == 4);
  h.now += 500;  // one more typing frame's worth
  h.text(ann, R"({"t":"typing","conv":"ops","on":true})");
  CHECK(h.take(ann).empty());
  CHECK(all_of<Typing>(h.take(watcher)).size() == 1);
}

TEST_CASE("limits: subscriptions per connection are capped", "[edge_node][limits]") {
  EdgeConfig config = test_config();
  config.max_subs = 2;
  Harness h(config);
  ConnId ann = h.join_dev("ann");
  h.text(ann, sub_frame("a"));
  h.text(ann, sub_frame("b"));
  h.text(ann, sub_frame("c", std::nullopt, std::nullopt, R"(,"rid":"c")"));
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"subd", "subd", "err"});
  CHECK(as<Err>(got[2]).code == ErrorCode::rate_limited);
  CHECK(as<Err>(got[2]).rid == std::optional<std::string>("c"));
  CHECK(contains(as<Err>(got[2]).msg, "subs"));
  h.text(ann, sub_frame("a"));  // a re-sub is no new subscription
  CHECK(types(h.take(ann)) == std::vector<std::string>{"subd"});
  h.text(ann, R"({"t":"unsub","conv":"b"})");
  h.text(ann, sub_frame("c"));
  CHECK(types(h.take(ann)) == std::vector<std::string>{"subd"});
  // hello.subs counts the same way.
  ConnId tab = h.connect();
  h.text(tab, R"({"t":"hello","token":"dev:bob","subs":[{"conv":"a"},{"conv":"b"},{"conv":"c"}]})");
  CHECK(types(h.take(tab)) == std::vector<std::string>{"welcome", "subd", "subd", "err"});
}

TEST_CASE("limits: connections per user are capped after hello", "[edge_node][limits]") {
  EdgeConfig config = test_config();
  config.max_conns_per_user = 2;
  Harness h(config);
  ConnId first = h.join_dev("ann");
  h.join_dev("ann");
  ConnId third = h.connect();
  h.text(third, R"({"t":"hello","token":"dev:ann","rid":"h"})");
  auto got = h.take(third);
  REQUIRE(types(got) == std::vector<std::string>{"err", "bye", "close:4008"});
  CHECK(as<Err>(got[0]).code == ErrorCode::rate_limited);
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("h"));
  CHECK(as<Bye>(got[1]).reason == "too_many_connections");
  auto records = audit_records(h);
  REQUIRE(records.size() == 1);
  CHECK(contains(records[0], R"("event":"too_many_connections")"));
  h.disconnect(third);  // refused: it never counted

  h.join_dev("bob");        // another user is not affected
  h.disconnect(first);      // a slot frees up
  h.join_dev("ann");
}

TEST_CASE("limits: a socket that says no hello within the handshake timeout closes 4001",
          "[edge_node][limits]") {
  EdgeConfig config = test_config();
  config.handshake_timeout_ms = 1000;
  Harness h(config);
  ConnId silent = h.connect();
  REQUIRE(h.edge.next_deadline() == std::optional<TimeMs>(kStart + 1000));
  h.now += 999;
  h.edge.on_timer(h.now);
  h.pump();
  CHECK(h.take(silent).empty());
  ConnId greeted = h.join_dev("ann");  // within its own deadline
  h.now += 1;
  h.edge.on_timer(h.now);
  h.pump();
  auto got = h.take(silent);
  REQUIRE(types(got) == std::vector<std::string>{"err", "close:4001"});
  CHECK(as<Err>(got[0]).code == ErrorCode::unauthorized);
  CHECK(contains(as<Err>(got[0]).msg, "hello"));
  h.now += 5000;
  h.edge.on_timer(h.now);
  h.pump();
  CHECK(h.take(greeted).empty());  // a session that said hello has no handshake deadline
  CHECK(!h.edge.next_deadline());
}

TEST_CASE("limits: a token that expires mid-session gets bye token_expired and close 4001",
          "[edge_node][limits]") {
  ExpiringAuthenticator auth;
  auth.expires_at = kStart + 60'000;
  Harness h(test_config(), &auth);
  ConnId ann = h.join("tok:ann");
  CHECK(h.edge.next_deadline() == auth.expires_at);
  h.now = *auth.expires_at - 1;
  h.edge.on_timer(h.now);
  h.pump();
  CHECK(h.take(ann).empty());
  h.now += 1;
  h.edge.on_timer(h.now);
  h.pump();
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"bye", "close:4001"});
  CHECK(as<Bye>(got[0]).reason == "token_expired");
  CHECK(as<Bye>(got[0]).retry_max_ms <= 1000);
  // The same token is refused from now on.
  ConnId again = h.connect();
  h.text(again, R"({"t":"hello","token":"tok:ann"})");
  CHECK(types(h.take(again)) == std::vector<std::string>{"err", "close:4001"});
}

TEST_CASE("audit: auth failures, forbidden attempts and reloads become audit records",
          "[edge_node][audit]") {
  ExpiringAuthenticator auth;
  Harness h(test_config(), &auth);
  h.edge.on_connect(h.next_conn_, h.now, "10.1.2.3");
  ConnId stranger = h.next_conn_++;
  h.text(stranger, R"({"t":"hello","token":"stolen"})");

  TableAuthenticator table;
  table.add("tok-ann", identity("acme", "ann", {"ops"}));
  Harness limited(test_config(), &table);
  ConnId ann = limited.join("tok-ann");
  limited.text(ann, sub_frame("payroll"));
  limited.text(ann, send_frame("payroll", "m1"));
  auto forbidden = audit_records(limited);
  REQUIRE(forbidden.size() == 2);
  CHECK(contains(forbidden[0], R"("event":"forbidden")"));
  CHECK(contains(forbidden[0], R"("conv":"payroll")"));
  CHECK(contains(forbidden[0], R"("frame":"sub")"));
  CHECK(contains(forbidden[0], R"("tenant":"acme")"));
  CHECK(contains(forbidden[1], R"("frame":"send")"));

  auth.next_reload = Result<std::string>(std::string("2 secret(s)"));
  h.edge.reload_auth(h.now);
  auth.next_reload = Result<std::string>(make_error(ErrorCode::invalid, "secrets: too short"));
  h.edge.reload_auth(h.now);
  h.pump();
  auto records = audit_records(h);
  REQUIRE(records.size() == 3);
  CHECK(contains(records[0], R"("event":"auth_failed")"));
  CHECK(contains(records[0], R"("peer":"10.1.2.3")"));
  CHECK(contains(records[0], R"("detail":"token: unknown")"));
  CHECK(contains(records[1], R"("event":"secret_reload")"));
  CHECK(contains(records[2], R"("event":"secret_reload_failed")"));
  CHECK(contains(records[2], "too short"));

  // Committed in order to the store's audit log, with nobody waiting for an answer.
  h.commit();
  REQUIRE(h.store.data().audit.size() == 3);
  CHECK(h.store.data().audit == records);
  CHECK(h.edge.counters().audit_records == 3);
}

TEST_CASE("audit: records over the node's audit rate are counted, not stored", "[edge_node][audit]") {
  EdgeConfig config = test_config();
  config.audit_per_sec = 5;
  config.rate_per_sec = 0;
  TableAuthenticator table;
  table.add("tok-ann", identity("acme", "ann", {"ops"}));
  Harness h(config, &table);
  ConnId ann = h.join("tok-ann");
  for (int i = 0; i < 20; ++i) h.text(ann, sub_frame("payroll"));
  CHECK(audit_records(h).size() == 5);
  CHECK(h.edge.counters().audit_suppressed == 15);
  // Every attempt was still refused.
  CHECK(all_of<Err>(h.take(ann)).size() == 20);
  // A reload is always recorded.
  h.edge.reload_auth(h.now);  // TableAuthenticator: nothing to reload, no record
  CHECK(audit_records(h).size() == 5);
}

TEST_CASE("permissions: a read-only conversation is read, received and marked read, never written",
          "[edge_node][permissions]") {
  TableAuthenticator table;
  Identity reader = identity("acme", "rita", {"team"});
  reader.read_convs = {"news"};
  table.add("tok-rita", reader);
  table.add("tok-poster", identity("acme", "paul", {"news", "team"}));
  Harness h(test_config(), &table);
  ConnId paul = h.join("tok-poster");
  h.text(paul, send_frame("news", "n1"));
  h.commit();
  h.take(paul);

  ConnId rita = h.connect();
  h.text(rita, R"({"t":"hello","token":"tok-rita","subs":[{"conv":"news","after":0}]})");
  auto joined = h.take(rita);
  CHECK(msg_seqs(joined, "news") == std::vector<Seq>{1});  // hello.subs: read access is enough
  h.text(rita, R"({"t":"hist","conv":"news","rid":"h1"})");
  CHECK(all_of<Page>(h.take(rita)).size() == 1);
  h.text(rita, rcpt_frame("news", 1, "read"));
  h.commit();
  CHECK(h.store.receipts("acme", "rita", "news").value().read == 1);
  h.take(rita);

  // send: nack forbidden, retry false, saying read-only; nothing stored.
  h.text(rita, send_frame("news", "r1"));
  auto nacks = all_of<Nack>(h.take(rita));
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].code == ErrorCode::forbidden);
  CHECK_FALSE(nacks[0].retry);
  CHECK(nacks[0].msg == R"(conv: "news" is read-only for this token)");
  for (const WriteRequest& request : h.writer)  // only its audit record waits for the writer
    CHECK(std::holds_alternative<AuditRequest>(request.op));
  // typing: err forbidden, not fanned out.
  h.take(paul);
  h.text(rita, R"({"t":"typing","conv":"news","on":true})");
  auto errs = all_of<Err>(h.take(rita));
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::forbidden);
  CHECK(contains(errs[0].msg, "read-only"));
  CHECK(all_of<Typing>(h.take(paul)).empty());
  // Each refusal is audited with its frame.
  auto records = audit_records(h);
  REQUIRE(records.size() == 2);
  CHECK(contains(records[0], R"("frame":"send")"));
  CHECK(contains(records[1], R"("frame":"typing")"));
  // Her own conversation she writes; one she has no claim on she cannot even read.
  h.text(rita, send_frame("team", "t1"));
  h.commit();
  CHECK(all_of<Ack>(h.take(rita)).size() == 1);
  h.text(rita, sub_frame("payroll"));
  auto refused = all_of<Err>(h.take(rita));
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].msg == R"(conv: no access to "payroll")");
  CHECK(h.store.read_after("acme", "news", 0, 10).value().size() == 1);  // only paul's n1
}
