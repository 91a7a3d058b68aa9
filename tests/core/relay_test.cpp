// A relaying edge: a root EdgeNode, a relay EdgeNode and the relay's upstream link (the core's
// ClientSession in relay mode) joined by a fake network the test cuts and heals.
#include <catch2/catch.hpp>

#include "core/edge_harness.h"
#include "overloaded.h"
#include "waymark/client_session.h"
#include "waymark/upstream_op.h"

namespace {

EdgeConfig relay_config(std::string node = "relay-a") {
  EdgeConfig config = test_config();
  config.node = std::move(node);
  config.relay = true;
  config.interest_linger_ms = 1000;
  return config;
}

EdgeConfig root_config() {
  EdgeConfig config = test_config();
  config.node = "root";
  return config;
}

// root <- link <- relay, one tenant ("dev"), everything committed as soon as it is asked for.
struct Tree {
  explicit Tree(std::string token = "dev-node:relay-a", Authenticator* root_auth = nullptr)
      : root(root_config(), root_auth),
        relay(relay_config()),
        link(relay_link_config("relay-a", "dev"), std::move(token), std::nullopt, link_random) {
    link.start(now());
  }

  Harness root;
  Harness relay;
  SeededRandom link_random{7};
  ClientSession link;
  bool up = true;              // the network between relay and root
  bool relay_commits = true;   // false: the relay's writer holds every batch (a slow disk)
  std::optional<ConnId> link_conn;   // the link's socket at the root
  ConnectionId link_socket = 0;
  std::vector<ClientEvent> link_events;  // everything the link told the relay

  TimeMs now() const { return relay.now; }
  void advance(TimeMs ms) {
    relay.now += ms;
    root.now += ms;
  }

  // Moves frames, ops and commits until nothing moves.
  void settle() {
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      relay.pump();
      for (UpstreamOp& op : relay.edge.take_upstream()) {
        moved = true;
        apply_upstream(link, op, now());
      }
      for (IoAction& action : link.take_io()) {
        moved = true;
        std::visit(Overloaded{
                       [&](OpenSocket& open) {
                         if (!up) {
                           link.on_close(open.connection, now());
                           return;
                         }
                         link_socket = open.connection;
                         link_conn = root.connect();
                         link.on_open(open.connection, now());
                       },
                       [&](WriteFrame& write) {
                         if (link_conn && up && write.connection == link_socket)
                           root.text(*link_conn, write.text);
                       },
                       [&](CloseSocket&) {
                         if (link_conn) root.disconnect(*link_conn);
                         link_conn.reset();
                       },
                   },
                   action);
      }
      if (link_conn && up) {
        for (Out& out : root.take(*link_conn)) {
          moved = true;
          if (out.close_code) {
            ConnId gone = *link_conn;
            link_conn.reset();
            root.disconnect(gone);
            link.on_close(link_socket, now(), out.close_code);
            break;
          }
          link.on_frame(link_socket, out.text, now());
        }
      }
      for (ClientEvent& event : link.take_events()) {
        moved = true;
        link_events.push_back(event);
        relay.edge.on_upstream("dev", event, now());
      }
      if (!root.writer.empty()) {
        moved = true;
        root.commit();
      }
      if (relay_commits && !relay.writer.empty()) {
        moved = true;
        relay.commit();
      }
      if (!moved) return;
    }
    FAIL("the tree did not settle");
  }

  // The network fails: both ends see the socket go.
  void cut() {
    up = false;
    if (link_conn) {
      root.disconnect(*link_conn);
      link_conn.reset();
      link.on_close(link_socket, now());
    }
    settle();
  }
  void heal() {
    up = true;
    link.connect_now(now());
    settle();
  }

  // Time passes with timers firing on all three, a second at a time.
  void run_for(TimeMs ms) {
    for (TimeMs t = 0; t < ms; t += 1000) {
      advance(1000);
      link.on_timer(now());
      relay.edge.on_timer(now());
      root.edge.on_timer(now());
      settle();
    }
  }
};

