// The host around one EdgeNode for the core's edge tests: a MemoryLogStore, a writer queue the
// test commits by hand, the frames each connection was given, and helpers to build frames and
// read what came back. Test code only; each test file gets its own copy (anonymous namespace).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "waymark/auth.h"
#include "waymark/codec.h"
#include "waymark/edge_node.h"
#include "waymark/identifiers.h"
#include "core/memory_log_store.h"
#include "waymark/write_batch.h"

// NOLINTBEGIN(google-build-namespaces): test helpers, one copy per test file
using namespace waymark;

// A test file uses some of these helpers, not all: no warning for the ones it leaves.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
namespace {

constexpr TimeMs kStart = 1'700'000'000'000;
const std::string kClientTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// One thing a connection was given by the edge, in order: a frame (parsed as a client parses
// it) or the close that ends the socket.
struct Out {
  std::string text;
  std::optional<Frame> frame;
  std::optional<int> close_code;
  std::string close_reason;
};

// Identities by token: restricted access and several tenants, which dev tokens cannot give.
class TableAuthenticator final : public Authenticator {
 public:
  void add(std::string token, Identity identity) {
    identities_[std::move(token)] = std::move(identity);
  }
  Result<Identity> authenticate(std::string_view token, TimeMs) override {
    auto it = identities_.find(std::string(token));
    if (it == identities_.end()) return make_error(ErrorCode::unauthorized, "token: unknown");
    return it->second;
  }

 private:
  std::map<std::string, Identity> identities_;
};

Identity identity(std::string tenant, std::string user, std::vector<std::string> convs = {}) {
  Identity id;
  id.tenant = std::move(tenant);
  id.user = std::move(user);
  id.all_convs = convs.empty();
  id.convs = std::move(convs);
  return id;
}

EdgeConfig test_config() {
  EdgeConfig config;
  config.node = "edge-test";
  config.heartbeat_ms = 20000;
  return config;
}

// The host around one EdgeNode: a MemoryLogStore, a writer queue the test commits by hand,
// and the frames written to each connection. Time only moves when a test moves it.
// Members are public: tests reach into the store and the edge directly. Declaration order
// matters: the edge is built from the store, the authenticator and the random source.
struct Harness {
  explicit Harness(EdgeConfig edge_config = test_config(), Authenticator* auth = nullptr)
      : config(edge_config), edge(edge_config, store, auth ? *auth : dev, random) {}

  MemoryLogStore store;
  DevAuthenticator dev;
  SeededRandom random{20240611};
  const EdgeConfig config;
  EdgeNode edge;
  TimeMs now = kStart;
  std::vector<WriteRequest> writer;  // EdgePersist requests handed over and not yet committed

  // Collects the edge's outputs: writes are parsed (every one must be a valid edge frame).
  void pump() {
    drain_outputs(
        edge,
        [&](EdgeWrite& write) {
          REQUIRE(write.text);
          auto parsed = parse_frame(*write.text, Direction::from_edge, ParseLimits{1u << 26});
          INFO("edge wrote " << *write.text);
          REQUIRE(parsed.ok());
          CHECK(write.type == frame_type(parsed.value()));
          inbox_[write.conn].push_back(Out{*write.text, parsed.value(), std::nullopt, {}});
        },
        [&](EdgeClose& close) {
          inbox_[close.conn].push_back(Out{{}, std::nullopt, close.code, close.reason});
        },
        [&](EdgePersist& persist) { writer.push_back(std::move(persist.request)); });
  }

  ConnId connect() {
    ConnId conn = next_conn_++;
    edge.on_connect(conn, now);
    pump();
    return conn;
  }

  void text(ConnId conn, const std::string& frame) {
    edge.on_text(conn, frame, now);
    pump();
  }

  void disconnect(ConnId conn) {
    edge.on_disconnect(conn, now);
    pump();
  }

  // A connection past its welcome; its inbox starts empty.
  ConnId join(const std::string& token) {
    ConnId conn = connect();
    text(conn, R"({"t":"hello","token":")" + token + R"("})");
    auto got = take(conn);
    REQUIRE(got.size() == 1);
    REQUIRE(got[0].frame);
    REQUIRE(std::holds_alternative<Welcome>(*got[0].frame));
    return conn;
  }
  ConnId join_dev(const std::string& user) { return join("dev:" + user); }

  // Joins and subscribes live (no replay), dropping the subd.
  ConnId subscriber(const std::string& user, const std::string& conv) {
    ConnId conn = join_dev(user);
    text(conn, R"({"t":"sub","conv":")" + conv + R"("})");
    auto got = take(conn);
    REQUIRE(!got.empty());
    REQUIRE(got.back().frame);
    REQUIRE(std::holds_alternative<Subd>(*got.back().frame));
    return conn;
  }

