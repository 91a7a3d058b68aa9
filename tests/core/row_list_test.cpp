// row_list_test: RowList, the rows a UI draws — keyed by id, states only forward (failed ->
// queued by retry), ordered by seq then appearance — and their JSON.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "waymark/row_list.h"

using namespace waymark;

namespace {

RowEvent row_event(std::string id, RowState state, std::optional<Seq> seq = std::nullopt,
                   bool own = true, std::optional<TimeMs> at = std::nullopt) {
  RowEvent e;
  e.conv = "ops";
  e.id = std::move(id);
  e.state = state;
  e.seq = seq;
  e.own = own;
  e.at = at;
  return e;
}

Msg msg(std::string id, Seq seq, std::string from, std::string body = R"({"text":"hi"})") {
  Msg m;
  m.conv = "ops";
  m.seq = seq;
  m.id = std::move(id);
  m.from = std::move(from);
  m.ts = 1000 + static_cast<TimeMs>(seq);
  m.cts = 900;
  m.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  m.body = JsonText{std::move(body)};
  return m;
}

std::vector<std::string> ids(const RowList& list) {
  std::vector<std::string> out;
  for (const Row* row : list.ordered()) out.push_back(row->id);
  return out;
}

}  // namespace

TEST_CASE("row list: the state order", "[row_list]") {
  using S = RowState;
  const std::vector<S> forward{S::queued, S::stored, S::sequenced, S::delivered, S::read};
  for (std::size_t i = 0; i < forward.size(); ++i)
    for (std::size_t j = 0; j < forward.size(); ++j) {
      INFO(to_string(forward[i]) << " -> " << to_string(forward[j]));
      CHECK(row_state_may_follow(forward[i], forward[j]) == (j > i));
    }
  CHECK(row_state_may_follow(S::queued, S::failed));
  CHECK(row_state_may_follow(S::failed, S::queued));     // retry
  CHECK(row_state_may_follow(S::failed, S::sequenced));  // its msg arrived after all
  for (S late : {S::stored, S::sequenced, S::delivered, S::read}) CHECK_FALSE(row_state_may_follow(late, S::failed));
  CHECK_FALSE(row_state_may_follow(S::failed, S::failed));
}

TEST_CASE("row list: an own row from queued to read, never backwards, times kept", "[row_list]") {
  RowList list("ops");
  RowEvent queued = row_event("a", RowState::queued, std::nullopt, true, 10);
  queued.body = JsonText{R"({"text":"x"})"};
  queued.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  list.apply(queued);
  list.apply(row_event("a", RowState::sequenced, 1, true, 20));
  list.apply(row_event("a", RowState::read, 1, true, 40));
  const Row& row = list.apply(row_event("a", RowState::delivered, 1, true, 30));  // late, backward
  CHECK(row.state == RowState::read);
  CHECK(row.seq == std::optional<Seq>(1));
  CHECK(row.body.text == R"({"text":"x"})");
  CHECK(row.trace);
  CHECK(row.times == std::map<RowState, TimeMs>{{RowState::queued, 10}, {RowState::sequenced, 20}, {RowState::read, 40}});
  // A repeat of a state keeps its first time.
  list.apply(row_event("a", RowState::read, 1, true, 50));
  CHECK(list.find("a")->times.at(RowState::read) == 40);
}

TEST_CASE("row list: failed, then retried, then sequenced; errors follow the state", "[row_list]") {
  RowList list("ops");
  list.apply(row_event("a", RowState::queued, std::nullopt, true, 1));
  RowEvent refused = row_event("a", RowState::queued, std::nullopt, true, 2);
  refused.error = make_error(ErrorCode::rate_limited, "slow down");
  CHECK(list.apply(refused).error == refused.error);  // retryable: queued, with the reason
  RowEvent failed = row_event("a", RowState::failed, std::nullopt, true, 3);
  failed.error = make_error(ErrorCode::forbidden, "no");
  CHECK(list.apply(failed).state == RowState::failed);
  CHECK(list.find("a")->error == failed.error);
  const Row& retried = list.apply(row_event("a", RowState::queued, std::nullopt, true, 4));
  CHECK(retried.state == RowState::queued);
  CHECK_FALSE(retried.error);
  CHECK(retried.times.at(RowState::queued) == 1);
  CHECK(list.apply(row_event("a", RowState::sequenced, 7, true, 5)).state == RowState::sequenced);
  CHECK(list.apply(failed).state == RowState::sequenced);  // a stored row never fails
  CHECK_FALSE(list.find("a")->error);
}