std::vector<std::string> log_ids(MemoryLogStore& store, const std::string& conv) {
  std::vector<std::string> ids;
  auto stored = store.read_after("dev", conv, 0, 100000);
  REQUIRE(stored.ok());
  for (auto& m : stored.value()) {
    auto parsed = parse_frame(m.frame, Direction::from_edge);
    REQUIRE(parsed.ok());
    ids.push_back(std::get<Msg>(parsed.value()).id);
  }
  return ids;
}

std::string hello_provisional(const std::string& user) {
  return R"({"t":"hello","token":"dev:)" + user + R"(","provisional":true})";
}

}  // namespace

TEST_CASE("relay: a send is staged, acked without seq, sequenced at the root, replicated back",
          "[relay]") {
  Tree tree;
  ConnId bob = tree.relay.connect();
  tree.relay.text(bob, hello_provisional("bob"));
  tree.relay.text(bob, sub_frame("ops", 0));
  ConnId carol = tree.relay.subscriber("carol", "ops");  // a v1 client: no provisional msgs
  tree.settle();
  tree.relay.take(bob);

  ConnId alice = tree.relay.join_dev("alice");
  tree.relay.text(alice, send_frame("ops", "m1", R"(,"trace":")" + kClientTrace + "\""));
  tree.relay.commit();
  auto acks = all_of<Ack>(tree.relay.take(alice));
  REQUIRE(acks.size() == 1);
  CHECK_FALSE(acks[0].seq);  // stored here, will be relayed
  CHECK(acks[0].trace == kClientTrace);

  auto provisional = all_of<Msg>(tree.relay.take(bob));
  REQUIRE(provisional.size() == 1);
  CHECK(provisional[0].provisional);
  CHECK_FALSE(provisional[0].seq);
  CHECK(provisional[0].from == "alice");
  for (const Out& out : tree.relay.take(carol)) CHECK_FALSE(contains(out.text, "\"msg\""));
  CHECK(tree.relay.edge.counters().staged_now == 1);

  tree.settle();
  CHECK(log_ids(tree.root.store, "ops") == std::vector<std::string>{"m1"});
  CHECK(log_ids(tree.relay.store, "ops") == std::vector<std::string>{"m1"});
  auto stored = tree.root.store.read_after("dev", "ops", 0, 1).value();
  CHECK(contains(stored[0].frame, R"("from":"alice")"));
  CHECK(contains(stored[0].frame, kClientTrace));  // the whole path keeps the trace
  CHECK(tree.relay.edge.counters().staged_now == 0);
  CHECK(tree.relay.store.staged_messages().value().empty());

  // Both local subscribers get the sequenced msg, once.
  CHECK(msg_seqs(tree.relay.take(bob)) == std::vector<Seq>{1});
  CHECK(msg_seqs(tree.relay.take(carol)) == std::vector<Seq>{1});

  // The same id sent again to the relay: a duplicate, and now it knows the seq.
  tree.relay.text(alice, send_frame("ops", "m1"));
  tree.relay.commit();
  auto again = all_of<Ack>(tree.relay.take(alice));
  REQUIRE(again.size() == 1);
  CHECK(again[0].dup);
  CHECK(again[0].seq == Seq{1});
}

