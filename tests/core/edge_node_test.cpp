// EdgeNode against protocol.md: sessions, sends acked only after commit, idempotency, replay
// and the replay/live boundary, history, receipts, typing, presence, access, tenants, limits.
#include "edge_harness.h"

// ---- session -------------------------------------------------------------------------------

TEST_CASE("edge_node: anything but a hello first is unauthorized and closes 4001", "[edge_node]") {
  Harness h;
  ConnId conn = h.connect();
  std::string expected_rid;

  SECTION("a valid non-hello frame") {
    h.text(conn, R"({"t":"ping","ts":5,"rid":"r0"})");
    expected_rid = "r0";
  }
  SECTION("a send") { h.text(conn, send_frame("ops", "m1")); }
  SECTION("not JSON") { h.text(conn, "hello?"); }
  SECTION("a server-only type") {
    h.text(conn, R"({"t":"welcome","session":"s","node":"n","user":"u","ts":1,"hb":1,"max_frame":1})");
  }
  SECTION("a malformed frame that is not a hello, though it mentions one") {
    h.text(conn, R"({"t":"sub","conv":"hello","after":-1})");
  }
  SECTION("a binary frame") { h.edge.on_binary(conn, h.now); h.pump(); }

  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"err", "close:4001"});
  CHECK(as<Err>(got[0]).code == ErrorCode::unauthorized);
  if (!expected_rid.empty()) CHECK(as<Err>(got[0]).rid == expected_rid);
  CHECK(h.writer.empty());

  // The socket is closing: a hello now is not heard.
  h.text(conn, R"({"t":"hello","token":"dev:alice"})");
  CHECK(h.take(conn).empty());
}

TEST_CASE("edge_node: a bad token or a malformed hello closes 4001", "[edge_node]") {
  Harness h;
  ConnId conn = h.connect();
  std::string field;
  ErrorCode code = ErrorCode::invalid;
  std::optional<std::string> rid;

  SECTION("a token dev mode does not know") {
    h.text(conn, R"({"t":"hello","token":"eyJhbGciOiJIUzI1NiJ9.x.y","rid":"h1"})");
    code = ErrorCode::unauthorized;
    rid = "h1";
  }
  SECTION("a dev token with an empty user") {
    h.text(conn, R"({"t":"hello","token":"dev:"})");
    code = ErrorCode::unauthorized;
  }
  SECTION("token missing") {
    h.text(conn, R"({"t":"hello","rid":"h2"})");
    field = "token";
    rid = "h2";
  }
  SECTION("token not a string") {
    h.text(conn, R"({"t":"hello","token":7})");
    field = "token";
  }
  SECTION("subs not an array") {
    h.text(conn, R"({"t":"hello","token":"dev:alice","subs":"ops"})");
    field = "subs";
  }
  SECTION("a bad conv inside subs") {
    h.text(conn, R"({"t":"hello","token":"dev:alice","subs":[{"conv":"ops"},{"conv":"no spaces"}]})");
    field = "subs[1].conv";
  }

  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"err", "close:4001"});
  const Err& err = as<Err>(got[0]);
  CHECK(err.code == code);
  if (!field.empty()) CHECK(err.msg.rfind(field, 0) == 0);
  CHECK(err.rid == rid);
  CHECK(h.edge.counters().errors_out.at(std::string(to_string(code))) == 1);
}

TEST_CASE("edge_node: hello is answered with welcome; a second hello is invalid", "[edge_node]") {
  EdgeConfig config = test_config();
  config.max_frame = 4096;
  Harness h(config);
  h.now = kStart + 777;
  ConnId conn = h.connect();
  h.text(conn, R"({"t":"hello","token":"dev:alice","device":"tab-1","rid":"h1"})");
  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"welcome"});
  const Welcome welcome = as<Welcome>(got[0]);  // a copy: `got` is reused below
  CHECK(welcome.node == "edge-test");
  CHECK(welcome.user == "alice");
  CHECK(welcome.ts == kStart + 777);
  CHECK(welcome.hb == 20000);
  CHECK(welcome.max_frame == 4096);
  CHECK(welcome.rid == std::optional<std::string>("h1"));
  CHECK(welcome.session.size() == 32);

  ConnId other = h.join_dev("bob");
  (void)other;

  // A second hello is refused and changes nothing: the connection is still alice's and open.
  h.text(conn, R"({"t":"hello","token":"dev:mallory","rid":"h2"})");
  got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"err"});
  CHECK(as<Err>(got[0]).code == ErrorCode::invalid);
  CHECK(contains(as<Err>(got[0]).msg, "hello"));
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("h2"));

  h.text(conn, sub_frame("ops"));
  h.take(conn);
  h.text(conn, send_frame("ops", "m1"));
  h.commit();
  got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"ack", "msg"});
  CHECK(as<Msg>(got[1]).from == "alice");

  // Two welcomes do not share a session id.
  ConnId third = h.connect();
  h.text(third, R"({"t":"hello","token":"dev:carol"})");
  auto third_got = h.take(third);
  REQUIRE(types(third_got) == std::vector<std::string>{"welcome"});
  CHECK(as<Welcome>(third_got[0]).session != welcome.session);
}

TEST_CASE("edge_node: hello.subs means one sub frame per entry", "[edge_node]") {
  Harness h;
  ConnId sender = h.join_dev("sam");
  h.send_many(sender, "ops", "m", 3);

  ConnId via_hello = h.connect();
  h.text(via_hello,
         R"({"t":"hello","token":"dev:alice","subs":[{"conv":"ops","after":1},{"conv":"eng"}]})");
  ConnId via_subs = h.connect();
  h.text(via_subs, R"({"t":"hello","token":"dev:alice"})");
  h.text(via_subs, sub_frame("ops", 1));
  h.text(via_subs, sub_frame("eng"));

  auto a = h.take(via_hello);
  auto b = h.take(via_subs);
  REQUIRE(types(a) == std::vector<std::string>{"welcome", "msg", "msg", "subd", "subd"});
  REQUIRE(types(b) == types(a));
  for (std::size_t i = 1; i < a.size(); ++i) CHECK(a[i].text == b[i].text);
  CHECK(msg_seqs(a) == std::vector<Seq>{2, 3});
  const Subd& subd = as<Subd>(a[3]);
  CHECK(subd.conv == "ops");
  CHECK(subd.head == 3);
  CHECK(subd.present == std::vector<std::string>{"alice"});
  CHECK(as<Subd>(a[4]).conv == "eng");
  CHECK(as<Subd>(a[4]).head == 0);

  // Both are live afterwards.
  h.text(sender, send_frame("eng", "e1"));
  h.commit();
  CHECK(msg_seqs(h.take(via_hello), "eng") == std::vector<Seq>{1});
  CHECK(msg_seqs(h.take(via_subs), "eng") == std::vector<Seq>{1});
}

// ---- sending -------------------------------------------------------------------------------

