// RowList: rows keyed by id, the state order, and their ordered listing; their JSON.
#include "waymark/row_list.h"

#include <algorithm>

#include "json_read.h"
#include "json_write.h"
#include "waymark/codec.h"

namespace waymark {
namespace {

// queued < stored < sequenced < delivered < read; failed sits beside queued.
int rank(RowState state) {
  switch (state) {
    case RowState::queued: return 0;
    case RowState::stored: return 1;
    case RowState::sequenced: return 2;
    case RowState::delivered: return 3;
    case RowState::read: return 4;
    case RowState::failed: return 0;
  }
  return 0;
}

// Times, seqs and counts as JSON numbers: integer literals (how row_json and JSON.stringify
// write them).
std::optional<std::int64_t> integer(const std::optional<JsonView>& value) {
  if (!value || !value->is_int64()) return std::nullopt;
  return value->get_int64();
}

std::optional<std::string> string_of(const std::optional<JsonView>& value) {
  if (!value || !value->is_string()) return std::nullopt;
  return value->get_string();
}

std::string error_object(const Error& error) {
  return JsonObject().str("code", to_string(error.code)).str("msg", error.message).done();
}

std::optional<Error> error_from(const std::optional<JsonView>& value) {
  if (!value || !value->is_object()) return std::nullopt;
  Error e;
  e.code = error_code_from_string(string_of(value->find("code")).value_or("")).value_or(ErrorCode::invalid);
  e.message = string_of(value->find("msg")).value_or("");
  return e;
}

}  // namespace

std::optional<RowState> row_state_from_string(std::string_view text) {
  for (RowState state : {RowState::queued, RowState::stored, RowState::sequenced,
                         RowState::delivered, RowState::read, RowState::failed})
    if (to_string(state) == text) return state;
  return std::nullopt;
}

bool row_state_passed(RowState state, RowState step) {
  if (state == step) return true;
  if (step == RowState::failed) return false;
  if (state == RowState::failed) return step == RowState::queued;
  return rank(state) >= rank(step);
}

bool row_is_provisional(const Row& row) {
  return !row.seq && row.state == RowState::stored;
}

bool row_state_may_follow(RowState from, RowState to) {
  if (from == to) return false;
  if (to == RowState::failed) return from == RowState::queued;
  if (from == RowState::failed) return true;  // retried (queued), or stored after all
  return rank(to) > rank(from);
}

RowList::Entry& RowList::entry(const std::string& id) {
  auto it = rows_.find(id);
  if (it == rows_.end()) {
    it = rows_.emplace(id, Entry{}).first;
    it->second.row.conv = conv_;
    it->second.row.id = id;
    it->second.appeared = appearances_++;
  }
  return it->second;
}

const Row& RowList::apply(const RowEvent& event) {
  Row& row = entry(event.id).row;
  if (!row.state || row_state_may_follow(*row.state, event.state)) {
    row.state = event.state;
    if (event.at) row.times.emplace(event.state, *event.at);  // the first time only
  }
  if (row.state == event.state) row.error = event.error;  // a backward event says nothing of it
  row.own = event.own;
  if (event.seq) row.seq = event.seq;
  if (event.body) row.body = *event.body;
  if (event.trace) row.trace = event.trace;
  if (event.from) row.from = *event.from;
  if (event.cts) row.cts = event.cts;
  return row;
}

void RowList::fill_from_msg(Row& row, const Msg& msg) {
  if (msg.seq) row.seq = msg.seq;
  row.from = msg.from;
  row.body = msg.body;
  row.ts = msg.ts;
  if (msg.cts) row.cts = msg.cts;
  if (msg.trace) row.trace = msg.trace;
}

const Row& RowList::apply(const MessageEvent& event) {
  Row& row = entry(event.msg.id).row;
  fill_from_msg(row, event.msg);
  row.own = event.own;
  return row;
}

const Row& RowList::add_history(const Msg& msg, bool own) {
  Row& row = entry(msg.id).row;
  fill_from_msg(row, msg);
  if (!row.state) {
    row.own = own;
    row.state = own ? RowState::sequenced : RowState::delivered;
  }
  return row;
}

bool RowList::restore(Row row) {
  if (rows_.count(row.id)) return false;
  Entry& e = entry(row.id);
  row.conv = conv_;
  e.row = std::move(row);
  return true;
}

bool RowList::replace(Row row) {
  row.conv = conv_;
  Entry& e = entry(row.id);
  if (e.row == row) return false;
  e.row = std::move(row);
  return true;
}

const Row* RowList::find(std::string_view id) const {
  auto it = rows_.find(id);
  return it == rows_.end() ? nullptr : &it->second.row;
}

std::vector<const Row*> RowList::ordered() const {
  std::vector<const Entry*> entries;
  entries.reserve(rows_.size());
  for (const auto& [id, e] : rows_)
    if (e.row.state) entries.push_back(&e);
  std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
    if (a->row.seq && b->row.seq) {
      if (*a->row.seq != *b->row.seq) return *a->row.seq < *b->row.seq;
    } else if (a->row.seq || b->row.seq) {
      return a->row.seq.has_value();  // sequenced rows first
    }
    return a->appeared < b->appeared;
  });
  std::vector<const Row*> out;
  out.reserve(entries.size());
  for (const Entry* e : entries) out.push_back(&e->row);
  return out;
}