TEST_CASE("relay: through a partition it keeps accepting, and converges on the root's order",
          "[relay]") {
  Tree tree;
  ConnId rooted = tree.root.subscriber("dora", "ops");  // a user on the root's side
  ConnId bob = tree.relay.connect();
  tree.relay.text(bob, hello_provisional("bob"));
  tree.relay.text(bob, sub_frame("ops", 0));
  ConnId alice = tree.relay.join_dev("alice");
  tree.settle();
  tree.relay.take(bob);

  tree.cut();
  for (int i = 1; i <= 5; ++i) tree.relay.text(alice, send_frame("ops", "r" + std::to_string(i)));
  tree.relay.commit();
  CHECK(all_of<Ack>(tree.relay.take(alice)).size() == 5);
  CHECK(all_of<Msg>(tree.relay.take(bob)).size() == 5);  // provisional, at once
  // Meanwhile the root's side talks too.
  tree.root.send_many(rooted, "ops", "d", 3);
  tree.settle();
  CHECK(log_ids(tree.relay.store, "ops").empty());
  CHECK(tree.relay.edge.counters().staged_now == 5);

  tree.run_for(5000);  // the link keeps failing to connect: nothing changes
  CHECK(tree.relay.store.staged_messages().value().size() == 5);

  tree.heal();
  std::vector<std::string> root_order = log_ids(tree.root.store, "ops");
  CHECK(root_order == std::vector<std::string>{"d1", "d2", "d3", "r1", "r2", "r3", "r4", "r5"});
  CHECK(log_ids(tree.relay.store, "ops") == root_order);
  CHECK(tree.relay.edge.counters().staged_now == 0);
  // bob sees every sequenced msg once, in the root's order.
  std::vector<std::string> seen;
  for (const Msg& m : all_of<Msg>(tree.relay.take(bob)))
    if (m.seq) seen.push_back(m.id);
  CHECK(seen == root_order);
}

TEST_CASE("relay: a restart forwards what was staged, in staged order, once", "[relay]") {
  Tree tree;
  ConnId alice = tree.relay.join_dev("alice");
  tree.settle();
  tree.cut();
  for (int i = 1; i <= 3; ++i) tree.relay.text(alice, send_frame("ops", "s" + std::to_string(i)));
  tree.relay.commit();

  // The relay process dies: a new EdgeNode and a new link over the same store.
  EdgeNode restarted(relay_config(), tree.relay.store, tree.relay.dev, tree.relay.random);
  REQUIRE(restarted.recover_staged(tree.now()).ok());
  auto ops = restarted.take_upstream();
  std::vector<std::string> forwarded;
  for (const auto& op : ops)
    if (const auto* send = std::get_if<UpstreamSend>(&op)) forwarded.push_back(send->msg.id);
  CHECK(forwarded == std::vector<std::string>{"s1", "s2", "s3"});
  CHECK(restarted.counters().staged_now == 3);
}

TEST_CASE("relay: receipts cross to the root and back, typing and presence too", "[relay]") {
  Tree tree;
  ConnId dora = tree.root.subscriber("dora", "ops");
  ConnId bob = tree.relay.subscriber("bob", "ops");
  tree.settle();
  tree.root.send_many(dora, "ops", "d", 2);
  tree.settle();
  CHECK(msg_seqs(tree.relay.take(bob)) == std::vector<Seq>{1, 2});
  tree.root.take(dora);

  tree.relay.text(bob, rcpt_frame("ops", 2, "read"));
  tree.settle();
  auto at_root = tree.root.store.receipts("dev", "bob", "ops").value();
  CHECK(at_root.read == 2);
  auto rcpts = all_of<Rcpt>(tree.root.take(dora));
  REQUIRE(rcpts.size() == 1);
  CHECK(*rcpts[0].user == "bob");

  // dora's read receipt at the root is stored at the relay too, and reaches bob.
  tree.root.text(dora, rcpt_frame("ops", 1, "read"));
  tree.settle();
  CHECK(tree.relay.store.receipts("dev", "dora", "ops").value().read == 1);
  bool bob_heard = false;
  for (const Rcpt& r : all_of<Rcpt>(tree.relay.take(bob)))
    if (r.user == std::optional<std::string>("dora")) bob_heard = true;
  CHECK(bob_heard);

  tree.relay.text(bob, R"({"t":"typing","conv":"ops","on":true})");
  tree.settle();
  auto typing = all_of<Typing>(tree.root.take(dora));
  REQUIRE(typing.size() == 1);
  CHECK(*typing[0].user == "bob");
}

