// ClientSession: connection life cycle, outbox, cursors and gap filling, receipts, typing,
// presence, and the durable state a host persists.
#include "waymark/client_session.h"

#include <algorithm>

#include "json_read.h"
#include "json_write.h"
#include "waymark/close_codes.h"
#include "waymark/backoff.h"
#include "waymark/codec.h"
#include "overloaded.h"


namespace waymark {
namespace {

constexpr std::size_t kUnlimitedIncoming = static_cast<std::size_t>(-1);

void take_min(std::optional<TimeMs>& deadline, TimeMs candidate) {
  if (!deadline || candidate < *deadline) deadline = candidate;
}

}  // namespace

std::string_view to_string(RowState state) {
  switch (state) {
    case RowState::queued: return "queued";
    case RowState::stored: return "stored";
    case RowState::sequenced: return "sequenced";
    case RowState::delivered: return "delivered";
    case RowState::read: return "read";
    case RowState::failed: return "failed";
  }
  return "queued";
}

std::string_view to_string(ConnectionState state) {
  switch (state) {
    case ConnectionState::connecting: return "connecting";
    case ConnectionState::online: return "online";
    case ConnectionState::offline: return "offline";
  }
  return "offline";
}

ClientSession::ClientSession(ClientConfig config, std::string token,
                             std::optional<std::string> device, RandomSource& random)
    : config_(config),
      token_(std::move(token)),
      device_(std::move(device)),
      random_(random),
      heartbeat_ms_(config.default_heartbeat_ms),
      max_frame_(config.default_max_frame) {}

// ---- outputs ------------------------------------------------------------------------------

std::vector<IoAction> ClientSession::take_io() {
  std::vector<IoAction> out;
  out.swap(io_);
  return out;
}

std::vector<ClientEvent> ClientSession::take_events() {
  if (state_changed_) {
    events_.emplace_back(StateChangedEvent{});
    state_changed_ = false;
  }
  std::vector<ClientEvent> out;
  out.swap(events_);
  return out;
}

std::optional<TimeMs> ClientSession::next_deadline() const {
  std::optional<TimeMs> deadline;
  switch (phase_) {
    case Phase::offline: take_min(deadline, next_connect_at_); break;
    case Phase::connecting:
    case Phase::handshaking: take_min(deadline, phase_since_ + config_.handshake_timeout_ms); break;
    case Phase::online:
      take_min(deadline, last_heard_ + 2 * heartbeat_ms_);
      take_min(deadline, last_ping_ + heartbeat_ms_);
      if (retry_wakeup_) take_min(deadline, *retry_wakeup_);
      for (const auto& [conv, c] : conversations_)
        if (c.gap_rid) take_min(deadline, c.gap_sent_at + config_.request_timeout_ms);
      for (const auto& [rid, request] : history_requests_)
        take_min(deadline, request.sent_at + config_.request_timeout_ms);
      break;
    case Phase::idle:
    case Phase::stopped:
      if (token_retry_at_) take_min(deadline, *token_retry_at_);
      break;
  }
  for (const auto& [conv, c] : conversations_)
    for (const auto& [user, expiry] : c.typing) take_min(deadline, expiry);
  return deadline;
}

ConnectionState ClientSession::connection_state() const {
  switch (phase_) {
    case Phase::connecting:
    case Phase::handshaking: return ConnectionState::connecting;
    case Phase::online: return ConnectionState::online;
    default: return ConnectionState::offline;
  }
}

std::optional<Seq> ClientSession::cursor(const std::string& conv) const {
  auto it = conversations_.find(conv);
  return it == conversations_.end() ? std::nullopt : it->second.cursor;
}

std::uint64_t ClientSession::unread(const std::string& conv) const {
  auto it = conversations_.find(conv);
  return it == conversations_.end() ? 0 : it->second.unread.size();
}

std::vector<std::string> ClientSession::present(const std::string& conv) const {
  auto it = conversations_.find(conv);
  if (it == conversations_.end()) return {};
  return {it->second.present.begin(), it->second.present.end()};
}

void ClientSession::emit(ClientEvent event) {
  // A relay link's rows are other users' sends, which their own sessions track; its host needs
  // only the failed ones (the relay's dead letters), not three events per relayed message.
  if (config_.relay)
    if (const auto* row = std::get_if<RowEvent>(&event); row && row->state != RowState::failed) return;
  events_.push_back(std::move(event));
}

void ClientSession::emit_row(const std::string& conv, const std::string& id, RowState state,
                             std::optional<Seq> seq, bool own, TimeMs now) {
  RowEvent row;
  row.conv = conv;
  row.id = id;
  row.state = state;
  row.seq = seq;
  row.own = own;
  row.at = now;
  emit(std::move(row));
}

std::string ClientSession::next_rid() { return "c" + std::to_string(++rid_counter_); }

TimeMs ClientSession::full_jitter_backoff(TimeMs base, TimeMs cap, std::uint32_t attempt) {
  return backoff_delay(Backoff{base, cap, Jitter::full}, attempt, random_);
}

// ---- life cycle ---------------------------------------------------------------------------

void ClientSession::start(TimeMs now) {
  if (phase_ == Phase::idle || phase_ == Phase::stopped || phase_ == Phase::offline)
    begin_connect(now);
}

void ClientSession::close(TimeMs now) {
  if (connection_) io_.emplace_back(CloseSocket{connection_, close_code::normal});
  bool was_stopped = phase_ == Phase::stopped;
  phase_ = Phase::stopped;  // first, so connection_lost neither schedules nor announces a retry
  connection_lost(now, "closed by app", false, close_code::normal);
  if (!was_stopped) emit(ConnectionEvent{ConnectionState::offline, std::nullopt, "closed by app"});
}

void ClientSession::connect_now(TimeMs now) {
  if (token_refused_ && token_refresh_) {
    // The same token would be refused again: ask for a new one now instead of at the backoff.
    if (!token_wanted_) want_token(now);
    return;
  }
  if (phase_ == Phase::offline || phase_ == Phase::stopped || phase_ == Phase::idle) {
    failed_attempts_ = 0;
    bye_window_.reset();
    begin_connect(now);
  }
}

void ClientSession::set_token(std::string token) {
  token_ = std::move(token);
  token_refused_ = false;
  token_wanted_ = false;
  token_retry_at_.reset();
}

void ClientSession::wake(TimeMs now) {
  if (token_refused_ && !token_refresh_) return;  // only the app's own connect_now retries it
  connect_now(now);
}

void ClientSession::want_token(TimeMs now) {
  (void)now;
  token_wanted_ = true;
  token_retry_at_.reset();
  ++token_attempts_;
  emit(TokenWantedEvent{});
}

bool ClientSession::token_fetched(std::string token, TimeMs now) {
  if (token.empty() || (token_refused_ && token == token_)) return false;
  set_token(std::move(token));
  failed_attempts_ = 0;
  bye_window_.reset();
  if (phase_ != Phase::connecting && phase_ != Phase::handshaking && phase_ != Phase::online)
    begin_connect(now);
  return true;
}

void ClientSession::token_fetch_failed(TimeMs now, const std::string& reason) {
  if (!token_refused_) return;  // a token arrived meanwhile (set_token): nothing to retry
  token_wanted_ = false;
  // token_attempts_ >= 1 here: the n-th retry waits backoff(n - 1), at least half of 1 s.
  Backoff backoff{config_.token_retry_base_ms, config_.token_retry_cap_ms, Jitter::equal};
  token_retry_at_ = now + backoff_delay(backoff, token_attempts_ - 1, random_);
  emit(ConnectionEvent{ConnectionState::offline, token_retry_at_, "unauthorized: " + reason, true});
}

bool ClientSession::is_current(ConnectionId connection) const {
  return connection != 0 && connection == connection_;
}

void ClientSession::set_connection(ConnectionId connection) {
  connection_ = connection;
  in_flight_ = 0;  // sent_on names an earlier connection (or none) for every entry
}

void ClientSession::forget_in_flight(const OutboxEntry& entry) {
  if (connection_ != 0 && entry.sent_on == connection_) --in_flight_;
}

void ClientSession::begin_connect(TimeMs now) {
  set_connection(++last_connection_);
  phase_ = Phase::connecting;
  phase_since_ = now;
  io_.emplace_back(OpenSocket{connection_});
  emit(ConnectionEvent{ConnectionState::connecting, std::nullopt, {}});
}

void ClientSession::connection_lost(TimeMs now, std::string reason, bool ask_close, int code) {
  if (ask_close && connection_) io_.emplace_back(CloseSocket{connection_, code});
  bool was_online = phase_ == Phase::online;
  if (was_online && now - phase_since_ >= config_.healthy_after_ms) failed_attempts_ = 0;
  set_connection(0);
  retry_wakeup_.reset();
  for (auto& entry : outbox_) entry.sent_on = 0;
  for (auto& [conv, c] : conversations_) {
    c.requested = false;
    c.gap_rid.reset();
    for (const auto& [user, expiry] : c.typing) emit(TypingEvent{conv, user, false});
    c.typing.clear();
    // A relay link's presence is what it passes down to its node's users: stale once the
    // link is gone (the next subd says who is there again).
    if (config_.relay) {
      for (const auto& user : c.present) emit(PresenceEvent{conv, user, false});
      c.present.clear();
    }
  }
  for (auto& [rid, request] : history_requests_)
    emit(HistoryEvent{rid, request.conv, {}, false,
                      make_error(ErrorCode::unavailable, "connection lost")});
  history_requests_.clear();
  if (phase_ == Phase::stopped || phase_ == Phase::idle) return;
  schedule_reconnect(now, std::move(reason));
}

void ClientSession::schedule_reconnect(TimeMs now, std::string reason) {
  TimeMs delay;
  if (bye_window_) {
    auto [low, high] = *bye_window_;
    delay = low + static_cast<TimeMs>(random_.next_u64() % static_cast<std::uint64_t>(high - low + 1));
    bye_window_.reset();
  } else {
    delay = full_jitter_backoff(config_.reconnect_base_ms, config_.reconnect_cap_ms, failed_attempts_);
  }
  ++failed_attempts_;
  next_connect_at_ = now + delay;
  phase_ = Phase::offline;
  phase_since_ = now;
  emit(ConnectionEvent{ConnectionState::offline, next_connect_at_, std::move(reason)});
}

void ClientSession::stop_unauthorized(TimeMs now, const std::string& detail) {
  // The same token will not do better: stop until the host sets a token and reconnects.
  // Stopped first, so connection_lost neither schedules nor announces a retry.
  phase_ = Phase::stopped;
  bye_window_.reset();
  connection_lost(now, "unauthorized", true, close_code::normal);
  token_refused_ = true;
  token_wanted_ = false;
  token_retry_at_.reset();
  if (token_refresh_ && token_attempts_ > 0) {
    // A token fetched since the session was last online was refused too: wait before asking.
    Backoff backoff{config_.token_retry_base_ms, config_.token_retry_cap_ms, Jitter::equal};
    token_retry_at_ = now + backoff_delay(backoff, token_attempts_ - 1, random_);
  }
  emit(ConnectionEvent{ConnectionState::offline, token_retry_at_, "unauthorized: " + detail, true});
  if (token_refresh_ && !token_retry_at_) want_token(now);
}

void ClientSession::write(const Frame& frame) {
  if (connection_) io_.emplace_back(WriteFrame{connection_, serialize(frame)});
}

// ---- transport events ---------------------------------------------------------------------

void ClientSession::on_open(ConnectionId connection, TimeMs now) {
  if (!is_current(connection) || phase_ != Phase::connecting) return;
  phase_ = Phase::handshaking;  // phase_since_ stays at OpenSocket: the limit counts from there
  last_heard_ = now;
  Hello hello;
  hello.token = token_;
  hello.device = device_;
  hello.provisional = config_.provisional && !config_.relay;
  hello.relay = config_.relay;
  for (auto& [conv, c] : conversations_) {
    if (!c.wanted) continue;
    hello.subs.push_back(SubRequest{conv, c.cursor, std::nullopt});
    c.requested = true;
  }
  write(hello);
}

void ClientSession::on_close(ConnectionId connection, TimeMs now, std::optional<int> close_code) {
  if (!is_current(connection)) return;
  if (close_code == close_code::unauthorized) {
    // The err or bye that should precede a 4001 did not arrive (the edge closed before
    // writing it): the close code alone says the token was refused.
    set_connection(0);  // already closed: nothing to ask the host to close
    stop_unauthorized(now, "closed 4001");
    return;
  }
  connection_lost(now, "closed", false, close_code::normal);
}

void ClientSession::on_frame(ConnectionId connection, std::string_view text, TimeMs now) {
  if (!is_current(connection)) return;
  if (phase_ != Phase::handshaking && phase_ != Phase::online) return;
  last_heard_ = now;
  auto parsed = parse_frame(text, Direction::from_edge, ParseLimits{kUnlimitedIncoming});
  if (!parsed.ok()) {
    emit(ErrorEvent{parsed.error(), std::nullopt});  // the edge broke the protocol: report, skip
    return;
  }
  std::visit(Overloaded{
                 [&](const Welcome& f) { handle(f, now); },
                 [&](const Msg& f) { handle(f, now); },
                 [&](const Subd& f) { handle(f, now); },
                 [&](const Page& f) { handle(f, now); },
                 [&](const Ack& f) { handle(f, now); },
                 [&](const Nack& f) { handle(f, now); },
                 [&](const Rcpt& f) { handle(f, now); },
                 [&](const Typing& f) { handle(f, now); },
                 [&](const Presence& f) { handle(f, now); },
                 [&](const Bye& f) { handle(f, now); },
                 [&](const Err& f) { handle(f, now); },
                 [&](const auto&) {},  // pong: hearing it is all that matters
             },
             parsed.value());
  if (phase_ == Phase::online) {
    flush_delivered_receipts();
    pump_outbox(now);
  }
}

void ClientSession::on_timer(TimeMs now) {
  switch (phase_) {
    case Phase::offline:
      if (now >= next_connect_at_) begin_connect(now);
      break;
    case Phase::connecting:
    case Phase::handshaking:
      if (now - phase_since_ >= config_.handshake_timeout_ms)
        connection_lost(now, "handshake timeout", true, close_code::normal);
      break;
    case Phase::online:
      if (now - last_heard_ >= 2 * heartbeat_ms_) {
        connection_lost(now, "dead", true, close_code::normal);
        break;
      }
      if (now - last_ping_ >= heartbeat_ms_) {
        write(Ping{now, std::nullopt});
        last_ping_ = now;
      }
      for (auto& [conv, c] : conversations_)
        if (c.gap_rid && now - c.gap_sent_at >= config_.request_timeout_ms) {
          c.gap_rid.reset();
          request_gap_fill(conv, c, now);
        }
      for (auto it = history_requests_.begin(); it != history_requests_.end();) {
        if (now - it->second.sent_at >= config_.request_timeout_ms) {
          emit(HistoryEvent{it->first, it->second.conv, {}, false,
                            make_error(ErrorCode::unavailable, "history request timed out")});
          it = history_requests_.erase(it);
        } else {
          ++it;
        }
      }
      pump_outbox(now);
      break;
    case Phase::idle:
    case Phase::stopped:
      if (token_retry_at_ && now >= *token_retry_at_) want_token(now);
      break;
  }
  for (auto& [conv, c] : conversations_) {
    for (auto it = c.typing.begin(); it != c.typing.end();) {
      if (it->second <= now) {
        emit(TypingEvent{conv, it->first, false});
        it = c.typing.erase(it);
      } else {
        ++it;
      }
    }
  }
}

// ---- incoming frames ----------------------------------------------------------------------

void ClientSession::handle(const Welcome& frame, TimeMs now) {
  if (phase_ != Phase::handshaking) return;  // a repeated welcome changes nothing
  phase_ = Phase::online;
  phase_since_ = now;
  last_ping_ = now;
  user_ = frame.user;
  heartbeat_ms_ = std::max<TimeMs>(frame.hb, 1);
  max_frame_ = static_cast<std::size_t>(std::max<std::int64_t>(frame.max_frame, 1));
  token_attempts_ = 0;  // the token works: a later refusal asks for a new one at once
  ConnectionEvent online{ConnectionState::online, std::nullopt, {}};
  online.path = frame.path;
  emit(std::move(online));
  // Subscriptions made after the hello went out are sent now.
  for (auto& [conv, c] : conversations_)
    if (c.wanted && !c.requested) send_sub(conv, c);
  for (const auto& [key, seq] : relayed_receipts_) {
    const auto& [conv, user, kind] = key;
    write(Rcpt{conv, seq, kind, std::nullopt, std::nullopt, user});
  }
  for (const auto& [conv, user] : relayed_presence_) write(Presence{conv, {}, true, user});
}

void ClientSession::handle(const Msg& frame, TimeMs now) { accept_msg(frame, now); }

void ClientSession::accept_msg(Msg msg, TimeMs now) {
  if (!msg.seq) {  // a relaying edge's provisional copy: show it once as stored
    bool first = provisional_seen_.insert({msg.conv, msg.id}).second;
    // Our own send whose ack was lost: the relay fans out only what it committed, so this
    // answers it as an ack without seq would (else a later nack of a resend or a reload
    // would show the stored row as queued again).
    if (msg.from == user_ && outbox_keys_.count({msg.conv, msg.id})) {
      resolve_sent(msg.conv, msg.id, std::nullopt, now);
      return;
    }
    if (!first) return;
    auto conv = conversations_.find(msg.conv);
    if (conv == conversations_.end() || !conv->second.wanted) {
      provisional_seen_.erase({msg.conv, msg.id});  // not shown: a later copy may be
      return;
    }
    // Someone else's message (or this user's from another device): the row appears stored,
    // with what a UI shows of it, until the sequenced msg with the same id puts it in place.
    RowEvent row;
    row.conv = msg.conv;
    row.id = msg.id;
    row.state = RowState::stored;
    row.own = msg.from == user_;
    row.body = std::move(msg.body);
    row.trace = std::move(msg.trace);
    row.at = now;
    row.from = std::move(msg.from);
    row.cts = msg.cts;
    emit(std::move(row));
    return;
  }
  auto it = conversations_.find(msg.conv);
  if (it == conversations_.end() || !it->second.wanted) return;
  Conversation& c = it->second;
  Seq seq = *msg.seq;
  c.known_head = std::max(c.known_head, seq);
  resolve_sent(msg.conv, msg.id, seq, now);  // the msg answers a send whose ack was lost
  if (!c.cursor || seq <= *c.cursor) return;  // not synced yet, or already delivered
  if (seq != *c.cursor + 1) {
    c.pending.emplace(seq, std::move(msg));
    request_gap_fill(it->first, c, now);
    return;
  }
  deliver(c, std::move(msg), now);
  while (!c.pending.empty() && c.pending.begin()->first <= *c.cursor + 1) {
    auto next = c.pending.extract(c.pending.begin());
    if (next.key() == *c.cursor + 1) deliver(c, std::move(next.mapped()), now);
  }
}

void ClientSession::deliver(Conversation& c, Msg msg, TimeMs now) {
  Seq seq = *msg.seq;
  c.cursor = seq;
  bool own = msg.from == user_;
  std::string conv = msg.conv, id = msg.id;
  provisional_seen_.erase({conv, id});  // sequenced now: its provisional copy is done with
  emit(MessageEvent{std::move(msg), own});
  emit(CursorEvent{conv, seq});
  mark_state_changed();
  if (config_.relay) return;  // a relay link keeps no rows or unread counts
  if (own) {
    // Rows acked on this session already said "sequenced"; own messages from the user's
    // other devices appear here first.
    if (!c.acked_undelivered.erase(seq)) {
      emit_row(conv, id, RowState::sequenced, seq, true, now);
      track_own_row(c, seq, id);
      apply_others_receipt(conv, c, now);
    }
  } else {
    emit_row(conv, id, RowState::delivered, seq, false, now);
    if (seq > c.read_cursor) {
      c.unread.emplace(seq, id);
      emit(UnreadEvent{conv, c.unread.size()});
    } else {
      emit_row(conv, id, RowState::read, seq, false, now);
    }
  }
}

void ClientSession::request_gap_fill(const std::string& conv, Conversation& c, TimeMs now) {
  if (phase_ != Phase::online || c.gap_rid || !c.cursor || c.requested) return;
  Seq target = c.pending.empty() ? c.known_head : c.pending.begin()->first - 1;
  if (target <= *c.cursor) return;
  Hist hist;
  hist.conv = conv;
  hist.after = *c.cursor;
  hist.limit = static_cast<std::uint32_t>(
      std::min<Seq>(target - *c.cursor, config_.gap_fill_limit));
  hist.rid = next_rid();
  c.gap_rid = hist.rid;
  c.gap_sent_at = now;
  write(hist);
}

void ClientSession::handle(const Subd& frame, TimeMs now) {
  auto it = conversations_.find(frame.conv);
  if (it == conversations_.end() || !it->second.wanted) return;
  Conversation& c = it->second;
  c.requested = false;
  c.known_head = std::max(c.known_head, frame.head);
  if (config_.relay) emit(HeadEvent{frame.conv, frame.head});
  if (!c.cursor) {  // subscribed live from the head
    c.cursor = frame.head;
    // This device never received what lies below the head: no delivered receipt for it, and
    // no own seq below it awaits delivery.
    c.delivered_sent = std::max(c.delivered_sent, frame.head);
    c.acked_undelivered.erase(c.acked_undelivered.begin(), c.acked_undelivered.upper_bound(frame.head));
    emit(CursorEvent{frame.conv, frame.head});
    mark_state_changed();
  }
  set_read_cursor(frame.conv, c, frame.read, now);
  if (c.read_cursor > frame.read) {  // a read marked while offline: tell the edge now
    write(Rcpt{frame.conv, c.read_cursor, ReceiptKind::read, std::nullopt, std::nullopt});
  }
  std::set<std::string> present(frame.present.begin(), frame.present.end());
  for (const auto& user : c.present)
    if (!present.count(user)) emit(PresenceEvent{frame.conv, user, false});
  for (const auto& user : present)
    if (!c.present.count(user)) emit(PresenceEvent{frame.conv, user, true});
  c.present = std::move(present);
  if (frame.more) {
    send_sub(frame.conv, c);
  } else {
    request_gap_fill(frame.conv, c, now);
  }
}

void ClientSession::handle(const Page& frame, TimeMs now) {
  if (!frame.rid) return;
  if (auto request = history_requests_.find(*frame.rid); request != history_requests_.end()) {
    history_requests_.erase(request);
    emit(HistoryEvent{*frame.rid, frame.conv, frame.msgs, frame.more, std::nullopt});
    // Own messages of the page are own rows now (RowList joins them as sequenced): others'
    // receipts raise them as they raise the rows this session acked or delivered.
    auto conversation = conversations_.find(frame.conv);
    if (conversation == conversations_.end()) return;
    Conversation& c = conversation->second;
    // One already covered by others' read cursor is read (and may have been told so before:
    // a repeat, never a step back to delivered); the rest wait for receipts.
    bool tracked = false;
    for (const Msg& msg : frame.msgs) {
      if (!msg.seq || msg.from != user_ || c.own_rows.count(*msg.seq)) continue;
      if (*msg.seq <= c.others_read) {
        emit_row(frame.conv, msg.id, RowState::read, msg.seq, true, now);
        continue;
      }
      track_own_row(c, *msg.seq, msg.id);
      tracked = true;
    }
    if (tracked) apply_others_receipt(frame.conv, c, now);
    return;
  }
  auto it = conversations_.find(frame.conv);
  if (it == conversations_.end() || it->second.gap_rid != frame.rid) return;
  Conversation& c = it->second;
  c.gap_rid.reset();
  Seq before = c.cursor.value_or(0);
  for (const Msg& msg : frame.msgs) accept_msg(msg, now);
  if (c.cursor.value_or(0) == before && frame.msgs.empty()) {
    // The edge has nothing there: drop what was held; the next live msg reopens the gap
    // and asks again, and a reconnect resubscribes from the cursor.
    c.pending.clear();
    return;
  }
  request_gap_fill(frame.conv, c, now);
}

void ClientSession::handle(const Ack& frame, TimeMs now) {
  resolve_sent(frame.conv, frame.id, frame.seq, now);
}

void ClientSession::handle(const Nack& frame, TimeMs now) {
  auto entry = find_outbox(frame.conv, frame.id);
  if (entry == outbox_.end() || entry->failed) return;
  forget_in_flight(*entry);
  entry->sent_on = 0;
  Error error{frame.code, frame.msg};
  if (frame.retry) {
    entry->not_before = now + full_jitter_backoff(config_.send_retry_base_ms,
                                                  config_.send_retry_cap_ms, entry->attempts);
    ++entry->attempts;
    RowEvent row;
    row.conv = entry->conv;
    row.id = entry->id;
    row.state = RowState::queued;
    row.own = true;
    row.error = error;
    row.at = now;
    emit(std::move(row));
  } else {
    entry->failed = true;
    entry->error = error;
    RowEvent row;
    row.conv = entry->conv;
    row.id = entry->id;
    row.state = RowState::failed;
    row.own = true;
    row.error = error;
    row.at = now;
    emit(std::move(row));
    mark_state_changed();
    if (config_.relay) {  // the relay's dead letter now (drop_failed_relayed, for one entry)
      outbox_keys_.erase({entry->conv, entry->id});
      outbox_.erase(entry);
    }
  }
}

// A relay link's failed send is the relay's dead letter from here on (its host stores it
// from the failed row): the link keeps no failed entries, which nobody would ever retry.
void ClientSession::drop_failed_relayed() {
  if (!config_.relay) return;
  outbox_.erase(std::remove_if(outbox_.begin(), outbox_.end(),
                               [&](const OutboxEntry& entry) {
                                 if (entry.failed) outbox_keys_.erase({entry.conv, entry.id});
                                 return entry.failed;
                               }),
                outbox_.end());
}

void ClientSession::handle(const Rcpt& frame, TimeMs now) {
  if (!relayed_receipts_.empty() && frame.user) {  // the root has it: stop passing it on
    for (ReceiptKind kind : {ReceiptKind::delivered, ReceiptKind::read}) {
      if (kind == ReceiptKind::read && frame.kind != ReceiptKind::read) continue;
      auto pending = relayed_receipts_.find({frame.conv, *frame.user, kind});
      if (pending != relayed_receipts_.end() && pending->second <= frame.seq)
        relayed_receipts_.erase(pending);
    }
  }
  auto it = conversations_.find(frame.conv);
  if (it == conversations_.end() || !it->second.wanted || !frame.user) return;
  if (config_.relay) {
    emit(ReceiptEvent{frame.conv, *frame.user, frame.seq, frame.kind});
    return;
  }
  Conversation& c = it->second;
  emit(ReceiptEvent{frame.conv, *frame.user, frame.seq, frame.kind});
  if (*frame.user == user_) {
    if (frame.kind == ReceiptKind::read) set_read_cursor(frame.conv, c, frame.seq, now);
    return;
  }
  // Kept in the durable state: after a reload, a row once shown read stays read.
  if (frame.seq > c.others_delivered ||
      (frame.kind == ReceiptKind::read && frame.seq > c.others_read))
    mark_state_changed();
  c.others_delivered = std::max(c.others_delivered, frame.seq);
  if (frame.kind == ReceiptKind::read) c.others_read = std::max(c.others_read, frame.seq);
  apply_others_receipt(frame.conv, c, now);
}

void ClientSession::handle(const Typing& frame, TimeMs now) {
  auto it = conversations_.find(frame.conv);
  if (it == conversations_.end() || !it->second.wanted || !frame.user || *frame.user == user_)
    return;
  Conversation& c = it->second;
  if (frame.on) {
    bool was_on = c.typing.count(*frame.user) > 0;
    c.typing[*frame.user] = now + config_.typing_expiry_ms;
    if (!was_on) emit(TypingEvent{frame.conv, *frame.user, true});
  } else if (c.typing.erase(*frame.user)) {
    emit(TypingEvent{frame.conv, *frame.user, false});
  }
}

void ClientSession::handle(const Presence& frame, TimeMs) {
  auto it = conversations_.find(frame.conv);
  if (it == conversations_.end() || !it->second.wanted) return;
  Conversation& c = it->second;
  bool changed = frame.on ? c.present.insert(frame.user).second : c.present.erase(frame.user) > 0;
  if (changed) emit(PresenceEvent{frame.conv, frame.user, frame.on});
}

void ClientSession::handle(const Bye& frame, TimeMs now) {
  if (frame.reason == bye_reason::token_expired) {
    // The edge ends the session at the token's exp. Its retry window does not apply: the same
    // token would only be refused, so this waits for a new one like err unauthorized does.
    stop_unauthorized(now, "token expired");
    return;
  }
  bye_window_ = std::make_pair(frame.retry_min_ms, frame.retry_max_ms);
  connection_lost(now, "bye:" + frame.reason, true, close_code::normal);
}

void ClientSession::handle(const Err& frame, TimeMs now) {
  if (frame.rid) {
    if (auto request = history_requests_.find(*frame.rid); request != history_requests_.end()) {
      emit(HistoryEvent{*frame.rid, request->second.conv, {}, false, Error{frame.code, frame.msg}});
      history_requests_.erase(request);
      return;
    }
    for (auto& [conv, c] : conversations_)
      if (c.gap_rid == frame.rid) c.gap_rid.reset();  // retried after request_timeout
  }
  if (frame.code == ErrorCode::unauthorized) {
    stop_unauthorized(now, frame.msg);
    return;
  }
  emit(ErrorEvent{Error{frame.code, frame.msg}, frame.rid});
}

// ---- conversations ------------------------------------------------------------------------

void ClientSession::subscribe(const std::string& conv, std::optional<Seq> after, TimeMs now) {
  if (!is_valid_conv(conv)) {
    emit(ErrorEvent{make_error(ErrorCode::invalid, "conv: " + std::string(kConvRule)), std::nullopt});
    return;
  }
  Conversation& c = conversation(conv);
  if (c.wanted) return;
  c.wanted = true;
  if (!c.cursor && after) c.cursor = after;  // the stored cursor wins over `after`
  mark_state_changed();
  if (phase_ == Phase::online) send_sub(conv, c);
  (void)now;
}

void ClientSession::send_sub(const std::string& conv, Conversation& c) {
  write(Sub{SubRequest{conv, c.cursor, std::nullopt}, std::nullopt});
  c.requested = true;
}

void ClientSession::unsubscribe(const std::string& conv, TimeMs now) {
  auto it = conversations_.find(conv);
  if (it == conversations_.end() || !it->second.wanted) return;
  Conversation& c = it->second;
  c.wanted = false;
  c.requested = false;
  c.pending.clear();
  c.gap_rid.reset();
  for (const auto& user : c.present) emit(PresenceEvent{conv, user, false});
  c.present.clear();
  for (const auto& [user, expiry] : c.typing) emit(TypingEvent{conv, user, false});
  c.typing.clear();
  mark_state_changed();
  if (phase_ == Phase::online) write(Unsub{conv, std::nullopt});
  (void)now;
}

void ClientSession::mark_read(const std::string& conv, Seq seq, TimeMs now) {
  auto it = conversations_.find(conv);
  if (it == conversations_.end() || !it->second.cursor) return;
  Conversation& c = it->second;
  seq = std::min(seq, *c.cursor);  // nobody reads what has not arrived
  if (seq <= c.read_cursor) return;
  set_read_cursor(conv, c, seq, now);
  if (phase_ == Phase::online)
    write(Rcpt{conv, seq, ReceiptKind::read, std::nullopt, std::nullopt});
}

void ClientSession::set_read_cursor(const std::string& conv, Conversation& c, Seq seq, TimeMs now) {
  if (seq <= c.read_cursor) return;
  c.read_cursor = seq;
  mark_state_changed();
  bool changed = false;
  while (!c.unread.empty() && c.unread.begin()->first <= seq) {
    emit_row(conv, c.unread.begin()->second, RowState::read, c.unread.begin()->first, false, now);
    c.unread.erase(c.unread.begin());
    changed = true;
  }
  if (changed) emit(UnreadEvent{conv, c.unread.size()});
}

void ClientSession::pass_receipt(const std::string& conv, const std::string& user,
                                 ReceiptKind kind, Seq seq) {
  auto key = std::make_tuple(conv, user, kind);
  auto it = relayed_receipts_.find(key);
  if (it != relayed_receipts_.end() && it->second >= seq) return;
  if (it == relayed_receipts_.end() && relayed_receipts_.size() >= config_.max_relayed_receipts)
    relayed_receipts_.erase(relayed_receipts_.begin());  // bounded; the newest matter most
  relayed_receipts_[key] = seq;
  if (phase_ == Phase::online) write(Rcpt{conv, seq, kind, std::nullopt, std::nullopt, user});
}

void ClientSession::pass_typing(const std::string& conv, const std::string& user, bool on) {
  if (phase_ == Phase::online) write(Typing{conv, on, std::nullopt, std::nullopt, user});
}

void ClientSession::pass_presence(const std::string& conv, const std::string& user, bool on) {
  bool changed = on ? relayed_presence_.insert({conv, user}).second
                    : relayed_presence_.erase({conv, user}) > 0;
  if (changed && phase_ == Phase::online) write(Presence{conv, {}, on, user});
}

void ClientSession::rewind(const std::string& conv, Seq after, TimeMs) {
  auto it = conversations_.find(conv);
  if (it == conversations_.end() || !it->second.wanted) return;
  Conversation& c = it->second;
  c.cursor = after;
  c.pending.clear();
  c.gap_rid.reset();
  if (phase_ == Phase::online) send_sub(conv, c);
}

void ClientSession::set_typing(const std::string& conv, bool on, TimeMs) {
  if (phase_ == Phase::online && is_valid_conv(conv))
    write(Typing{conv, on, std::nullopt, std::nullopt});
}

std::string ClientSession::request_history(const std::string& conv, std::optional<Seq> before,
                                           std::optional<Seq> after, std::uint32_t limit,
                                           TimeMs now) {
  std::string rid = next_rid();
  if (!is_valid_conv(conv) || phase_ != Phase::online) {
    emit(HistoryEvent{rid, conv, {}, false,
                      make_error(phase_ != Phase::online ? ErrorCode::unavailable : ErrorCode::invalid,
                                 phase_ != Phase::online ? "offline" : "conv: " + std::string(kConvRule))});
    return rid;
  }
  Hist hist;
  hist.conv = conv;
  hist.before = before;
  if (!before) hist.after = after;
  if (limit) hist.limit = limit;
  hist.rid = rid;
  history_requests_[rid] = HistoryRequest{conv, now};
  write(hist);
  return rid;
}

void ClientSession::flush_delivered_receipts() {
  if (!config_.send_delivered_receipts) return;
  for (auto& [conv, c] : conversations_) {
    if (!c.wanted || !c.cursor || *c.cursor <= c.delivered_sent) continue;
    c.delivered_sent = *c.cursor;
    write(Rcpt{conv, *c.cursor, ReceiptKind::delivered, std::nullopt, std::nullopt});
  }
}

void ClientSession::track_own_row(Conversation& c, Seq seq, const std::string& id) {
  c.own_rows[seq] = OwnRow{id, RowState::sequenced};
  while (c.own_rows.size() > config_.max_tracked_own_rows) c.own_rows.erase(c.own_rows.begin());
}

void ClientSession::apply_others_receipt(const std::string& conv, Conversation& c, TimeMs now) {
  for (auto it = c.own_rows.begin(); it != c.own_rows.end() && it->first <= c.others_delivered;) {
    if (it->second.state < RowState::delivered) {
      it->second.state = RowState::delivered;
      emit_row(conv, it->second.id, RowState::delivered, it->first, true, now);
    }
    if (it->first <= c.others_read) {
      emit_row(conv, it->second.id, RowState::read, it->first, true, now);
      it = c.own_rows.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- outbox -------------------------------------------------------------------------------

std::string ClientSession::send(const std::string& conv, JsonText body, TimeMs now,
                               std::optional<std::string> id) {
  OutboxEntry entry;
  entry.conv = conv;
  entry.id = id ? std::move(*id) : make_message_id(now, random_);
  entry.body = std::move(body);
  entry.cts = now;
  entry.trace = make_traceparent(random_);

  RowEvent row;
  row.conv = conv;
  row.id = entry.id;
  row.own = true;
  row.body = entry.body;
  row.trace = entry.trace;
  row.at = now;

  std::optional<Error> refused;
  Result<JsonText> checked = parse_json_text(entry.body.text);
  if (!is_valid_conv(conv)) {
    refused = make_error(ErrorCode::invalid, "conv: " + std::string(kConvRule));
  } else if (!is_valid_message_id(entry.id)) {
    refused = make_error(ErrorCode::invalid, "id: " + std::string(kMessageIdRule));
  } else if (!checked.ok()) {
    refused = checked.error();
    row.body.reset();  // not JSON: a JsonText may not hold it, and no host could show it
  } else if (outbox_keys_.count({conv, entry.id})) {
    return entry.id;  // the same caller-chosen id again: already queued, one row
  } else {
    entry.body = std::move(checked).value();
    row.body = entry.body;
    refused = check_frame_size(
        serialize(Send{conv, entry.id, entry.body, entry.cts, entry.trace, std::nullopt}).size(),
        max_frame_);
  }
  if (refused) {  // never enters the outbox: it could not succeed later either
    row.state = RowState::failed;
    row.error = refused;
    emit(std::move(row));
    return entry.id;
  }
  row.state = RowState::queued;
  emit(std::move(row));
  std::string queued_id = entry.id;
  outbox_keys_.emplace(conv, entry.id);
  outbox_.push_back(std::move(entry));
  mark_state_changed();
  pump_outbox(now);
  return queued_id;
}

bool ClientSession::requeue(const std::string& conv, const std::string& id, JsonText body,
                            TimeMs cts, std::string trace, TimeMs now,
                            std::optional<std::string> as) {
  if (!is_valid_conv(conv) || !is_valid_message_id(id) || !is_valid_traceparent(trace)) return false;
  if (outbox_keys_.count({conv, id})) return false;
  Result<JsonText> checked = parse_json_text(body.text);
  if (!checked.ok()) return false;
  OutboxEntry entry;
  entry.conv = conv;
  entry.id = id;
  entry.body = std::move(checked).value();
  entry.cts = cts;
  entry.trace = std::move(trace);
  entry.as = std::move(as);
  if (!config_.relay) {  // a relay link tells its host no queued rows (emit)
    RowEvent row;
    row.conv = conv;
    row.id = id;
    row.state = RowState::queued;
    row.own = true;
    row.body = entry.body;
    row.trace = entry.trace;
    row.at = now;
    emit(std::move(row));
  }
  outbox_keys_.emplace(conv, id);
  outbox_.push_back(std::move(entry));
  mark_state_changed();
  pump_outbox(now);
  return true;
}

bool ClientSession::retry(const std::string& conv, const std::string& id, TimeMs now) {
  auto entry = find_outbox(conv, id);
  if (entry == outbox_.end() || !entry->failed) return false;
  entry->failed = false;
  entry->error.reset();
  entry->attempts = 0;
  entry->not_before = 0;
  emit_row(conv, id, RowState::queued, std::nullopt, true, now);
  mark_state_changed();
  pump_outbox(now);
  return true;
}

std::deque<ClientSession::OutboxEntry>::iterator ClientSession::find_outbox(
    const std::string& conv, const std::string& id) {
  return std::find_if(outbox_.begin(), outbox_.end(), [&](const OutboxEntry& entry) {
    return entry.id == id && entry.conv == conv;
  });
}

void ClientSession::pump_outbox(TimeMs now) {
  retry_wakeup_.reset();
  if (phase_ != Phase::online) return;
  bool failed = false;
  for (auto& entry : outbox_) {
    if (in_flight_ >= config_.max_in_flight) break;
    if (entry.failed || entry.sent_on == connection_) continue;
    if (entry.not_before > now) {
      if (!retry_wakeup_ || entry.not_before < *retry_wakeup_) retry_wakeup_ = entry.not_before;
      continue;
    }
    std::string text =
        serialize(Send{entry.conv, entry.id, entry.body, entry.cts, entry.trace, std::nullopt, entry.as});
    if (auto too_large = check_frame_size(text.size(), max_frame_)) {
      // Queued under a larger limit than this welcome's: the edge would close with 1009 on
      // every reconnect, so it fails here as send() would have failed it.
      entry.failed = true;
      entry.error = std::move(too_large);
      RowEvent row;
      row.conv = entry.conv;
      row.id = entry.id;
      row.state = RowState::failed;
      row.own = true;
      row.error = entry.error;
      row.at = now;
      emit(std::move(row));
      mark_state_changed();
      failed = true;
      continue;
    }
    io_.emplace_back(WriteFrame{connection_, std::move(text)});
    entry.sent_on = connection_;
    ++in_flight_;
  }
  if (failed) drop_failed_relayed();
}

void ClientSession::resolve_sent(const std::string& conv, const std::string& id,
                                 std::optional<Seq> seq, TimeMs now) {
  if (!outbox_keys_.count({conv, id})) return;  // already resolved: no scan of the whole outbox
  auto entry = find_outbox(conv, id);
  if (entry == outbox_.end()) return;  // already resolved: a repeated ack or msg
  forget_in_flight(*entry);
  outbox_keys_.erase({entry->conv, entry->id});
  outbox_.erase(entry);
  mark_state_changed();
  if (!seq) {  // stored by a relaying edge; the seq comes with the msg
    emit_row(conv, id, RowState::stored, std::nullopt, true, now);
    return;
  }
  emit_row(conv, id, RowState::sequenced, seq, true, now);
  auto it = conversations_.find(conv);
  if (it == conversations_.end()) return;
  Conversation& c = it->second;
  c.known_head = std::max(c.known_head, *seq);
  if (config_.relay) return;  // its sends are other users' rows, not its own
  if (!c.cursor || *seq > *c.cursor) c.acked_undelivered.insert(*seq);
  track_own_row(c, *seq, id);
  apply_others_receipt(conv, c, now);
}

// ---- durable state ------------------------------------------------------------------------

// The state document: {"v":1,"outbox":[{conv,id,cts,trace,failed,error?,body}],"convs":{...}}.
// Bodies are written as their JsonText, so an imported outbox sends them byte for byte.
std::string ClientSession::export_state() const {
  JsonArray outbox;
  for (const auto& entry : outbox_) {
    JsonObject o(128 + entry.body.text.size());
    o.str("conv", entry.conv).str("id", entry.id).num("cts", entry.cts).str("trace", entry.trace);
    o.boolean("failed", entry.failed);
    if (entry.error)
      o.raw("error", JsonObject().str("code", to_string(entry.error->code)).str("msg", entry.error->message).done());
    outbox.raw(o.raw("body", entry.body.text).done());
  }
  JsonObject convs;
  for (const auto& [conv, c] : conversations_) {
    if (!c.wanted && !c.cursor) continue;
    JsonObject o;
    o.boolean("wanted", c.wanted).num("read", c.read_cursor);
    if (c.cursor) o.num("cursor", *c.cursor);
    if (c.others_delivered) o.num("others_delivered", c.others_delivered);
    if (c.others_read) o.num("others_read", c.others_read);
    convs.raw(conv, o.done());
  }
  return JsonObject().num("v", 1).raw("convs", convs.done()).raw("outbox", outbox.done()).done();
}

Result<std::monostate> ClientSession::import_state(std::string_view text, TimeMs now) {
  // A body nests three levels below the document (outbox, entry).
  JsonChecked checked = check_json(text, 64);
  if (checked.error || !checked.value.is_object())
    return make_error(ErrorCode::bad_frame, "state: not a JSON object");
  const JsonView& root = checked.value;
  auto version = root.find("v");
  if (!version || !version->is_int64() || version->get_int64() != 1)
    return make_error(ErrorCode::invalid, "state.v: must be 1");
  // A non-negative integer member of `o`, or nullopt.
  const auto count = [](const JsonView& o, std::string_view key) -> std::optional<Seq> {
    auto found = o.find(key);
    if (!found || !found->is_int64() || found->get_int64() < 0) return std::nullopt;
    return static_cast<Seq>(found->get_int64());
  };

  std::deque<OutboxEntry> outbox;
  if (auto items = root.find("outbox")) {
    if (!items->is_array()) return make_error(ErrorCode::invalid, "state.outbox: must be an array");
    for (const JsonView& o : items->elements()) {
      if (!o.is_object()) return make_error(ErrorCode::invalid, "state.outbox[]: must be objects");
      auto str = [&](std::string_view key) -> std::optional<std::string> {
        auto found = o.find(key);
        if (!found || !found->is_string()) return std::nullopt;
        return found->get_string();
      };
      OutboxEntry entry;
      auto conv = str("conv"), id = str("id"), trace = str("trace");
      auto body_value = o.find("body");
      auto body = body_value ? parse_json_text(body_value->text()) : Result<JsonText>(Error{});
      if (!conv || !is_valid_conv(*conv) || !id || !is_valid_message_id(*id) || !body.ok())
        return make_error(ErrorCode::invalid, "state.outbox[]: conv, id and body required");
      entry.conv = *conv;
      entry.id = *id;
      entry.body = std::move(body).value();
      entry.trace = trace && is_valid_traceparent(*trace) ? *trace : make_traceparent(random_);
      if (auto cts = o.find("cts"); cts && cts->is_int64()) entry.cts = cts->get_int64();
      if (auto failed = o.find("failed"); failed && failed->is_bool()) entry.failed = failed->get_bool();
      if (auto error = o.find("error"); error && error->is_object()) {
        Error err;
        if (auto code = error->find("code"); code && code->is_string())
          err.code = error_code_from_string(code->get_string()).value_or(ErrorCode::invalid);
        if (auto msg = error->find("msg"); msg && msg->is_string()) err.message = msg->get_string();
        entry.error = err;
      }
      outbox.push_back(std::move(entry));
    }
  }
  std::map<std::string, Conversation> conversations;
  if (auto convs = root.find("convs")) {
    if (!convs->is_object()) return make_error(ErrorCode::invalid, "state.convs: must be an object");
    for (const JsonMember& member : convs->members()) {
      std::string key = member.key();
      const JsonView& o = member.value;
      if (!is_valid_conv(key) || !o.is_object())
        return make_error(ErrorCode::invalid, "state.convs: bad conversation");
      Conversation c;
      if (auto wanted = o.find("wanted"); wanted && wanted->is_bool()) c.wanted = wanted->get_bool();
      c.cursor = count(o, "cursor");
      c.read_cursor = count(o, "read").value_or(0);
      c.others_delivered = count(o, "others_delivered").value_or(0);
      c.others_read = count(o, "others_read").value_or(0);
      c.others_delivered = std::max(c.others_delivered, c.others_read);
      c.delivered_sent = c.cursor.value_or(0);
      conversations.insert_or_assign(std::move(key), std::move(c));
    }
  }
  outbox_ = std::move(outbox);
  in_flight_ = 0;  // imported entries were sent on no connection of this session
  outbox_keys_.clear();
  for (const auto& entry : outbox_) outbox_keys_.emplace(entry.conv, entry.id);
  conversations_ = std::move(conversations);
  for (const auto& entry : outbox_) {
    RowEvent row;
    row.conv = entry.conv;
    row.id = entry.id;
    row.state = entry.failed ? RowState::failed : RowState::queued;
    row.own = true;
    row.error = entry.error;
    row.body = entry.body;
    row.trace = entry.trace;
    row.at = now;
    emit(std::move(row));
  }
  return std::monostate{};
}

}  // namespace waymark