  std::vector<Out> take(ConnId conn) {
    std::vector<Out> out;
    out.swap(inbox_[conn]);
    return out;
  }

  // The writer's group commit, reported back as the real writer does.
  void commit() {
    std::vector<WriteRequest> batch;
    batch.swap(writer);
    edge.on_commit(batch, commit_batch(store, batch), now);
    pump();
  }

  // Commits the batch in the store (readers see it) without telling the edge yet.
  std::vector<WriteOutcome> commit_in_store_only() {
    std::vector<WriteRequest> batch;
    batch.swap(writer);
    auto outcomes = commit_batch(store, batch);
    REQUIRE(outcomes.ok());
    return outcomes.value();
  }
  void report(const std::vector<WriteOutcome>& outcomes) {
    edge.on_committed(outcomes, now);
    pump();
  }

  void fail_commit(const std::string& why) {
    std::vector<WriteRequest> batch;
    batch.swap(writer);
    edge.on_commit_failed(batch, make_error(ErrorCode::unavailable, why), now);
    pump();
  }

  // Sends `count` messages to conv from conn, ids prefix-1.., committed together.
  void send_many(ConnId conn, const std::string& conv, const std::string& prefix, int count) {
    for (int i = 1; i <= count; ++i)
      text(conn, R"({"t":"send","conv":")" + conv + R"(","id":")" + prefix + std::to_string(i) +
                     R"(","body":{"n":)" + std::to_string(i) + "}}");
    commit();
  }

  ConnId next_conn_ = 1;
  std::map<ConnId, std::vector<Out>> inbox_;  // what each connection got, not yet taken
};

std::string send_frame(const std::string& conv, const std::string& id,
                       const std::string& extra = "") {
  return R"({"t":"send","conv":")" + conv + R"(","id":")" + id + R"(","body":{"text":"hi"})" +
         extra + "}";
}

std::string sub_frame(const std::string& conv, std::optional<Seq> after = std::nullopt,
                      std::optional<int> limit = std::nullopt, const std::string& extra = "") {
  std::string out = R"({"t":"sub","conv":")" + conv + "\"";
  if (after) out += ",\"after\":" + std::to_string(*after);
  if (limit) out += ",\"limit\":" + std::to_string(*limit);
  return out + extra + "}";
}

std::string rcpt_frame(const std::string& conv, Seq seq, const std::string& kind,
                       const std::string& extra = "") {
  return R"({"t":"rcpt","conv":")" + conv + R"(","seq":)" + std::to_string(seq) +
         R"(,"kind":")" + kind + "\"" + extra + "}";
}

std::string hist_frame(const std::string& conv, const std::string& fields) {
  return R"({"t":"hist","conv":")" + conv + "\"" + fields + "}";
}

// "msg", "subd", ... and "close:4001", in order.
std::vector<std::string> types(const std::vector<Out>& outs) {
  std::vector<std::string> out;
  for (const Out& o : outs)
    out.push_back(o.frame ? std::string(frame_type(*o.frame))
                          : "close:" + std::to_string(*o.close_code));
  return out;
}

template <typename T>
const T& as(const Out& out) {
  INFO("got " << (out.frame ? out.text : "close:" + std::to_string(*out.close_code)));
  REQUIRE(out.frame);
  REQUIRE(std::holds_alternative<T>(*out.frame));
  return std::get<T>(*out.frame);
}

template <typename T>
std::vector<T> all_of(const std::vector<Out>& outs) {
  std::vector<T> out;
  for (const Out& o : outs)
    if (o.frame && std::holds_alternative<T>(*o.frame)) out.push_back(std::get<T>(*o.frame));
  return out;
}

std::vector<Seq> msg_seqs(const std::vector<Out>& outs, const std::string& conv = "ops") {
  std::vector<Seq> out;
  for (const Msg& m : all_of<Msg>(outs))
    if (m.conv == conv) out.push_back(*m.seq);
  return out;
}

std::vector<Seq> page_seqs(const Page& page) {
  std::vector<Seq> out;
  for (const Msg& m : page.msgs) out.push_back(*m.seq);
  return out;
}

std::vector<Seq> range(Seq first, Seq last) {
  std::vector<Seq> out;
  for (Seq s = first; s <= last; ++s) out.push_back(s);
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace
#pragma GCC diagnostic pop
// NOLINTEND(google-build-namespaces)