namespace {
// The presence frames in outs, as (user, on), in order.
std::vector<std::pair<std::string, bool>> presences(const std::vector<Out>& outs) {
  std::vector<std::pair<std::string, bool>> seen;
  for (const Presence& p : all_of<Presence>(outs)) seen.emplace_back(p.user, p.on);
  return seen;
}
}  // namespace

TEST_CASE("relay: presence crosses the tree both ways, once per user, and ends with the link",
          "[relay]") {
  Tree tree;
  ConnId dora = tree.root.subscriber("dora", "ops");
  ConnId bob = tree.relay.subscriber("bob", "ops");
  tree.settle();
  using Seen = std::vector<std::pair<std::string, bool>>;
  CHECK(presences(tree.root.take(dora)) == Seen{{"bob", true}});  // bob is at the relay
  // A second connection of bob's at the relay: no second announcement.
  ConnId bob2 = tree.relay.subscriber("bob", "ops");
  tree.settle();
  CHECK(presences(tree.root.take(dora)).empty());
  // Someone joining at the root sees both in subd.present; someone joining at the relay too.
  ConnId erin = tree.root.join_dev("erin");
  tree.root.text(erin, sub_frame("ops", 0));
  auto subd_root = all_of<Subd>(tree.root.take(erin));
  REQUIRE(subd_root.size() == 1);
  CHECK(subd_root[0].present == std::vector<std::string>{"bob", "dora", "erin"});
  tree.settle();
  ConnId fay = tree.relay.join_dev("fay");
  tree.relay.text(fay, sub_frame("ops", 0));
  auto subd_relay = all_of<Subd>(tree.relay.take(fay));
  REQUIRE(subd_relay.size() == 1);
  CHECK(subd_relay[0].present == std::vector<std::string>{"bob", "dora", "erin", "fay"});
  tree.settle();
  tree.root.take(dora);
  tree.relay.take(bob);

  // bob leaves with his last connection: the root hears it once.
  tree.relay.disconnect(bob);
  tree.settle();
  CHECK(presences(tree.root.take(dora)).empty());
  tree.relay.disconnect(bob2);
  tree.settle();
  CHECK(presences(tree.root.take(dora)) == Seen{{"bob", false}});
  // dora leaving at the root reaches fay at the relay, once.
  tree.relay.take(fay);
  tree.root.disconnect(dora);
  tree.settle();
  CHECK(presences(tree.relay.take(fay)) == Seen{{"dora", false}});

  // The link goes: fay's presence ends at the root, erin's at the relay; the heal brings both
  // back.
  tree.root.take(erin);
  tree.cut();
  CHECK(presences(tree.root.take(erin)) == Seen{{"fay", false}});
  CHECK(presences(tree.relay.take(fay)) == Seen{{"erin", false}});
  tree.heal();
  CHECK(presences(tree.root.take(erin)) == Seen{{"fay", true}});
  CHECK(presences(tree.relay.take(fay)) == Seen{{"erin", true}});
}

TEST_CASE("relay: presence frames are a relay link's only", "[relay]") {
  Harness root(root_config());
  ConnId alice = root.join_dev("alice");
  root.text(alice, sub_frame("ops", 0));
  root.take(alice);
  root.text(alice, R"({"t":"relay_presence","conv":"ops","on":true,"as":"mallory"})");
  auto errs = all_of<Err>(root.take(alice));
  REQUIRE(errs.size() == 1);
  CHECK(errs[0].code == ErrorCode::forbidden);
  CHECK(contains(errs[0].msg, "presence"));
}

