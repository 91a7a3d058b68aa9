// RowList: one conversation's rows as a UI shows them, one per message id, built from what a
// ClientSession tells (RowEvent, MessageEvent), from history pages, and from rows a host kept
// (a cache, another tab's snapshot). It needs no session: a browser tab that only mirrors the
// leader tab's events keeps one too. Not thread-safe: one owner thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waymark/client_events.h"
#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

struct Row {
  std::string conv;
  std::string id;
  std::optional<Seq> seq;
  std::string from;                  // "" until the msg (or a history page) names the sender
  JsonText body;                     // "null" until known
  std::optional<RowState> state;     // none until a RowEvent (or history) gives one
  std::map<RowState, TimeMs> times;  // when this host saw the row enter each state (first time)
  std::optional<std::string> trace;
  std::optional<TimeMs> ts;          // the edge's receive time, once the msg arrived
  std::optional<TimeMs> cts;         // the sender's send time, once the msg arrived
  bool own = false;
  std::optional<Error> error;        // when failed, or the last retryable refusal while queued
  bool operator==(const Row&) const = default;
};

// The row state order of docs/protocol.md "Row states": queued < stored < sequenced <
// delivered < read. A row never moves backwards; failed is reached only from queued (a send
// that got no seq), and leaves only by retry (back to queued) or by its message being stored
// after all. True when `to` may follow `from`; a repeat of the same state is not a move.
bool row_state_may_follow(RowState from, RowState to);
// Whether a row now in `state` has gone through `step` on its way (a lifecycle view's "done"):
// read has passed sequenced; failed has passed only queued.
bool row_state_passed(RowState state, RowState step);
std::optional<RowState> row_state_from_string(std::string_view text);
// A row stored by a relaying edge whose seq has not arrived yet: not yet in the root's order
// (an own send acked without seq, or a provisional msg of hello.provisional). Its place in
// ordered() is after the sequenced rows until the msg with its seq moves it.
bool row_is_provisional(const Row& row);

class RowList {
 public:
  explicit RowList(std::string conv) : conv_(std::move(conv)) {}

  const std::string& conv() const { return conv_; }

  // Each returns the row as it is afterwards. REQUIRES: the event's conv is conv().
  // A RowEvent moves the state only forward (row_state_may_follow); a backward one still
  // fills what it carries but keeps the state.
  const Row& apply(const RowEvent& event);
  // The message itself: sender, body, seq, times of the edge and the sender.
  const Row& apply(const MessageEvent& event);
  // A message from a history page: fills the row like the msg does, and a row seen only in
  // history gets the state its message has reached at least: sequenced for an own message,
  // delivered for someone else's (it reached this client).
  const Row& add_history(const Msg& msg, bool own);

  // A row a host kept. restore() adds it only when the id is new (the session's events know
  // better); replace() overwrites (another tab's snapshot is the truth). Both return whether
  // the list changed. REQUIRES: row.conv is conv().
  bool restore(Row row);
  bool replace(Row row);

  const Row* find(std::string_view id) const;
  // The rows that have a state: by seq, then those without one (queued, failed, provisional)
  // in the order they appeared. A row keeps its id's one place: when its seq arrives it moves
  // from the tail into the seq order.
  std::vector<const Row*> ordered() const;
  std::size_t size() const { return rows_.size(); }

 private:
  struct Entry {
    Row row;
    std::uint64_t appeared = 0;
  };
  Entry& entry(const std::string& id);
  void fill_from_msg(Row& row, const Msg& msg);

  std::string conv_;
  std::map<std::string, Entry, std::less<>> rows_;
  std::uint64_t appearances_ = 0;
};

// A row as JSON, the shape waymark.js hands apps ({conv, id, seq?, from, body, state, times,
// trace, own, error?, ts?, cts?, provisional?}; times by state name; provisional: true when
// row_is_provisional), and back. row_from_json: nullopt when the text is not such an object
// (conv, id and a known state required); it ignores provisional (the state and seq say it).
std::string row_json(const Row& row);
std::optional<Row> row_from_json(std::string_view text);

// A RowEvent as JSON ({type:"row", conv, id, state, own, seq?, error?, trace?, at?, from?,
// cts?, body?}; the body as its JsonText), the form hosts pass it on in (waymark.js to other
// tabs), and back.
std::string row_event_json(const RowEvent& event);
std::optional<RowEvent> row_event_from_json(std::string_view text);

}  // namespace waymark