TEST_CASE("edge_node: a send is acked only after its commit, then fanned out", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  ConnId carol = h.join_dev("carol");             // not subscribed
  ConnId alice_other = h.join_dev("alice");       // alice's other tab, not subscribed
  h.take(alice);
  h.take(bob);

  TimeMs sent_at = h.now = kStart + 10;
  h.text(alice, send_frame("ops", "m1", R"(,"cts":123,"rid":"s1")"));

  // Before the commit: only the write request, nothing on any wire, nothing stored.
  CHECK(h.take(alice).empty());
  CHECK(h.take(bob).empty());
  REQUIRE(h.writer.size() == 1);
  const auto& append = std::get<AppendRequest>(h.writer[0].op);
  CHECK(append.tenant == "dev");
  CHECK(append.msg.from == "alice");
  CHECK(append.msg.conv == "ops");
  CHECK(append.msg.id == "m1");
  CHECK(!append.msg.seq);
  REQUIRE(append.msg.trace);
  CHECK(is_valid_traceparent(*append.msg.trace));
  CHECK(h.store.head("dev", "ops").value() == 0);

  h.now = kStart + 50;
  h.commit();
  auto got = h.take(alice);
  REQUIRE(types(got) == std::vector<std::string>{"ack", "msg"});
  const Ack& ack = as<Ack>(got[0]);
  CHECK(ack.conv == "ops");
  CHECK(ack.id == "m1");
  CHECK(ack.seq == std::optional<Seq>(1));
  CHECK(ack.ts == sent_at);
  CHECK(!ack.dup);
  CHECK(ack.rid == std::optional<std::string>("s1"));
  REQUIRE(ack.trace);
  CHECK(is_valid_traceparent(*ack.trace));  // made by the edge: the client sent none

  const Msg& msg = as<Msg>(got[1]);
  CHECK(msg.conv == "ops");
  CHECK(msg.seq == std::optional<Seq>(1));
  CHECK(msg.id == "m1");
  CHECK(msg.from == "alice");
  CHECK(msg.ts == sent_at);
  CHECK(msg.cts == std::optional<TimeMs>(123));
  CHECK(msg.trace == ack.trace);
  CHECK(msg.body.text == R"({"text":"hi"})");

  auto bob_got = h.take(bob);
  REQUIRE(types(bob_got) == std::vector<std::string>{"msg"});
  CHECK(bob_got[0].text == got[1].text);
  CHECK(h.take(carol).empty());
  CHECK(h.take(alice_other).empty());
  CHECK(h.store.head("dev", "ops").value() == 1);

  // The client's own trace is kept.
  h.text(bob, send_frame("ops", "m2", ",\"trace\":\"" + kClientTrace + "\""));
  h.commit();
  auto bob_ack = h.take(bob);
  REQUIRE(types(bob_ack) == std::vector<std::string>{"ack", "msg"});
  CHECK(as<Ack>(bob_ack[0]).trace == std::optional<std::string>(kClientTrace));
  CHECK(as<Ack>(bob_ack[0]).seq == std::optional<Seq>(2));
  CHECK(!as<Ack>(bob_ack[0]).rid);
  CHECK(as<Msg>(bob_ack[1]).trace == std::optional<std::string>(kClientTrace));
  CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{2});

  // Several sends in one group commit: dense seqs, delivered in seq order everywhere.
  h.text(alice, send_frame("ops", "m3"));
  h.text(bob, send_frame("ops", "m4"));
  h.text(alice, send_frame("ops", "m5"));
  h.text(bob, send_frame("ops", "m6"));
  h.commit();
  auto a = h.take(alice);
  auto b = h.take(bob);
  CHECK(msg_seqs(a) == range(3, 6));
  CHECK(msg_seqs(b) == range(3, 6));
  std::vector<Seq> acked;
  for (const Ack& x : all_of<Ack>(a)) acked.push_back(*x.seq);
  CHECK(acked == std::vector<Seq>{3, 5});
  CHECK(h.take(carol).empty());
}

TEST_CASE("edge_node: a repeated (conv, id) is acked dup with the original seq, ts and trace",
          "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.take(alice);

  h.now = kStart + 100;
  h.text(alice, send_frame("ops", "m1"));
  h.commit();
  auto first = h.take(alice);
  REQUIRE(types(first) == std::vector<std::string>{"ack", "msg"});
  Ack original = as<Ack>(first[0]);
  h.take(bob);

  SECTION("in a later batch, from another connection, with another body and trace") {
    h.now = kStart + 5000;
    h.text(bob, R"({"t":"send","conv":"ops","id":"m1","body":"changed","trace":")" + kClientTrace +
                    R"(","rid":"again"})");
    h.commit();
    auto got = h.take(bob);
    REQUIRE(types(got) == std::vector<std::string>{"ack"});
    const Ack& dup = as<Ack>(got[0]);
    CHECK(dup.dup);
    CHECK(dup.seq == original.seq);
    CHECK(dup.ts == original.ts);
    CHECK(dup.trace == original.trace);
    CHECK(dup.rid == std::optional<std::string>("again"));
    CHECK(h.take(alice).empty());
    CHECK(h.store.head("dev", "ops").value() == 1);
    CHECK(h.edge.counters().duplicates == 1);
  }

  SECTION("twice inside one batch") {
    h.text(alice, send_frame("ops", "m2", R"(,"rid":"r1")"));
    h.text(alice, send_frame("ops", "m2", R"(,"rid":"r2")"));
    REQUIRE(h.writer.size() == 2);
    h.commit();
    auto got = h.take(alice);
    auto acks = all_of<Ack>(got);
    REQUIRE(acks.size() == 2);
    CHECK(acks[0].seq == std::optional<Seq>(2));
    CHECK(!acks[0].dup);
    CHECK(acks[0].rid == std::optional<std::string>("r1"));
    CHECK(acks[1].seq == std::optional<Seq>(2));
    CHECK(acks[1].dup);
    CHECK(acks[1].ts == acks[0].ts);
    CHECK(acks[1].trace == acks[0].trace);
    CHECK(acks[1].rid == std::optional<std::string>("r2"));
    CHECK(msg_seqs(got) == std::vector<Seq>{2});
    CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{2});
    CHECK(h.store.head("dev", "ops").value() == 2);
  }

  SECTION("the same id in another conversation is a different message") {
    h.text(alice, send_frame("eng", "m1"));
    h.commit();
    auto got = h.take(alice);
    REQUIRE(types(got) == std::vector<std::string>{"ack"});
    CHECK(!as<Ack>(got[0]).dup);
    CHECK(as<Ack>(got[0]).seq == std::optional<Seq>(1));
  }
}

TEST_CASE("edge_node: a failed commit is nacked retry:true, nothing fanned out", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.take(alice);
  h.send_many(alice, "ops", "pre", 2);
  h.take(alice);
  h.take(bob);

  h.text(alice, send_frame("ops", "m1", R"(,"rid":"x")"));
  SECTION("the writer reports a failure") { h.fail_commit("disk full"); }
  SECTION("the store refuses the transaction") {
    h.store.fail_writes(make_error(ErrorCode::unavailable, "disk full"));
    h.commit();
    h.store.fail_writes(std::nullopt);
  }
  auto got = h.take(alice);
  REQUIRE(types(got) == std::vector<std::string>{"nack"});
  const Nack& nack = as<Nack>(got[0]);
  CHECK(nack.conv == "ops");
  CHECK(nack.id == "m1");
  CHECK(nack.code == ErrorCode::unavailable);
  CHECK(nack.retry);
  CHECK(nack.rid == std::optional<std::string>("x"));
  CHECK(h.take(bob).empty());
  CHECK(h.store.head("dev", "ops").value() == 2);

  // The resend succeeds and the seqs stay dense.
  h.text(alice, send_frame("ops", "m1"));
  h.text(alice, send_frame("ops", "m2"));
  h.commit();
  got = h.take(alice);
  auto acks = all_of<Ack>(got);
  REQUIRE(acks.size() == 2);
  CHECK(acks[0].seq == std::optional<Seq>(3));
  CHECK(!acks[0].dup);
  CHECK(acks[1].seq == std::optional<Seq>(4));
  CHECK(msg_seqs(got) == std::vector<Seq>{3, 4});
  CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{3, 4});
  CHECK(h.edge.counters().errors_out.at("unavailable") == 1);

  // A failed receipt is an err, not a nack.
  h.text(alice, rcpt_frame("ops", 1, "read", R"(,"rid":"rc")"));
  h.fail_commit("disk full");
  got = h.take(alice);
  REQUIRE(types(got) == std::vector<std::string>{"err"});
  CHECK(as<Err>(got[0]).code == ErrorCode::unavailable);
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("rc"));
}