TEST_CASE("relay: interest follows local subscribers, with a linger", "[relay]") {
  Tree tree;
  ConnId bob = tree.relay.subscriber("bob", "ops");
  tree.settle();
  CHECK(tree.link.cursor("ops").has_value());
  tree.relay.disconnect(bob);
  tree.settle();
  tree.advance(500);  // a timer fires within the 1 s linger: still subscribed upstream
  tree.relay.edge.on_timer(tree.now());
  tree.settle();
  ConnId dora = tree.root.subscriber("dora", "ops");
  tree.root.send_many(dora, "ops", "x", 1);
  tree.settle();
  CHECK(log_ids(tree.relay.store, "ops") == std::vector<std::string>{"x1"});
  tree.run_for(3000);  // past the 1 s linger: the link lets go
  tree.root.send_many(dora, "ops", "y", 1);
  tree.settle();
  CHECK(log_ids(tree.relay.store, "ops") == std::vector<std::string>{"x1"});
  // A new local subscriber takes it up again from the relay's head: no gap.
  tree.relay.subscriber("erin", "ops");
  tree.settle();
  CHECK(log_ids(tree.relay.store, "ops") == std::vector<std::string>{"x1", "y1"});
}

TEST_CASE("relay: history at a relay is the root's, also where its log lacks it", "[relay]") {
  Tree tree;
  ConnId dora = tree.root.subscriber("dora", "ops");
  tree.root.send_many(dora, "ops", "h", 5);
  tree.settle();
  ConnId alice = tree.relay.join_dev("alice");
  tree.settle();
  REQUIRE(log_ids(tree.relay.store, "ops").empty());  // the relay never followed "ops"

  SECTION("not followed: the hist waits for the log to catch up, then pages the root's history") {
    tree.relay.text(alice, hist_frame("ops", R"(,"limit":3,"rid":"h1")"));
    CHECK(all_of<Page>(tree.relay.take(alice)).empty());  // not from an empty log
    tree.settle();
    auto pages = all_of<Page>(tree.relay.take(alice));
    REQUIRE(pages.size() == 1);
    CHECK(pages[0].rid == std::optional<std::string>("h1"));
    CHECK(page_seqs(pages[0]) == std::vector<Seq>{3, 4, 5});  // the newest three, as at the root
    CHECK(pages[0].more);
    CHECK(log_ids(tree.relay.store, "ops") == std::vector<std::string>{"h1", "h2", "h3", "h4", "h5"});
    // Followed and caught up now: the next page comes from the log at once.
    tree.relay.text(alice, hist_frame("ops", R"(,"before":3,"rid":"h2")"));
    auto next = all_of<Page>(tree.relay.take(alice));
    REQUIRE(next.size() == 1);
    CHECK(page_seqs(next[0]) == std::vector<Seq>{1, 2});
    CHECK_FALSE(next[0].more);
    // The hist held the conversation only while it waited: with no subscriber the link lets go.
    tree.run_for(3000);
    tree.root.send_many(dora, "ops", "late", 1);
    tree.settle();
    CHECK(log_ids(tree.relay.store, "ops").size() == 5);
  }

  SECTION("cut off: after relay_hist_wait_ms it is served from what the log holds") {
    tree.cut();
    tree.relay.text(alice, hist_frame("ops", R"(,"rid":"h3")"));
    tree.settle();
    CHECK(all_of<Page>(tree.relay.take(alice)).empty());
    tree.run_for(relay_config().relay_hist_wait_ms);
    auto pages = all_of<Page>(tree.relay.take(alice));
    REQUIRE(pages.size() == 1);
    CHECK(pages[0].rid == std::optional<std::string>("h3"));
    CHECK(pages[0].msgs.empty());  // the partition: the relay has none of it
    // Healed, the conversation it followed for the hist comes in (and is let go later).
    tree.heal();
    CHECK(log_ids(tree.relay.store, "ops").size() == 5);
  }
}