TEST_CASE("row list: others' messages, history, and the order", "[row_list]") {
  RowList list("ops");
  // bob's msg arrives before its row event (as the session emits them); no state: not listed.
  list.apply(MessageEvent{msg("b2", 2, "bob"), false});
  CHECK(ids(list).empty());
  list.apply(row_event("b2", RowState::delivered, 2, false, 5));
  list.apply(row_event("q1", RowState::queued, std::nullopt, true, 6));
  list.apply(row_event("q2", RowState::queued, std::nullopt, true, 7));
  // A history page below: an own and someone else's message, never seen before.
  list.add_history(msg("a1", 1, "alice"), true);
  list.add_history(msg("c3", 3, "carol"), false);
  CHECK(ids(list) == std::vector<std::string>{"a1", "b2", "c3", "q1", "q2"});
  CHECK(list.find("a1")->state == RowState::sequenced);
  CHECK(list.find("c3")->state == RowState::delivered);
  CHECK(list.find("c3")->from == "carol");
  CHECK(list.find("c3")->ts == std::optional<TimeMs>(1003));
  CHECK(list.find("c3")->cts == std::optional<TimeMs>(900));
  // History never lowers what the session said.
  list.apply(row_event("b2", RowState::read, 2, false, 8));
  list.add_history(msg("b2", 2, "bob"), false);
  CHECK(list.find("b2")->state == RowState::read);
  // q1 gets seq 5, q2 stays queued: q1 moves among the sequenced rows.
  list.apply(row_event("q1", RowState::sequenced, 5, true, 9));
  CHECK(ids(list) == std::vector<std::string>{"a1", "b2", "c3", "q1", "q2"});
  list.apply(row_event("q0", RowState::sequenced, 4, true, 10));  // another device's
  CHECK(ids(list) == std::vector<std::string>{"a1", "b2", "c3", "q0", "q1", "q2"});
}

TEST_CASE("row list: provisional rows after the sequenced ones, then in their seq's place",
          "[row_list]") {
  RowList list("ops");
  list.apply(MessageEvent{msg("s1", 1, "dave"), false});
  list.apply(row_event("s1", RowState::delivered, 1, false, 5));
  // Others' provisional msgs (stored at a relay, no seq) and an own send acked without seq.
  RowEvent carol = row_event("c", RowState::stored, std::nullopt, false, 6);
  carol.from = "carol";
  carol.cts = 800;
  carol.body = JsonText{R"({"text":"from carol"})"};
  list.apply(carol);
  list.apply(row_event("own", RowState::queued, std::nullopt, true, 7));
  list.apply(row_event("own", RowState::stored, std::nullopt, true, 8));
  RowEvent bob = row_event("b", RowState::stored, std::nullopt, false, 9);
  bob.from = "bob";
  list.apply(bob);
  CHECK(ids(list) == std::vector<std::string>{"s1", "c", "own", "b"});
  const Row* c = list.find("c");
  CHECK(c->from == "carol");
  CHECK(c->cts == std::optional<TimeMs>(800));
  CHECK(c->body.text == R"({"text":"from carol"})");
  CHECK(row_is_provisional(*c));
  CHECK(row_is_provisional(*list.find("own")));
  CHECK_FALSE(row_is_provisional(*list.find("s1")));
  // Its JSON says so (waymark.js's rows), and the flag is not read back: state and seq say it.
  std::string text = row_json(*c);
  CHECK(text.find(R"("provisional":true)") != std::string::npos);
  CHECK(text.find(R"("from":"carol")") != std::string::npos);
  CHECK(row_json(*list.find("s1")).find("provisional") == std::string::npos);
  auto back = row_from_json(text);
  REQUIRE(back);
  CHECK(*back == *c);
  // The root's order: b, own, c. Each moves into its seq's place, one row per id.
  list.apply(MessageEvent{msg("b", 2, "bob"), false});
  list.apply(row_event("b", RowState::delivered, 2, false, 10));
  CHECK(ids(list) == std::vector<std::string>{"s1", "b", "c", "own"});
  list.apply(row_event("own", RowState::sequenced, 3, true, 11));
  list.apply(MessageEvent{msg("c", 4, "carol", R"({"text":"from carol"})"), false});
  list.apply(row_event("c", RowState::delivered, 4, false, 12));
  CHECK(ids(list) == std::vector<std::string>{"s1", "b", "own", "c"});
  CHECK(list.size() == 4);
  for (const Row* row : list.ordered()) CHECK_FALSE(row_is_provisional(*row));
  // A repeated provisional copy after that moves nothing back.
  list.apply(carol);
  CHECK(list.find("c")->state == RowState::delivered);
  CHECK(list.find("c")->seq == std::optional<Seq>(4));
  CHECK(ids(list) == std::vector<std::string>{"s1", "b", "own", "c"});
  // Queued and failed rows are not provisional: they are not stored anywhere yet.
  list.apply(row_event("q", RowState::queued, std::nullopt, true, 13));
  CHECK_FALSE(row_is_provisional(*list.find("q")));
  list.apply(row_event("q", RowState::failed, std::nullopt, true, 14));
  CHECK_FALSE(row_is_provisional(*list.find("q")));
}