std::string row_json(const Row& row) {
  JsonObject o(256 + row.body.text.size());
  o.str("conv", row.conv).str("id", row.id).str("from", row.from).boolean("own", row.own);
  if (row.seq) o.num("seq", *row.seq);
  if (row.state) o.str("state", to_string(*row.state));
  JsonObject times;
  for (const auto& [state, at] : row.times) times.num(to_string(state), at);
  o.raw("times", times.done());
  if (row.trace) o.str("trace", *row.trace);
  else o.null("trace");
  if (row.ts) o.num("ts", *row.ts);
  if (row.cts) o.num("cts", *row.cts);
  if (row.error) o.raw("error", error_object(*row.error));
  if (row_is_provisional(row)) o.boolean("provisional", true);
  return o.raw("body", row.body.text).done();  // as the sender wrote it
}

namespace {

// What a row and a row event share: a JSON object with a conv, an id and a known state.
struct RowHead {
  JsonView object;
  std::string conv, id;
  RowState state = RowState::queued;
};

std::optional<RowHead> read_row_head(std::string_view text) {
  JsonChecked checked = check_json(text, 64);
  if (checked.error || !checked.value.is_object()) return std::nullopt;
  RowHead head;
  head.object = checked.value;
  auto conv = string_of(head.object.find("conv"));
  auto id = string_of(head.object.find("id"));
  auto state_name = string_of(head.object.find("state"));
  std::optional<RowState> state = state_name ? row_state_from_string(*state_name) : std::nullopt;
  if (!conv || !id || !state) return std::nullopt;
  head.conv = std::move(*conv);
  head.id = std::move(*id);
  head.state = *state;
  return head;
}

}  // namespace

std::optional<Row> row_from_json(std::string_view text) {
  auto head = read_row_head(text);
  if (!head) return std::nullopt;
  const JsonView& o = head->object;
  Row row;
  row.conv = std::move(head->conv);
  row.id = std::move(head->id);
  row.state = head->state;
  if (auto seq = integer(o.find("seq")); seq && *seq >= 1) row.seq = static_cast<Seq>(*seq);
  row.from = string_of(o.find("from")).value_or("");
  // The body as written in `text`, not re-serialized.
  if (auto body = o.find("body")) row.body = JsonText{std::string(body->text())};
  if (auto times = o.find("times"); times && times->is_object()) {
    for (const JsonMember& member : times->members()) {
      auto s = row_state_from_string(member.key());
      auto ms = integer(member.value);
      if (s && ms) row.times[*s] = *ms;
    }
  }
  row.trace = string_of(o.find("trace"));
  row.ts = integer(o.find("ts"));
  row.cts = integer(o.find("cts"));
  if (auto own = o.find("own"); own && own->is_bool()) row.own = own->get_bool();
  row.error = error_from(o.find("error"));
  return row;
}

std::string row_event_json(const RowEvent& e) {
  JsonObject o(192 + (e.body ? e.body->text.size() : 0));
  o.str("type", "row").str("conv", e.conv).str("id", e.id).str("state", to_string(e.state));
  o.boolean("own", e.own);
  if (e.seq) o.num("seq", *e.seq);
  if (e.error) o.raw("error", error_object(*e.error));
  if (e.trace) o.str("trace", *e.trace);
  if (e.at) o.num("at", *e.at);
  if (e.from) o.str("from", *e.from);
  if (e.cts) o.num("cts", *e.cts);
  if (e.body) o.raw("body", e.body->text);
  return o.done();
}

std::optional<RowEvent> row_event_from_json(std::string_view text) {
  auto head = read_row_head(text);
  if (!head || string_of(head->object.find("type")) != "row") return std::nullopt;
  const JsonView& o = head->object;
  RowEvent e;
  e.conv = std::move(head->conv);
  e.id = std::move(head->id);
  e.state = head->state;
  if (auto own = o.find("own"); own && own->is_bool()) e.own = own->get_bool();
  if (auto seq = integer(o.find("seq")); seq && *seq >= 1) e.seq = static_cast<Seq>(*seq);
  e.error = error_from(o.find("error"));
  e.trace = string_of(o.find("trace"));
  e.at = integer(o.find("at"));
  e.from = string_of(o.find("from"));
  e.cts = integer(o.find("cts"));
  if (auto body = o.find("body")) e.body = JsonText{std::string(body->text())};
  return e;
}

}  // namespace waymark