TEST_CASE("relay: the root refusing a staged send for good makes a dead letter and a failed row",
          "[relay]") {
  TableAuthenticator root_auth;
  Identity node = identity("dev", "relay-a", {"ok*"});
  node.node = true;
  node.relay_tenants = {"dev"};
  root_auth.add("node-token", node);
  Tree tree("node-token", &root_auth);
  ConnId alice = tree.relay.join_dev("alice");
  tree.settle();
  tree.relay.text(alice, send_frame("secret", "z1"));
  tree.relay.commit();
  CHECK_FALSE(all_of<Ack>(tree.relay.take(alice)).at(0).seq);
  tree.settle();
  auto nacks = all_of<Nack>(tree.relay.take(alice));
  REQUIRE(nacks.size() == 1);
  CHECK(nacks[0].id == "z1");
  CHECK(nacks[0].code == ErrorCode::forbidden);
  CHECK_FALSE(nacks[0].retry);
  CHECK(tree.relay.edge.counters().dead_letters == 1);
  CHECK(tree.relay.store.data().dead_letters.size() == 1);
  CHECK(tree.relay.store.staged_messages().value().empty());
  CHECK(log_ids(tree.root.store, "secret").empty());
  CHECK(tree.link.outbox_size() == 0);  // the dead letter is kept at the relay, not in the link
  // A reconnect sends nothing again: the root hears z1 once.
  tree.cut();
  tree.heal();
  CHECK(tree.root.edge.counters().frames_in.at("send") == 1);
}

TEST_CASE("relay: node tokens and 'as' are refused where they do not belong", "[relay]") {
  Harness root(root_config());
  // A user token cannot open a relay link.
  ConnId user_link = root.connect();
  root.text(user_link, R"({"t":"hello","token":"dev:mallory","relay":{"node":"relay-a","tenant":"dev"}})");
  auto got = root.take(user_link);
  CHECK(as<Err>(got.at(0)).code == ErrorCode::unauthorized);
  CHECK(got.back().close_code == 4001);

  // A node token for another tenant.
  ConnId other = root.connect();
  root.text(other, R"({"t":"hello","token":"dev-node:relay-a","relay":{"node":"relay-a","tenant":"acme"}})");
  got = root.take(other);
  CHECK(as<Err>(got.at(0)).code == ErrorCode::unauthorized);
  CHECK(contains(as<Err>(got.at(0)).msg, "acme"));

  // A node token without hello.relay, and one naming another node.
  ConnId bare = root.connect();
  root.text(bare, R"({"t":"hello","token":"dev-node:relay-a"})");
  CHECK(as<Err>(root.take(bare).at(0)).code == ErrorCode::unauthorized);
  ConnId wrong = root.connect();
  root.text(wrong, R"({"t":"hello","token":"dev-node:relay-a","relay":{"node":"relay-b","tenant":"dev"}})");
  CHECK(as<Err>(root.take(wrong).at(0)).code == ErrorCode::unauthorized);

  // A user's connection may not speak for another user.
  ConnId mallory = root.join_dev("mallory");
  root.text(mallory, send_frame("ops", "f1", R"(,"as":"alice")"));
  got = root.take(mallory);
  CHECK(as<Err>(got.at(0)).code == ErrorCode::forbidden);
  for (const WriteRequest& request : root.writer)  // an audit record, no message
    CHECK_FALSE(std::holds_alternative<AppendRequest>(request.op));

  // A relay link must say whom each send is for.
  ConnId link = root.connect();
  root.text(link, R"({"t":"hello","token":"dev-node:relay-a","relay":{"node":"relay-a","tenant":"dev"}})");
  auto welcome = as<Welcome>(root.take(link).at(0));
  CHECK(welcome.path == std::vector<std::string>{"root"});
  root.text(link, send_frame("ops", "f2"));
  CHECK(as<Err>(root.take(link).at(0)).code == ErrorCode::invalid);
  root.text(link, send_frame("ops", "f3", R"(,"as":"alice")"));
  root.commit();
  CHECK(as<Ack>(root.take(link).at(0)).seq == Seq{1});
  CHECK(contains(root.store.read_after("dev", "ops", 0, 1).value()[0].frame, R"("from":"alice")"));
}