TEST_CASE("row list: restore keeps what the list knows; replace overwrites", "[row_list]") {
  RowList list("ops");
  list.apply(row_event("a", RowState::sequenced, 1, true, 1));
  Row cached;
  cached.conv = "ops";
  cached.id = "a";
  cached.state = RowState::queued;
  CHECK_FALSE(list.restore(cached));
  CHECK(list.find("a")->state == RowState::sequenced);
  cached.id = "b";
  CHECK(list.restore(cached));
  CHECK(list.find("b")->state == RowState::queued);
  Row snapshot = *list.find("a");
  CHECK_FALSE(list.replace(snapshot));  // the same row: no change
  snapshot.state = RowState::read;
  CHECK(list.replace(snapshot));
  CHECK(list.find("a")->state == RowState::read);
  CHECK(ids(list) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("row list: a row's JSON and back", "[row_list]") {
  RowList list("ops");
  RowEvent queued = row_event("a", RowState::queued, std::nullopt, true, 10);
  queued.body = JsonText{R"({"text":"x","n":[1,2.5]})"};
  queued.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  list.apply(queued);
  RowEvent failed = row_event("a", RowState::failed, std::nullopt, true, 11);
  failed.error = make_error(ErrorCode::too_large, "frame: too big");
  const Row& row = list.apply(failed);
  std::string text = row_json(row);
  CHECK(text.find(R"("body":{"text":"x","n":[1,2.5]})") != std::string::npos);  // byte for byte
  CHECK(text.find(R"("times":{"queued":10,"failed":11})") != std::string::npos);
  CHECK(text.find(R"("error":{"code":"too_large","msg":"frame: too big"})") != std::string::npos);
  auto back = row_from_json(text);
  REQUIRE(back);
  CHECK(*back == row);

  RowList others("ops");
  others.apply(MessageEvent{msg("b", 3, "bob"), false});
  const Row& theirs = others.apply(row_event("b", RowState::delivered, 3, false, 12));
  auto again = row_from_json(row_json(theirs));
  REQUIRE(again);
  CHECK(*again == theirs);

  CHECK_FALSE(row_from_json("[]"));
  CHECK_FALSE(row_from_json(R"({"conv":"ops","id":"a"})"));                  // no state
  CHECK_FALSE(row_from_json(R"({"conv":"ops","id":"a","state":"lost"})"));   // unknown state
  CHECK_FALSE(row_from_json("not json"));
}

TEST_CASE("row list: what a state has passed", "[row_list]") {
  using S = RowState;
  CHECK(row_state_passed(S::read, S::stored));
  CHECK(row_state_passed(S::read, S::read));
  CHECK(row_state_passed(S::sequenced, S::queued));
  CHECK_FALSE(row_state_passed(S::sequenced, S::delivered));
  CHECK(row_state_passed(S::failed, S::queued));
  CHECK(row_state_passed(S::failed, S::failed));
  CHECK_FALSE(row_state_passed(S::failed, S::stored));
  CHECK_FALSE(row_state_passed(S::queued, S::failed));
  CHECK(row_state_from_string("delivered") == S::delivered);
  CHECK_FALSE(row_state_from_string("gone"));
}

TEST_CASE("row list: a RowEvent's JSON and back, the body byte for byte", "[row_list]") {
  RowEvent e = row_event("a", RowState::queued, std::nullopt, true, 10);
  e.body = JsonText{R"({"n":1.50,"s":"\u00e9"})"};
  e.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  e.error = make_error(ErrorCode::rate_limited, "later");
  auto back = row_event_from_json(row_event_json(e));
  REQUIRE(back);
  CHECK(back->conv == e.conv);
  CHECK(back->id == e.id);
  CHECK(back->state == e.state);
  CHECK(back->own == e.own);
  CHECK(back->seq == e.seq);
  CHECK(back->error == e.error);
  CHECK(back->trace == e.trace);
  CHECK(back->at == e.at);
  CHECK(back->body == e.body);
  CHECK_FALSE(back->from);
  CHECK_FALSE(back->cts);
  RowEvent provisional = row_event("p", RowState::stored, std::nullopt, false, 11);
  provisional.from = "bob";
  provisional.cts = 7;
  auto prov_back = row_event_from_json(row_event_json(provisional));
  REQUIRE(prov_back);
  CHECK(prov_back->from == std::optional<std::string>("bob"));
  CHECK(prov_back->cts == std::optional<TimeMs>(7));
  RowEvent bare = row_event("b", RowState::delivered, 9, false);
  auto again = row_event_from_json(row_event_json(bare));
  REQUIRE(again);
  CHECK(again->seq == std::optional<Seq>(9));
  CHECK_FALSE(again->body);
  CHECK_FALSE(again->at);
  CHECK_FALSE(row_event_from_json(R"({"type":"message","conv":"ops","id":"a","state":"queued"})"));
  CHECK_FALSE(row_event_from_json(R"({"type":"row","conv":"ops","id":"a","state":"x"})"));
}