TEST_CASE("edge_node: a sender that disconnects before the commit loses only its ack",
          "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.take(bob);
  h.text(alice, send_frame("ops", "m1"));
  h.disconnect(alice);
  h.take(alice);
  h.commit();
  CHECK(h.take(alice).empty());
  CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{1});
  CHECK(h.store.head("dev", "ops").value() == 1);
}

// ---- subscribing ---------------------------------------------------------------------------

TEST_CASE("edge_node: sub replays after its cursor, then subd, then live", "[edge_node]") {
  Harness h;
  ConnId sender = h.join_dev("sam");
  h.send_many(sender, "ops", "m", 5);

  ConnId alice = h.join_dev("alice");
  h.text(alice, sub_frame("ops", 2, std::nullopt, R"(,"rid":"q")"));
  auto got = h.take(alice);
  REQUIRE(types(got) == std::vector<std::string>{"msg", "msg", "msg", "subd"});
  CHECK(msg_seqs(got) == std::vector<Seq>{3, 4, 5});
  CHECK(as<Msg>(got[0]).id == "m3");
  const Subd& subd = as<Subd>(got[3]);
  CHECK(subd.conv == "ops");
  CHECK(subd.head == 5);
  CHECK(subd.read == 0);
  CHECK(subd.present == std::vector<std::string>{"alice"});
  CHECK(!subd.more);
  CHECK(subd.rid == std::optional<std::string>("q"));

  h.text(sender, send_frame("ops", "m6"));
  h.commit();
  CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{6});

  // Without after: no replay, live from the head.
  ConnId bob = h.join_dev("bob");
  h.text(bob, sub_frame("ops"));
  got = h.take(bob);
  REQUIRE(types(got) == std::vector<std::string>{"subd"});
  CHECK(as<Subd>(got[0]).head == 6);
  h.text(sender, send_frame("ops", "m7"));
  h.commit();
  CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{7});
  CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{7});

  // A cursor past the head replays nothing and is live from the head.
  ConnId carol = h.join_dev("carol");
  h.text(carol, sub_frame("ops", 100));
  got = h.take(carol);
  REQUIRE(types(got) == std::vector<std::string>{"subd"});
  CHECK(as<Subd>(got[0]).head == 7);
  CHECK(!as<Subd>(got[0]).more);
  h.text(sender, send_frame("ops", "m8"));
  h.commit();
  CHECK(msg_seqs(h.take(carol)) == std::vector<Seq>{8});

  // after:0 replays everything.
  ConnId dave = h.join_dev("dave");
  h.text(dave, sub_frame("ops", 0));
  CHECK(msg_seqs(h.take(dave)) == range(1, 8));

  // unsub stops delivery.
  h.text(alice, R"({"t":"unsub","conv":"ops"})");
  h.take(alice);
  h.text(sender, send_frame("ops", "m9"));
  h.commit();
  CHECK(h.take(alice).empty());
  CHECK(msg_seqs(h.take(dave)) == std::vector<Seq>{9});
  CHECK(h.edge.counters().replayed_messages == 3 + 8);
}

TEST_CASE("edge_node: a replay capped by limit says more:true and is not live until re-sub",
          "[edge_node]") {
  Harness h;
  ConnId sender = h.join_dev("sam");
  ConnId live = h.subscriber("liv", "ops");
  h.send_many(sender, "ops", "m", 7);
  h.take(live);

  ConnId carol = h.join_dev("carol");
  h.text(carol, sub_frame("ops", 0, 2));
  auto got = h.take(carol);
  REQUIRE(types(got) == std::vector<std::string>{"msg", "msg", "subd"});
  CHECK(msg_seqs(got) == std::vector<Seq>{1, 2});
  CHECK(as<Subd>(got[2]).more);
  CHECK(as<Subd>(got[2]).head == 7);

  // Still catching up: a new message is not sent live (it would leave a gap).
  h.text(sender, send_frame("ops", "m8"));
  h.commit();
  CHECK(msg_seqs(h.take(carol)).empty());
  CHECK(msg_seqs(h.take(live)) == std::vector<Seq>{8});

  h.text(carol, sub_frame("ops", 2, 2));
  got = h.take(carol);
  CHECK(msg_seqs(got) == std::vector<Seq>{3, 4});
  REQUIRE(types(got).back() == "subd");
  CHECK(as<Subd>(got.back()).more);

  h.text(sender, send_frame("ops", "m9"));
  h.commit();
  CHECK(msg_seqs(h.take(carol)).empty());

  h.text(carol, sub_frame("ops", 4));  // the default limit covers the rest
  got = h.take(carol);
  CHECK(msg_seqs(got) == range(5, 9));
  CHECK(!as<Subd>(got.back()).more);
  CHECK(as<Subd>(got.back()).head == 9);

  h.text(sender, send_frame("ops", "m10"));
  h.commit();
  CHECK(msg_seqs(h.take(carol)) == std::vector<Seq>{10});
}

TEST_CASE("edge_node: replay limits default to replay_default and are capped at replay_max",
          "[edge_node]") {
  EdgeConfig config = test_config();
  config.replay_default = 2;
  config.replay_max = 3;
  Harness h(config);
  ConnId sender = h.join_dev("sam");
  h.send_many(sender, "ops", "m", 6);

  ConnId a = h.join_dev("alice");
  h.text(a, sub_frame("ops", 0));
  auto got = h.take(a);
  CHECK(msg_seqs(got) == std::vector<Seq>{1, 2});
  CHECK(as<Subd>(got.back()).more);

  ConnId b = h.join_dev("bob");
  h.text(b, sub_frame("ops", 0, 1000));
  got = h.take(b);
  CHECK(msg_seqs(got) == std::vector<Seq>{1, 2, 3});
  CHECK(as<Subd>(got.back()).more);

  h.text(b, sub_frame("ops", 3, 1000));
  got = h.take(b);
  CHECK(msg_seqs(got) == std::vector<Seq>{4, 5, 6});
  CHECK(!as<Subd>(got.back()).more);
}