TEST_CASE("relay: a cycle is refused on both ends", "[relay]") {
  // The root's own name coming back as a relay.
  Harness root(root_config());
  ConnId loop = root.connect();
  root.text(loop, R"({"t":"hello","token":"dev-node:root","relay":{"node":"root","tenant":"dev"}})");
  auto got = root.take(loop);
  CHECK(contains(as<Err>(got.at(0)).msg, "cycle"));
  CHECK(got.back().close_code == 4001);

  // A relay whose upstream's path already holds it stops its link.
  Harness relay(relay_config());
  Welcome welcome;
  welcome.path = {"hub", "relay-a", "root"};
  ConnectionEvent online;
  online.state = ConnectionState::online;
  online.path = welcome.path;
  relay.edge.on_upstream("dev", online, relay.now);
  bool stopped = false;
  for (const auto& op : relay.edge.take_upstream())
    if (std::holds_alternative<UpstreamStop>(op)) stopped = true;
  CHECK(stopped);
  CHECK(relay.edge.upstream_links().at("dev").stopped);
  CHECK(contains(relay.edge.upstream_links().at("dev").reason, "cycle"));

  // A relay below this node that turns out to be above it is closed.
  Harness hub(relay_config("hub"));
  ConnId below = hub.connect();
  hub.text(below, R"({"t":"hello","token":"dev-node:relay-b","relay":{"node":"relay-b","tenant":"dev"}})");
  hub.take(below);
  ConnectionEvent hub_online;
  hub_online.state = ConnectionState::online;
  hub_online.path = {"relay-b", "root"};
  hub.edge.on_upstream("dev", hub_online, hub.now);
  hub.pump();
  got = hub.take(below);
  REQUIRE(!got.empty());
  CHECK(contains(as<Err>(got.at(0)).msg, "cycle"));
  CHECK(got.back().close_code == 4001);
}

TEST_CASE("relay: replication lag is the upstream's head minus what the relay's log holds",
          "[relay]") {
  Tree tree;
  ConnId dora = tree.root.subscriber("dora", "ops");
  tree.root.send_many(dora, "ops", "d", 5);  // before the relay follows "ops"
  tree.settle();
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 0);

  tree.relay_commits = false;  // the relay hears everything and stores nothing yet
  ConnId bob = tree.relay.subscriber("bob", "ops");
  tree.settle();
  bool told_head = false;
  for (const ClientEvent& event : tree.link_events)
    if (const auto* head = std::get_if<HeadEvent>(&event))
      told_head = told_head || (head->conv == "ops" && head->head == 5);
  CHECK(told_head);
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 5);

  tree.relay_commits = true;
  tree.settle();
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 0);
  CHECK(log_ids(tree.relay.store, "ops").size() == 5);

  // Live msgs raise the upstream head as they come; each commit brings the lag back down.
  tree.relay_commits = false;
  tree.root.send_many(dora, "ops", "e", 2);
  tree.settle();
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 2);
  tree.relay_commits = true;
  tree.settle();
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 0);
  CHECK(msg_seqs(tree.relay.take(bob)) == std::vector<Seq>{1, 2, 3, 4, 5, 6, 7});

  // A conversation followed no more adds nothing: the linger passes, the link lets go.
  tree.relay.disconnect(bob);
  tree.run_for(3000);
  tree.root.send_many(dora, "ops", "f", 3);
  tree.settle();
  CHECK(tree.relay.edge.upstream_links().at("dev").replication_lag == 0);
}

TEST_CASE("relay: after a long partition the link is back within a second of the heal",
          "[relay]") {
  Tree tree;
  ConnId alice = tree.relay.join_dev("alice");
  tree.settle();
  tree.cut();
  tree.relay.text(alice, send_frame("ops", "late-1"));
  tree.relay.commit();
  tree.run_for(60000);  // a minute of failed attempts: the browser's backoff would be at 30 s
  CHECK(tree.relay.edge.upstream_links().at("dev").state != ConnectionState::online);
  tree.up = true;       // the network heals; nobody says connect_now
  tree.run_for(1000);
  CHECK(tree.relay.edge.upstream_links().at("dev").state == ConnectionState::online);
  CHECK(log_ids(tree.root.store, "ops") == std::vector<std::string>{"late-1"});
  CHECK(tree.relay.edge.counters().staged_now == 0);
}
