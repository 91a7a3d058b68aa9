// The core's ClientSession against the real waymark-edge binary, over lws client sockets:
// chat, duplicate-free histories, and a SIGKILLed edge that comes back on the same data.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "client_host.h"
#include "edge/edge_process.h"

#ifndef WAYMARK_EDGE_BINARY
#error "WAYMARK_EDGE_BINARY must name the waymark-edge binary"
#endif

using waymark::ClientConfig;
using waymark::ClientEvent;
using waymark::ClientSession;
using waymark::ConnectionEvent;
using waymark::ConnectionState;
using waymark::JsonText;
using waymark::MessageEvent;
using waymark::RowEvent;
using waymark::RowState;
using waymark::Seq;
using waymark::edge::ClientHost;
using waymark::testing::EdgeProcess;
using waymark::testing::TempDir;

namespace {

// What each session's app saw.
struct Seen {
  std::map<std::string, std::vector<std::pair<Seq, std::string>>> history;  // conv -> (seq, id)
  std::map<std::string, RowState> rows;
  int reconnects = 0;
  bool online = false;
};

struct Harness {
  explicit Harness(int port) : host("127.0.0.1", port) {  // NOLINT: seen is built first
    host.on_event([this](std::size_t index, ClientEvent& event) {
      Seen& s = seen[index];
      if (auto* message = std::get_if<MessageEvent>(&event))
        s.history[message->msg.conv].emplace_back(*message->msg.seq, message->msg.id);
      if (auto* row = std::get_if<RowEvent>(&event)) {
        auto it = s.rows.find(row->id);
        if (it == s.rows.end() || static_cast<int>(row->state) > static_cast<int>(it->second))
          s.rows[row->id] = row->state;
      }
      if (auto* connection = std::get_if<ConnectionEvent>(&event)) {
        if (connection->state == ConnectionState::online) {
          if (s.online) ++s.reconnects;
          s.online = true;
        }
      }
    });
  }

  std::size_t add(const std::string& user) {
    ClientConfig config;
    auto session = std::make_unique<ClientSession>(config, "dev:" + user, "native-test", host.random());
    session->subscribe("ops", Seq{0}, ClientHost::now());
    return host.add(std::move(session));
  }

  bool all_sequenced(std::size_t index, const std::set<std::string>& ids) {
    for (const auto& id : ids) {
      auto it = seen[index].rows.find(id);
      if (it == seen[index].rows.end() || static_cast<int>(it->second) < static_cast<int>(RowState::sequenced))
        return false;
    }
    return true;
  }

  // Declared before the host: the host's destructor closes sockets, and nothing it reports
  // then may reach a map that is already gone.
  std::map<std::size_t, Seen> seen;
  ClientHost host;
};

void check_history(const std::vector<std::pair<Seq, std::string>>& history, std::size_t expected) {
  REQUIRE(history.size() == expected);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < history.size(); ++i) {
    CHECK(history[i].first == i + 1);  // gap-free, in order, no repeat
    ids.insert(history[i].second);
  }
  CHECK(ids.size() == expected);  // one row per id
}

}  // namespace

TEST_CASE("ClientSession over lws: two users chat through the real edge", "[integration]") {
  TempDir data;
  EdgeProcess edge(WAYMARK_EDGE_BINARY, data.path());
  REQUIRE(edge.start());
  Harness harness(edge.port());
  std::size_t alice = harness.add("alice"), bob = harness.add("bob");
  REQUIRE(harness.host.run_until([&] { return harness.seen[alice].online && harness.seen[bob].online; },
                                 std::chrono::seconds(10)));

  std::set<std::string> sent;
  for (int i = 0; i < 30; ++i) {
    std::size_t who = i % 2 ? bob : alice;
    sent.insert(harness.host.session(who).send("ops", JsonText{R"({"text":"message )" + std::to_string(i) + R"("})"},
                                                ClientHost::now()));
    harness.host.pump(who);
  }
  REQUIRE(harness.host.run_until(
      [&] {
        return harness.seen[alice].history["ops"].size() == 30 && harness.seen[bob].history["ops"].size() == 30;
      },
      std::chrono::seconds(10)));
  check_history(harness.seen[alice].history["ops"], 30);
  CHECK(harness.seen[alice].history["ops"] == harness.seen[bob].history["ops"]);
  // Each sender saw its own rows reach sequenced (or beyond, through the other's receipts).
  for (const auto& id : sent) {
    bool alice_row = harness.all_sequenced(alice, {id}), bob_row = harness.all_sequenced(bob, {id});
    CHECK((alice_row && bob_row));
  }
  CHECK(harness.host.session(alice).outbox_size() == 0);
  CHECK(harness.host.session(bob).outbox_size() == 0);
  CHECK(edge.stop(SIGTERM) == 0);
}

TEST_CASE("ClientSession over lws: the edge is SIGKILLed and restarted on the same data",
          "[integration]") {
  TempDir data;
  EdgeProcess edge(WAYMARK_EDGE_BINARY, data.path());
  REQUIRE(edge.start());
  int port = edge.port();
  Harness harness(port);
  std::size_t alice = harness.add("alice"), bob = harness.add("bob");
  REQUIRE(harness.host.run_until([&] { return harness.seen[alice].online && harness.seen[bob].online; },
                                 std::chrono::seconds(10)));

  std::set<std::string> sent;
  auto send_batch = [&](int count, const std::string& tag) {
    for (int i = 0; i < count; ++i) {
      sent.insert(harness.host.session(alice).send("ops", JsonText{R"({"text":")" + tag + std::to_string(i) + R"("})"},
                                                   ClientHost::now()));
    }
    harness.host.pump(alice);
  };
  send_batch(10, "before ");
  REQUIRE(harness.host.run_until([&] { return harness.all_sequenced(alice, sent); }, std::chrono::seconds(10)));

  send_batch(10, "during ");  // in flight when the edge dies: acked or not, none may be lost
  REQUIRE(edge.stop(SIGKILL) == 128 + SIGKILL);
  send_batch(10, "offline ");
  // Restart on the same port and data, after both sessions noticed the loss.
  REQUIRE(harness.host.run_until(
      [&] {
        return harness.host.session(alice).connection_state() != ConnectionState::online &&
               harness.host.session(bob).connection_state() != ConnectionState::online;
      },
      std::chrono::seconds(10)));
  EdgeProcess restarted(WAYMARK_EDGE_BINARY, data.path());
  REQUIRE(restarted.start(port));

  REQUIRE(harness.host.run_until(
      [&] {
        return harness.all_sequenced(alice, sent) && harness.seen[bob].history["ops"].size() == sent.size() &&
               harness.seen[alice].history["ops"].size() == sent.size();
      },
      std::chrono::seconds(40)));
  check_history(harness.seen[alice].history["ops"], sent.size());
  CHECK(harness.seen[alice].history["ops"] == harness.seen[bob].history["ops"]);
  CHECK(harness.seen[alice].reconnects >= 1);
  CHECK(harness.seen[bob].reconnects >= 1);
  CHECK(restarted.stop(SIGTERM) == 0);
}