TEST_CASE("edge_node: a batch committed but not yet reported is not repeated after a replay",
          "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.send_many(alice, "ops", "pre", 2);
  h.take(alice);
  h.take(bob);

  h.text(alice, send_frame("ops", "m3"));
  auto first = h.commit_in_store_only();

  SECTION("one batch in flight") {
    // carol subscribes in the gap between the commit and its report: the replay has seq 3.
    ConnId carol = h.join_dev("carol");
    h.text(carol, sub_frame("ops", 1));
    auto got = h.take(carol);
    CHECK(msg_seqs(got) == std::vector<Seq>{2, 3});
    CHECK(as<Subd>(got.back()).head == 3);
    ConnId dave = h.join_dev("dave");  // live only, from head 3
    h.text(dave, sub_frame("ops"));
    CHECK(as<Subd>(h.take(dave).back()).head == 3);
    h.take(alice);  // presence of carol and dave
    h.take(bob);

    h.report(first);
    CHECK(msg_seqs(h.take(carol)).empty());  // carol heard dave's presence, but no msg
    CHECK(h.take(dave).empty());
    auto a = h.take(alice);
    CHECK(types(a) == std::vector<std::string>{"ack", "msg"});
    CHECK(msg_seqs(a) == std::vector<Seq>{3});
    CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{3});

    h.text(bob, send_frame("ops", "m4"));
    h.commit();
    CHECK(msg_seqs(h.take(carol)) == std::vector<Seq>{4});
    CHECK(msg_seqs(h.take(dave)) == std::vector<Seq>{4});
    CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{4});
  }

  SECTION("two batches in flight, reported in order") {
    h.text(bob, send_frame("ops", "m4"));
    auto second = h.commit_in_store_only();
    ConnId carol = h.join_dev("carol");
    h.text(carol, sub_frame("ops", 0));
    CHECK(msg_seqs(h.take(carol)) == range(1, 4));
    h.report(first);
    h.report(second);
    CHECK(h.take(carol).empty());
    CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{3, 4});
    CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{3, 4});
  }

  SECTION("two batches reported out of order: still no gap and no repeat") {
    h.text(bob, send_frame("ops", "m4"));
    auto second = h.commit_in_store_only();
    h.report(second);  // seq 4 first: seq 3 is filled in from the log before it
    CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{3, 4});
    auto b = h.take(bob);
    CHECK(msg_seqs(b) == std::vector<Seq>{3, 4});
    CHECK(all_of<Ack>(b).size() == 1);
    h.report(first);
    auto a = h.take(alice);
    CHECK(msg_seqs(a).empty());
    REQUIRE(all_of<Ack>(a).size() == 1);  // the late ack still comes
    CHECK(all_of<Ack>(a)[0].seq == std::optional<Seq>(3));
    CHECK(h.take(bob).empty());
  }

  SECTION("the in-flight message lies beyond a capped replay") {
    ConnId carol = h.join_dev("carol");
    h.text(carol, sub_frame("ops", 0, 2));
    auto got = h.take(carol);
    CHECK(msg_seqs(got) == std::vector<Seq>{1, 2});
    CHECK(as<Subd>(got.back()).more);
    h.report(first);
    CHECK(h.take(carol).empty());
    h.text(carol, sub_frame("ops", 2));
    got = h.take(carol);
    CHECK(msg_seqs(got) == std::vector<Seq>{3});
    CHECK(!as<Subd>(got.back()).more);
  }

  SECTION("an existing subscriber re-subscribes from an older cursor in the gap") {
    h.text(bob, sub_frame("ops", 1));
    CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{2, 3});
    h.report(first);
    CHECK(h.take(bob).empty());
  }
}

// ---- history -------------------------------------------------------------------------------

TEST_CASE("edge_node: hist pages below before, above after, or the newest", "[edge_node]") {
  Harness h;
  ConnId sender = h.join_dev("sam");
  h.send_many(sender, "ops", "m", 12);
  h.take(sender);
  ConnId reader = h.join_dev("rita");  // history needs no subscription

  auto page = [&](const std::string& conv, const std::string& fields) {
    h.text(reader, hist_frame(conv, fields));
    auto got = h.take(reader);
    REQUIRE(types(got) == std::vector<std::string>{"page"});
    return as<Page>(got[0]);
  };

  Page p = page("ops", R"(,"rid":"h")");
  CHECK(p.conv == "ops");
  CHECK(page_seqs(p) == range(1, 12));
  CHECK(!p.more);
  CHECK(p.rid == std::optional<std::string>("h"));
  CHECK(p.msgs[0].id == "m1");
  CHECK(p.msgs[0].from == "sam");
  CHECK(p.msgs[11].body.text == R"({"n":12})");

  p = page("ops", R"(,"limit":5)");
  CHECK(page_seqs(p) == range(8, 12));
  CHECK(p.more);
  CHECK(!p.rid);

  p = page("ops", R"(,"before":8,"limit":5)");
  CHECK(page_seqs(p) == range(3, 7));
  CHECK(p.more);
  p = page("ops", R"(,"before":7,"limit":5)");
  CHECK(page_seqs(p) == range(2, 6));
  CHECK(p.more);
  p = page("ops", R"(,"before":6,"limit":5)");
  CHECK(page_seqs(p) == range(1, 5));
  CHECK(!p.more);
  p = page("ops", R"(,"before":2)");
  CHECK(page_seqs(p) == std::vector<Seq>{1});
  CHECK(!p.more);
  p = page("ops", R"(,"before":1)");
  CHECK(p.msgs.empty());
  CHECK(!p.more);
  p = page("ops", R"(,"before":1000,"limit":3)");
  CHECK(page_seqs(p) == range(10, 12));
  CHECK(p.more);

  p = page("ops", R"(,"after":0,"limit":5)");
  CHECK(page_seqs(p) == range(1, 5));
  CHECK(p.more);
  p = page("ops", R"(,"after":6,"limit":5)");
  CHECK(page_seqs(p) == range(7, 11));
  CHECK(p.more);
  p = page("ops", R"(,"after":7,"limit":5)");
  CHECK(page_seqs(p) == range(8, 12));
  CHECK(!p.more);
  p = page("ops", R"(,"after":9,"limit":5)");
  CHECK(page_seqs(p) == range(10, 12));
  CHECK(!p.more);
  p = page("ops", R"(,"after":12)");
  CHECK(p.msgs.empty());
  CHECK(!p.more);
  p = page("ops", R"(,"after":100)");
  CHECK(p.msgs.empty());
  CHECK(!p.more);

  p = page("void", "");
  CHECK(p.conv == "void");
  CHECK(p.msgs.empty());
  CHECK(!p.more);
  p = page("void", R"(,"after":0)");
  CHECK(p.msgs.empty());
  CHECK(!p.more);

  // Both bounds at once is invalid, and says which field.
  h.text(reader, hist_frame("ops", R"(,"before":5,"after":1,"rid":"both")"));
  auto got = h.take(reader);
  REQUIRE(types(got) == std::vector<std::string>{"err"});
  CHECK(as<Err>(got[0]).code == ErrorCode::invalid);
  CHECK(contains(as<Err>(got[0]).msg, "before"));
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("both"));

  // hist is read-only: nothing to persist, nothing to others.
  CHECK(h.writer.empty());
  CHECK(h.take(sender).empty());
}

TEST_CASE("edge_node: hist limit defaults to hist_default and is capped at hist_max",
          "[edge_node]") {
  EdgeConfig config = test_config();
  config.hist_max = 20;
  Harness h(config);
  ConnId sender = h.join_dev("sam");
  h.send_many(sender, "ops", "m", 60);
  ConnId reader = h.join_dev("rita");

  h.text(reader, hist_frame("ops", ""));  // hist_default 50 (above hist_max here: capped)
  auto got = h.take(reader);
  CHECK(page_seqs(as<Page>(got.at(0))) == range(41, 60));
  CHECK(as<Page>(got.at(0)).more);

  h.text(reader, hist_frame("ops", R"(,"after":0,"limit":1000)"));
  got = h.take(reader);
  CHECK(page_seqs(as<Page>(got.at(0))) == range(1, 20));
  CHECK(as<Page>(got.at(0)).more);

  Harness d;  // the protocol's defaults
  ConnId s2 = d.join_dev("sam");
  d.send_many(s2, "ops", "m", 60);
  ConnId r2 = d.join_dev("rita");
  d.text(r2, hist_frame("ops", ""));
  got = d.take(r2);
  CHECK(page_seqs(as<Page>(got.at(0))) == range(11, 60));
  CHECK(as<Page>(got.at(0)).more);
  d.text(r2, hist_frame("ops", R"(,"after":0)"));
  got = d.take(r2);
  CHECK(page_seqs(as<Page>(got.at(0))) == range(1, 50));
  CHECK(as<Page>(got.at(0)).more);
}

// ---- receipts, typing, presence ------------------------------------------------------------

TEST_CASE("edge_node: receipts are stored, only move forward and are fanned out", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  ConnId carol = h.join_dev("carol");  // not subscribed
  h.send_many(bob, "ops", "m", 5);
  h.take(alice);
  h.take(bob);
  auto stored = [&](const std::string& user) { return h.store.receipts("dev", user, "ops").value(); };

  h.text(alice, rcpt_frame("ops", 3, "read", R"(,"rid":"r1")"));
  CHECK(h.take(alice).empty());  // nothing before the commit
  CHECK(h.take(bob).empty());
  REQUIRE(h.writer.size() == 1);
  h.commit();
  auto a = h.take(alice);
  auto b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"rcpt"});
  CHECK(a.size() == 1);
  CHECK(a.at(0).text == b[0].text);
  const Rcpt& r = as<Rcpt>(b[0]);
  CHECK(r.conv == "ops");
  CHECK(r.user == std::optional<std::string>("alice"));
  CHECK(r.seq == 3);
  CHECK(r.kind == ReceiptKind::read);
  CHECK(h.take(carol).empty());
  CHECK(stored("alice") == ReceiptCursors{3, 3});  // read implies delivered

  // Lower or equal receipts are not fanned out again and change nothing.
  h.text(alice, rcpt_frame("ops", 2, "read"));
  h.text(alice, rcpt_frame("ops", 3, "read"));
  h.text(alice, rcpt_frame("ops", 3, "delivered"));
  h.commit();
  CHECK(h.take(alice).empty());
  CHECK(h.take(bob).empty());
  CHECK(stored("alice") == ReceiptCursors{3, 3});

  h.text(alice, rcpt_frame("ops", 5, "delivered"));
  h.commit();
  b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"rcpt"});
  CHECK(as<Rcpt>(b[0]).kind == ReceiptKind::delivered);
  CHECK(as<Rcpt>(b[0]).seq == 5);
  CHECK(stored("alice") == ReceiptCursors{5, 3});

  h.text(alice, rcpt_frame("ops", 4, "read"));
  h.commit();
  b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"rcpt"});
  CHECK(as<Rcpt>(b[0]).kind == ReceiptKind::read);
  CHECK(as<Rcpt>(b[0]).seq == 4);
  CHECK(stored("alice") == ReceiptCursors{5, 4});
  CHECK(stored("bob") == ReceiptCursors{0, 0});
  h.take(alice);

  // Past the head: invalid, nothing stored or fanned out.
  h.text(alice, rcpt_frame("ops", 6, "read", R"(,"rid":"far")"));
  h.commit();
  a = h.take(alice);
  REQUIRE(types(a) == std::vector<std::string>{"err"});
  CHECK(as<Err>(a[0]).code == ErrorCode::invalid);
  CHECK(contains(as<Err>(a[0]).msg, "seq"));
  CHECK(as<Err>(a[0]).rid == std::optional<std::string>("far"));
  CHECK(h.take(bob).empty());
  CHECK(stored("alice") == ReceiptCursors{5, 4});

  // subd.read is the subscribing user's read cursor.
  ConnId alice_tab = h.join_dev("alice");
  h.text(alice_tab, sub_frame("ops"));
  CHECK(as<Subd>(h.take(alice_tab).at(0)).read == 4);
  ConnId bob_tab = h.join_dev("bob");
  h.text(bob_tab, sub_frame("ops"));
  CHECK(as<Subd>(h.take(bob_tab).at(0)).read == 0);
}

TEST_CASE("edge_node: typing goes to the other subscribers and is never stored", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId alice_tab = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  ConnId carol = h.subscriber("carol", "eng");
  h.take(alice);
  h.take(alice_tab);
  h.take(bob);

  h.text(alice, R"({"t":"typing","conv":"ops","on":true})");
  CHECK(h.writer.empty());
  CHECK(h.take(alice).empty());
  CHECK(h.take(carol).empty());
  auto b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"typing"});
  const Typing& t = as<Typing>(b[0]);
  CHECK(t.conv == "ops");
  CHECK(t.user == std::optional<std::string>("alice"));
  CHECK(t.on);
  CHECK(types(h.take(alice_tab)) == std::vector<std::string>{"typing"});

  h.text(bob, R"({"t":"typing","conv":"ops","on":false})");
  CHECK(h.take(bob).empty());
  auto a = h.take(alice);
  REQUIRE(types(a) == std::vector<std::string>{"typing"});
  CHECK(!as<Typing>(a[0]).on);
  CHECK(as<Typing>(a[0]).user == std::optional<std::string>("bob"));

  CHECK(h.writer.empty());
  CHECK(h.store.commits() == 0);
}

TEST_CASE("edge_node: presence on a user's first subscription, off at their last", "[edge_node]") {
  Harness h;
  ConnId bob = h.subscriber("bob", "ops");
  ConnId carol = h.subscriber("carol", "eng");  // another conversation hears nothing
  h.take(bob);

  ConnId alice1 = h.join_dev("alice");
  h.text(alice1, sub_frame("ops"));
  auto a1 = h.take(alice1);
  REQUIRE(types(a1) == std::vector<std::string>{"subd"});
  CHECK(as<Subd>(a1[0]).present == std::vector<std::string>{"alice", "bob"});
  auto b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"presence"});
  CHECK(as<Presence>(b[0]) == Presence{"ops", "alice", true});

  // alice's second connection: no new presence; subscribing twice on one connection neither.
  ConnId alice2 = h.join_dev("alice");
  h.text(alice2, sub_frame("ops"));
  CHECK(as<Subd>(h.take(alice2).at(0)).present == std::vector<std::string>{"alice", "bob"});
  h.text(alice1, sub_frame("ops"));
  CHECK(types(h.take(alice1)) == std::vector<std::string>{"subd"});
  CHECK(h.take(bob).empty());

  // One of two connections leaving is not the user leaving.
  h.text(alice1, R"({"t":"unsub","conv":"ops"})");
  CHECK(h.take(bob).empty());
  CHECK(h.take(alice2).empty());

  // The last one disconnecting is.
  h.disconnect(alice2);
  b = h.take(bob);
  REQUIRE(types(b) == std::vector<std::string>{"presence"});
  CHECK(as<Presence>(b[0]) == Presence{"ops", "alice", false});

  // Back again, and away by unsub.
  h.text(alice1, sub_frame("ops"));
  CHECK(as<Subd>(h.take(alice1).at(0)).present == std::vector<std::string>{"alice", "bob"});
  CHECK(all_of<Presence>(h.take(bob)) == std::vector<Presence>{{"ops", "alice", true}});
  h.text(alice1, R"({"t":"unsub","conv":"ops"})");
  CHECK(all_of<Presence>(h.take(bob)) == std::vector<Presence>{{"ops", "alice", false}});

  // bob leaving is heard by alice when she is subscribed.
  h.text(alice1, sub_frame("ops"));
  h.take(alice1);
  h.take(bob);
  h.disconnect(bob);
  CHECK(all_of<Presence>(h.take(alice1)) == std::vector<Presence>{{"ops", "bob", false}});
  CHECK(h.take(carol).empty());
}

// ---- small frames and bad input --------------------------------------------------------------

TEST_CASE("edge_node: ping is answered with pong echoing ts and rid", "[edge_node]") {
  Harness h;
  ConnId conn = h.join_dev("alice");
  h.text(conn, R"({"t":"ping","ts":1234567,"rid":"p1"})");
  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"pong"});
  CHECK(as<Pong>(got[0]).ts == 1234567);
  CHECK(as<Pong>(got[0]).rid == std::optional<std::string>("p1"));
  h.text(conn, R"({"t":"ping"})");
  CHECK(types(h.take(conn)) == std::vector<std::string>{"pong"});
}

TEST_CASE("edge_node: bad input gets an err and leaves the connection usable", "[edge_node]") {
  Harness h;
  ConnId conn = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.take(conn);
  h.take(bob);

  struct Case {
    std::string text;
    ErrorCode code;
    std::string field;  // the err's msg starts with it
    std::optional<std::string> rid;
  };
  const std::string long_rid(65, 'r');
  std::vector<Case> cases = {
      {R"({"t":"frobnicate","rid":"u1"})", ErrorCode::unknown_type, "t", "u1"},
      {R"({"t":"welcome","session":"s","node":"n","user":"u","ts":1,"hb":1,"max_frame":1})",
       ErrorCode::unknown_type, "t", std::nullopt},
      {R"({"t":"msg","conv":"ops","seq":1,"id":"m","from":"x","ts":1,"body":1})",
       ErrorCode::unknown_type, "t", std::nullopt},
      {R"({"t":"send","conv":"ops","body":{},"rid":"x"})", ErrorCode::invalid, "id", "x"},
      {R"({"t":"send","conv":"ops","id":"has space","body":{}})", ErrorCode::invalid, "id",
       std::nullopt},
      {R"({"t":"send","conv":"ops","id":"m1"})", ErrorCode::invalid, "body", std::nullopt},
      {R"({"t":"send","conv":"ops","id":"m1","body":1,"trace":"nope","rid":"tr"})",
       ErrorCode::invalid, "trace", "tr"},
      {R"({"t":"sub","conv":"bad conv","rid":"s"})", ErrorCode::invalid, "conv", "s"},
      {R"({"t":"sub","conv":"ops","limit":0})", ErrorCode::invalid, "limit", std::nullopt},
      {R"({"t":"rcpt","conv":"ops","seq":0,"kind":"read"})", ErrorCode::invalid, "seq",
       std::nullopt},
      {R"({"t":"rcpt","conv":"ops","seq":1,"kind":"seen"})", ErrorCode::invalid, "kind",
       std::nullopt},
      {R"({"t":"typing","conv":"ops"})", ErrorCode::invalid, "on", std::nullopt},
      {R"({"t":"ping","rid":")" + long_rid + "\"}", ErrorCode::invalid, "rid", std::nullopt},
      {R"({"conv":"ops"})", ErrorCode::invalid, "t", std::nullopt},
      {"{not json", ErrorCode::bad_frame, "frame", std::nullopt},
      {"[1,2]", ErrorCode::bad_frame, "frame", std::nullopt},
  };
  for (const Case& c : cases) {
    INFO("input " << c.text);
    h.text(conn, c.text);
    auto got = h.take(conn);
    REQUIRE(types(got) == std::vector<std::string>{"err"});
    const Err& err = as<Err>(got[0]);
    CHECK(err.code == c.code);
    CHECK(err.msg.rfind(c.field, 0) == 0);
    CHECK(err.rid == c.rid);
  }
  h.edge.on_binary(conn, h.now);
  h.pump();
  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"err"});
  CHECK(as<Err>(got[0]).code == ErrorCode::bad_frame);

  // Nothing was persisted or shown to anyone else, and the connection still works.
  CHECK(h.writer.empty());
  CHECK(h.take(bob).empty());
  h.text(conn, R"({"t":"ping","ts":1})");
  CHECK(types(h.take(conn)) == std::vector<std::string>{"pong"});
  h.text(conn, send_frame("ops", "ok1"));
  h.commit();
  CHECK(types(h.take(conn)) == std::vector<std::string>{"ack", "msg"});
  CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{1});
}

TEST_CASE("edge_node: a frame over max_frame gets too_large and close 1009", "[edge_node]") {
  EdgeConfig config = test_config();
  config.max_frame = 512;
  Harness h(config);
  ConnId conn = h.join_dev("alice");
  ConnId bob = h.subscriber("bob", "ops");

  auto sized = [](std::size_t size) {
    std::string head = R"({"t":"send","conv":"ops","id":"big","body":")";
    std::string tail = "\"}";
    return head + std::string(size - head.size() - tail.size(), 'x') + tail;
  };
  REQUIRE(sized(512).size() == 512);

  h.text(conn, sized(512));  // exactly max_frame is fine
  CHECK(h.writer.size() == 1);
  CHECK(h.take(conn).empty());

  SECTION("text over the limit") { h.text(conn, sized(513)); }
  SECTION("the host saw an oversized frame") { h.edge.on_oversized(conn, h.now); h.pump(); }

  auto got = h.take(conn);
  REQUIRE(types(got) == std::vector<std::string>{"err", "close:1009"});
  CHECK(as<Err>(got[0]).code == ErrorCode::too_large);
  CHECK(h.writer.size() == 1);  // the oversized frame was not taken as a send
  h.text(conn, R"({"t":"ping"})");
  CHECK(h.take(conn).empty());  // closing: no longer heard
  CHECK(h.take(bob).empty());
  CHECK(h.edge.counters().errors_out.at("too_large") == 1);
}

// ---- leaving -------------------------------------------------------------------------------

TEST_CASE("edge_node: shutdown says bye with a retry window and closes 1001", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  ConnId fresh = h.connect();  // no hello yet
  h.take(alice);
  h.take(bob);

  h.edge.shutdown(h.now);
  h.pump();
  const EdgeConfig& c = h.config;
  std::vector<TimeMs> mins;
  for (ConnId conn : {alice, bob, fresh}) {
    auto got = h.take(conn);
    REQUIRE(types(got) == std::vector<std::string>{"bye", "close:1001"});
    const Bye& bye = as<Bye>(got[0]);
    CHECK(bye.reason == "shutdown");
    CHECK(bye.retry_min_ms <= bye.retry_max_ms);
    CHECK(bye.retry_min_ms >= c.shutdown_retry_low_ms);
    CHECK(bye.retry_min_ms <= c.shutdown_retry_low_ms + c.shutdown_retry_jitter_ms);
    CHECK(bye.retry_max_ms == bye.retry_min_ms + c.shutdown_retry_spread_ms);
    mins.push_back(bye.retry_min_ms);
  }
  // The window is drawn per connection, which spreads the reconnect storm.
  std::sort(mins.begin(), mins.end());
  CHECK(std::unique(mins.begin(), mins.end()) != mins.begin() + 1);

  // Closing sockets are not heard any more.
  h.text(alice, send_frame("ops", "late"));
  CHECK(h.take(alice).empty());
  CHECK(h.writer.empty());

  // A socket that arrives during shutdown is refused (edge_node.h: "new frames are refused
  // with unavailable"): no session starts, and the bye paces its reconnect like the others'.
  ConnId late = h.connect();
  h.text(late, R"({"t":"hello","token":"dev:zoe","rid":"z"})");
  auto got = h.take(late);
  REQUIRE(types(got) == std::vector<std::string>{"err", "bye", "close:1001"});
  CHECK(as<Err>(got[0]).code == ErrorCode::unavailable);
  CHECK(as<Err>(got[0]).rid == std::optional<std::string>("z"));
  CHECK(as<Bye>(got[1]).reason == "shutdown");
  CHECK(as<Bye>(got[1]).retry_min_ms <= as<Bye>(got[1]).retry_max_ms);
  CHECK(h.edge.counters().errors_out.at("unavailable") == 1);
}

TEST_CASE("edge_node: a lagging reader is dropped with bye lagging and close 4008", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  h.take(alice);
  h.take(bob);

  h.edge.drop_lagging(alice, h.now);
  h.pump();
  auto got = h.take(alice);
  REQUIRE(types(got) == std::vector<std::string>{"bye", "close:4008"});
  CHECK(as<Bye>(got[0]).reason == "lagging");
  CHECK(as<Bye>(got[0]).retry_min_ms == h.config.lagging_retry_min_ms);
  CHECK(as<Bye>(got[0]).retry_max_ms == h.config.lagging_retry_max_ms);
  CHECK(h.take(bob).empty());

  // No more frames for it, and it is not dropped twice.
  h.edge.drop_lagging(alice, h.now);
  h.pump();
  h.text(bob, send_frame("ops", "m1"));
  h.commit();
  CHECK(h.take(alice).empty());
  CHECK(types(h.take(bob)) == std::vector<std::string>{"ack", "msg"});

  h.disconnect(alice);
  CHECK(all_of<Presence>(h.take(bob)) == std::vector<Presence>{{"ops", "alice", false}});
  CHECK(h.edge.connection_count() == 1);
}

// ---- access and tenants --------------------------------------------------------------------

TEST_CASE("edge_node: conversations outside the token's convs are forbidden", "[edge_node]") {
  TableAuthenticator auth;
  auth.add("tok-ann", identity("acme", "ann", {"ops", "team-*"}));
  Harness h(test_config(), &auth);
  ConnId ann = h.join("tok-ann");

  auto expect_forbidden = [&](const std::string& frame, const std::string& conv,
                              std::optional<std::string> rid) {
    INFO("input " << frame);
    h.text(ann, frame);
    auto got = h.take(ann);
    REQUIRE(types(got) == std::vector<std::string>{"err"});
    CHECK(as<Err>(got[0]).code == ErrorCode::forbidden);
    CHECK(contains(as<Err>(got[0]).msg, "\"" + conv + "\""));
    CHECK(as<Err>(got[0]).rid == rid);
  };
  expect_forbidden(sub_frame("sales", 0, std::nullopt, R"(,"rid":"s")"), "sales", "s");
  expect_forbidden(hist_frame("sales", R"(,"rid":"h")"), "sales", "h");
  expect_forbidden(rcpt_frame("sales", 1, "read"), "sales", std::nullopt);
  expect_forbidden(R"({"t":"typing","conv":"sales","on":true})", "sales", std::nullopt);
  expect_forbidden(R"({"t":"unsub","conv":"sales"})", "sales", std::nullopt);
  expect_forbidden(sub_frame("team"), "team", std::nullopt);  // "team-*" needs the dash
  expect_forbidden(sub_frame("ops2"), "ops2", std::nullopt);  // "ops" is a name, not a prefix

  h.text(ann, send_frame("sales", "m1", R"(,"rid":"x")"));
  auto got = h.take(ann);
  REQUIRE(types(got) == std::vector<std::string>{"nack"});
  const Nack& nack = as<Nack>(got[0]);
  CHECK(nack.code == ErrorCode::forbidden);
  CHECK(!nack.retry);
  CHECK(nack.conv == "sales");
  CHECK(nack.id == "m1");
  CHECK(nack.rid == std::optional<std::string>("x"));
  // Nothing is stored but the audit records of the attempts.
  CHECK(std::all_of(h.writer.begin(), h.writer.end(), [](const WriteRequest& request) {
    return std::holds_alternative<AuditRequest>(request.op);
  }));
  CHECK(h.writer.size() == 8);

  // Allowed: by name and by prefix.
  h.text(ann, sub_frame("team-x"));
  CHECK(types(h.take(ann)) == std::vector<std::string>{"subd"});
  h.text(ann, send_frame("team-x", "m1"));
  h.text(ann, send_frame("ops", "m1"));
  h.commit();
  got = h.take(ann);
  CHECK(all_of<Ack>(got).size() == 2);
  CHECK(msg_seqs(got, "team-x") == std::vector<Seq>{1});
  CHECK(h.store.head("acme", "ops").value() == 1);

  // hello.subs: the forbidden entry is refused, the others subscribed.
  ConnId tab = h.connect();
  h.text(tab, R"({"t":"hello","token":"tok-ann","subs":[{"conv":"sales"},{"conv":"ops"}]})");
  got = h.take(tab);
  REQUIRE(types(got) == std::vector<std::string>{"welcome", "err", "subd"});
  CHECK(as<Err>(got[1]).code == ErrorCode::forbidden);
  CHECK(as<Subd>(got[2]).conv == "ops");
  CHECK(h.edge.counters().errors_out.at("forbidden") == 9);
}

TEST_CASE("edge_node: tenants sharing a conversation name see nothing of each other",
          "[edge_node]") {
  TableAuthenticator auth;
  auth.add("tok-alice", identity("acme", "alice"));
  auth.add("tok-bob", identity("globex", "bob"));
  auth.add("tok-alice-globex", identity("globex", "alice"));  // same name, other tenant
  Harness h(test_config(), &auth);

  ConnId bob = h.join("tok-bob");
  h.text(bob, sub_frame("ops"));
  h.take(bob);
  ConnId alice = h.join("tok-alice");
  h.text(alice, sub_frame("ops"));
  auto got = h.take(alice);
  CHECK(as<Subd>(got.at(0)).present == std::vector<std::string>{"alice"});
  CHECK(h.take(bob).empty());  // no presence across tenants

  h.text(alice, send_frame("ops", "m1"));
  h.commit();
  CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{1});
  CHECK(h.take(bob).empty());

  h.text(bob, send_frame("ops", "m1"));  // the same id: not a dup in another tenant
  h.commit();
  got = h.take(bob);
  REQUIRE(all_of<Ack>(got).size() == 1);
  CHECK(!all_of<Ack>(got)[0].dup);
  CHECK(all_of<Ack>(got)[0].seq == std::optional<Seq>(1));
  CHECK(h.take(alice).empty());

  h.text(alice, R"({"t":"typing","conv":"ops","on":true})");
  h.text(alice, rcpt_frame("ops", 1, "read"));
  h.commit();
  CHECK(h.take(bob).empty());
  h.take(alice);

  h.text(bob, hist_frame("ops", ""));
  got = h.take(bob);
  const Page& page = as<Page>(got.at(0));
  REQUIRE(page.msgs.size() == 1);
  CHECK(page.msgs[0].from == "bob");

  // globex's alice is a different person: her presence reaches bob, her cursor is her own,
  // and acme's alice hears nothing of her.
  ConnId alice_globex = h.join("tok-alice-globex");
  h.text(alice_globex, sub_frame("ops", 0));
  got = h.take(alice_globex);
  CHECK(msg_seqs(got) == std::vector<Seq>{1});
  CHECK(as<Msg>(got.at(0)).from == "bob");
  CHECK(as<Subd>(got.back()).read == 0);
  CHECK(as<Subd>(got.back()).present == std::vector<std::string>{"alice", "bob"});
  CHECK(all_of<Presence>(h.take(bob)) == std::vector<Presence>{{"ops", "alice", true}});
  CHECK(h.take(alice).empty());
  CHECK(h.store.receipts("acme", "alice", "ops").value().read == 1);
  CHECK(h.store.receipts("globex", "alice", "ops").value().read == 0);

  // Typing and messages stay inside the tenant in both directions.
  h.text(bob, R"({"t":"typing","conv":"ops","on":true})");
  CHECK(types(h.take(alice_globex)) == std::vector<std::string>{"typing"});
  h.text(alice, R"({"t":"typing","conv":"ops","on":true})");
  h.text(alice, send_frame("ops", "m2"));
  h.commit();
  CHECK(h.take(alice_globex).empty());
  CHECK(h.take(bob).empty());
  CHECK(msg_seqs(h.take(alice)) == std::vector<Seq>{2});
  CHECK(h.take(bob).empty());
  CHECK(h.take(alice).empty());
  h.disconnect(alice);
  CHECK(h.take(bob).empty());
  CHECK(h.take(alice_globex).empty());
}

// ---- counters ------------------------------------------------------------------------------

TEST_CASE("edge_node: counters count frames in, errors out, stores and duplicates", "[edge_node]") {
  Harness h;
  ConnId alice = h.subscriber("alice", "ops");
  ConnId bob = h.subscriber("bob", "ops");
  CHECK(h.edge.counters().connections_open == 2);

  h.text(alice, send_frame("ops", "m1"));
  h.text(alice, send_frame("ops", "m2"));
  h.commit();
  h.text(bob, send_frame("ops", "m1"));  // dup
  h.commit();
  h.text(alice, send_frame("ops", "m3"));
  h.fail_commit("disk");
  h.text(alice, R"({"t":"ping"})");
  h.text(alice, R"({"t":"nope"})");
  h.text(alice, "nope");
  h.edge.on_binary(alice, h.now);
  h.text(alice, R"({"t":"sub","conv":"bad conv"})");
  h.pump();

  const EdgeCounters& c = h.edge.counters();
  CHECK(c.frames_in.at("hello") == 2);
  CHECK(c.frames_in.at("sub") == 2);
  CHECK(c.frames_in.at("send") == 4);
  CHECK(c.frames_in.at("ping") == 1);
  CHECK(c.frames_in.at("invalid") == 3);
  CHECK(c.frames_in.at("binary") == 1);
  CHECK(c.errors_out.at("unknown_type") == 1);
  CHECK(c.errors_out.at("bad_frame") == 2);
  CHECK(c.errors_out.at("invalid") == 1);
  CHECK(c.errors_out.at("unavailable") == 1);
  CHECK(c.messages_persisted == 2);
  CHECK(c.duplicates == 1);
  CHECK(c.fanout_deliveries == 4);  // m1 and m2 to two subscribers each

  h.disconnect(bob);
  CHECK(h.edge.counters().connections_open == 1);
  CHECK(h.edge.connection_count() == 1);
}

TEST_CASE("edge_node: replays and pages stay within page_max_bytes, the rest with more:true",
          "[edge_node]") {
  EdgeConfig config = test_config();
  config.page_max_bytes = 4096;
  Harness h(config);
  ConnId sender = h.join_dev("alice");
  // 20 messages of about 1 KB: a 4 KB budget carries 3 of them (a 4th would pass it).
  std::string text(1000, 'x');
  for (int i = 1; i <= 20; ++i)
    h.text(sender, R"({"t":"send","conv":"big","id":"m)" + std::to_string(i) +
                       R"(","body":")" + text + "\"}");
  h.commit();
  h.take(sender);

  ConnId reader = h.join_dev("bob");
  Seq cursor = 0;
  int rounds = 0;
  for (bool more = true; more; ++rounds) {
    REQUIRE(rounds < 20);
    h.text(reader, sub_frame("big", cursor));
    std::size_t bytes = 0, msgs = 0;
    for (const Out& out : h.take(reader)) {
      REQUIRE(out.frame);
      if (auto* msg = std::get_if<Msg>(&*out.frame)) {
        CHECK(*msg->seq == cursor + 1);  // gap-free across the capped rounds
        cursor = *msg->seq;
        bytes += out.text.size();
        ++msgs;
      } else if (auto* subd = std::get_if<Subd>(&*out.frame)) {
        more = subd->more;
        CHECK(subd->more == (cursor < 20));
      }
    }
    CHECK(msgs >= 1);
    CHECK(bytes <= 4096);
  }
  CHECK(cursor == 20);
  CHECK(rounds == 7);  // 3 per round

  h.text(reader, R"({"t":"hist","conv":"big","before":21,"limit":50})");
  auto got = h.take(reader);
  REQUIRE(got.size() == 1);
  const Page& newest = std::get<Page>(*got[0].frame);
  REQUIRE(newest.msgs.size() == 3);  // the three just below `before`
  CHECK(*newest.msgs.front().seq == 18);
  CHECK(*newest.msgs.back().seq == 20);
  CHECK(newest.more);
  h.text(reader, R"({"t":"hist","conv":"big","after":0,"limit":50})");
  got = h.take(reader);
  const Page& oldest = std::get<Page>(*got[0].frame);
  REQUIRE(oldest.msgs.size() == 3);  // the three just above `after`
  CHECK(*oldest.msgs.front().seq == 1);
  CHECK(oldest.more);
}

TEST_CASE("edge_node: nothing is written after a close, not even a later commit's answer",
          "[edge_node]") {
  // Found by fuzz_edge_node (tests/fuzz/crashes/edge_node): connect, hello, send, drop.
  Harness h;
  ConnId ann = h.join_dev("ann");
  ConnId bob = h.subscriber("bob", "ops");
  h.text(ann, send_frame("ops", "m1"));
  h.text(ann, rcpt_frame("ops", 5, "read"));  // refused at commit: past the head
  h.edge.drop_lagging(ann, h.now);
  h.pump();
  CHECK(types(h.take(ann)) == std::vector<std::string>{"bye", "close:4008"});
  h.commit();
  CHECK(h.take(ann).empty());                 // no ack, no err after the close
  CHECK(msg_seqs(h.take(bob)) == std::vector<Seq>{1});  // stored and fanned out all the same

  ConnId cat = h.join_dev("cat");
  h.text(cat, send_frame("ops", "m2"));
  h.edge.shutdown(h.now);
  h.pump();
  CHECK(types(h.take(cat)) == std::vector<std::string>{"bye", "close:1001"});
  h.fail_commit("store: disk full");
  CHECK(h.take(cat).empty());                 // no nack after the close
}
