// The edge's protocol logic: sessions, subscriptions with replay, fanout, presence, typing,
// sends and receipts handed to the writer, acks after commit.
#include "waymark/edge_node.h"
#include "overloaded.h"

#include <algorithm>

#include "waymark/close_codes.h"

namespace waymark {
namespace {

// Why a frame naming conv is refused: no access at all, or read-only access.
std::string access_refusal(const Identity& identity, const std::string& conv) {
  if (identity.may_read(conv)) return "conv: \"" + conv + "\" is read-only for this token";
  return "conv: no access to \"" + conv + "\"";
}

constexpr std::int64_t kMilli = 1000;  // milli-tokens per token
constexpr std::size_t kTypingBucketsKept = 64;

// The rid a client frame carried, for the error that answers it.
std::optional<std::string> rid_of(const Frame& frame) {
  return std::visit(
      [](const auto& f) -> std::optional<std::string> {
        if constexpr (requires { f.rid; })
          return f.rid;
        else
          return std::nullopt;
      },
      frame);
}

// bye.retry_ms's lower end on shutdown: drawn per connection so reconnects spread out.
TimeMs shutdown_retry_min(const EdgeConfig& config, RandomSource& random) {
  return config.shutdown_retry_low_ms +
         static_cast<TimeMs>(random.next_u64() %
                             static_cast<std::uint64_t>(config.shutdown_retry_jitter_ms + 1));
}

}  // namespace

EdgeNode::EdgeNode(EdgeConfig config, LogReader& reader, Authenticator& auth,
                   RandomSource& random)
    : config_(std::move(config)), reader_(reader), auth_(auth), random_(random) {
  path_.push_back(config_.node);
}

std::vector<EdgeOutput> EdgeNode::take_outputs() {
  std::vector<EdgeOutput> out;
  out.swap(outputs_);
  return out;
}

// ---- connection events --------------------------------------------------------------------

void EdgeNode::on_connect(ConnId conn, TimeMs now, std::string peer) {
  Connection& c = connections_[conn];
  c.peer = std::move(peer);
  if (config_.handshake_timeout_ms > 0) set_deadline(conn, c, now + config_.handshake_timeout_ms);
  counters_.connections_open = connections_.size();
}

void EdgeNode::on_disconnect(ConnId conn, TimeMs now) {
  auto it = connections_.find(conn);
  if (it == connections_.end()) return;
  std::vector<std::string> convs;
  for (const auto& [conv, sub] : it->second.subs) convs.push_back(conv);
  for (const auto& conv : convs) unsubscribe(conn, it->second, conv, now);
  set_deadline(conn, it->second, 0);
  if (it->second.counted) {
    auto user = user_connections_.find({it->second.identity->tenant, it->second.identity->user});
    if (user != user_connections_.end() && --user->second == 0) user_connections_.erase(user);
  }
  connections_.erase(it);
  counters_.connections_open = connections_.size();
  // Writes still in the writer keep their tickets: they are stored and fanned out anyway;
  // only the ack has nobody to go to (the client resends and learns dup:true).
  for (auto& [ticket, pending] : pending_)
    if (pending.conn == conn) pending.conn = 0;
}

void EdgeNode::on_binary(ConnId conn, TimeMs now) {
  auto it = connections_.find(conn);
  if (it == connections_.end() || it->second.closing) return;
  ++counters_.frames_in["binary"];
  if (!it->second.identity) {
    send_error(conn, ErrorCode::unauthorized, "hello must be the first frame", std::nullopt);
    close(conn, it->second, close_code::unauthorized, "unauthorized");
    return;
  }
  if (!admit_frame(conn, it->second, nullptr, std::nullopt, now)) return;
  send_error(conn, ErrorCode::bad_frame, "frame: binary frames are not accepted", std::nullopt);
}

void EdgeNode::on_oversized(ConnId conn, TimeMs) {
  auto it = connections_.find(conn);
  if (it == connections_.end() || it->second.closing) return;
  ++counters_.frames_in["too_large"];
  send_error(conn, ErrorCode::too_large,
             "frame: exceeds max_frame " + std::to_string(config_.max_frame), std::nullopt);
  close(conn, it->second, close_code::too_large, "frame too large");
}

void EdgeNode::on_text(ConnId conn, std::string_view text, TimeMs now) {
  auto it = connections_.find(conn);
  if (it == connections_.end() || it->second.closing) return;
  Connection& c = it->second;

  auto parsed = parse_frame(text, Direction::from_client, ParseLimits{config_.max_frame});
  if (!parsed.ok()) {
    const FrameError& error = parsed.error();
    if (error.code == ErrorCode::too_large) return on_oversized(conn, now);
    ++counters_.frames_in["invalid"];
    if (!c.identity) {
      // Before a hello only a well-formed hello is heard: a malformed hello says what is wrong,
      // anything else is unauthorized; both close 4001.
      if (error.code == ErrorCode::invalid && error.type == "hello")
        send_error(conn, error.code, error.message, error.rid);
      else
        send_error(conn, ErrorCode::unauthorized, "hello must be the first frame", error.rid);
      close(conn, c, close_code::unauthorized, "unauthorized");
      return;
    }
    if (!admit_frame(conn, c, nullptr, error.rid, now)) return;
    send_error(conn, error.code, error.message, error.rid);
    return;
  }
  Frame& frame = parsed.value();
  ++counters_.frames_in[std::string(frame_type(frame))];

  if (!c.identity && !std::holds_alternative<Hello>(frame)) {
    send_error(conn, ErrorCode::unauthorized, "hello must be the first frame", rid_of(frame));
    close(conn, c, close_code::unauthorized, "unauthorized");
    return;
  }
  // A relay connection carries many users' frames: their own edge limited each of them.
  if (c.identity && !c.identity->node && !admit_frame(conn, c, &frame, rid_of(frame), now)) return;
  std::visit(Overloaded{
                 [&](Hello& f) { handle(conn, c, std::move(f), now); },
                 [&](Sub& f) { handle(conn, c, std::move(f), now); },
                 [&](Unsub& f) { handle(conn, c, std::move(f), now); },
                 [&](Hist& f) { handle(conn, c, std::move(f), now); },
                 [&](Send& f) { handle(conn, c, std::move(f), now); },
                 [&](Ping& f) { handle(conn, c, std::move(f), now); },
                 [&](Rcpt& f) { handle(conn, c, std::move(f), now); },
                 [&](Typing& f) { handle(conn, c, std::move(f), now); },
                 [&](Presence& f) { handle(conn, c, std::move(f), now); },
                 [&](auto&) {},  // parse_frame(from_client) yields client frames only
             },
             frame);
}

// ---- frames ------------------------------------------------------------------------------

void EdgeNode::handle(ConnId conn, Connection& c, Hello&& frame, TimeMs now) {
  if (c.identity) {
    send_error(conn, ErrorCode::invalid, "hello: this connection already said hello", frame.rid);
    return;
  }
  if (shutting_down_) {  // a socket that arrived after shutdown(): no session, come back later
    send_error(conn, ErrorCode::unavailable, "node: shutting down", frame.rid);
    TimeMs min_ms = shutdown_retry_min(config_, random_);
    say_bye(conn, c, std::string(bye_reason::shutdown), min_ms, min_ms + config_.shutdown_retry_spread_ms,
            close_code::going_away);
    return;
  }
  auto identity = auth_.authenticate(frame.token, now);
  if (!identity.ok()) {
    AuditRecord record = audit_of(c, "auth_failed", now);
    record.detail = identity.error().message;
    audit(std::move(record), now);
    send_error(conn, ErrorCode::unauthorized, identity.error().message, frame.rid);
    close(conn, c, close_code::unauthorized, "unauthorized");
    return;
  }
  if (!hello_relay(conn, c, frame, identity.value(), now)) return;
  std::uint32_t& user_connections =
      user_connections_[{identity.value().tenant, identity.value().user}];
  if (config_.max_conns_per_user > 0 && user_connections >= config_.max_conns_per_user) {
    AuditRecord record = audit_of(c, "too_many_connections", now);
    record.tenant = identity.value().tenant;
    record.user = identity.value().user;
    audit(std::move(record), now);
    send_error(conn, ErrorCode::rate_limited,
               "connections: at most " + std::to_string(config_.max_conns_per_user) +
                   " per user",
               frame.rid);
    say_bye(conn, c, std::string(bye_reason::too_many_connections), config_.abuse_retry_min_ms,
            config_.abuse_retry_max_ms, close_code::abusive);
    return;
  }
  ++user_connections;
  c.counted = true;
  c.identity = std::move(identity).value();
  c.provisional = frame.provisional;
  if (frame.relay) c.relay_node = frame.relay->node;
  set_deadline(conn, c, c.identity->expires_at.value_or(0));
  Welcome welcome;
  welcome.session = make_hex_token(random_, 32);
  welcome.node = config_.node;
  welcome.user = c.identity->user;
  welcome.ts = now;
  welcome.hb = config_.heartbeat_ms;
  welcome.max_frame = static_cast<std::int64_t>(config_.max_frame);
  welcome.rid = frame.rid;
  if (c.relay_node) welcome.path = path_;
  write_frame(conn, welcome);
  for (const SubRequest& request : frame.subs) {
    if (check_access(conn, c, request.conv, "hello", std::nullopt, now, Access::read))
      subscribe(conn, c, request, std::nullopt, now);
  }
}

void EdgeNode::handle(ConnId conn, Connection& c, Sub&& frame, TimeMs now) {
  if (!check_access(conn, c, frame.request.conv, "sub", frame.rid, now, Access::read)) return;
  subscribe(conn, c, frame.request, frame.rid, now);
}

void EdgeNode::handle(ConnId conn, Connection& c, Unsub&& frame, TimeMs now) {
  if (!check_access(conn, c, frame.conv, "unsub", frame.rid, now, Access::read)) return;
  unsubscribe(conn, c, frame.conv, now);
}

void EdgeNode::handle(ConnId conn, Connection& c, Hist&& frame, TimeMs now) {
  if (!check_access(conn, c, frame.conv, "hist", frame.rid, now, Access::read)) return;
  const std::string& tenant = c.identity->tenant;
  TopicKey key{tenant, frame.conv};
  if (config_.relay && !hist_ready(key)) {
    // The log may lack what the upstream has: follow the conversation (it is pulled from the
    // log's head) and answer once the log holds the upstream's head, so a page here is the
    // root's page; after relay_hist_wait_ms (a partition) from what the log holds.
    Interest& interest = interest_[key];
    ++interest.hists;
    if (!interest.on || interest.linger_until) {
      auto head = reader_.head(tenant, frame.conv);
      hold_interest(key, head.ok() ? head.value() : 0);
    }
    TimeMs until = now + config_.relay_hist_wait_ms;
    parked_hists_[key].push_back(ParkedHist{conn, std::move(frame), until});
    parked_hist_deadlines_.insert({until, key});
    return;
  }
  serve_hist(conn, tenant, frame);
}

bool EdgeNode::hist_ready(const TopicKey& key) const {
  auto it = interest_.find(key);
  return it != interest_.end() && it->second.on && it->second.synced &&
         it->second.local_head >= it->second.upstream_head;
}

void EdgeNode::answer_parked_hists(const TopicKey& key, bool expired_only, TimeMs now) {
  auto parked = parked_hists_.find(key);
  if (parked == parked_hists_.end()) return;  // nobody waits (the usual case: one lookup)
  std::vector<ParkedHist> answer;
  auto& waiting = parked->second;
  for (auto it = waiting.begin(); it != waiting.end();) {
    if (expired_only && it->until > now) {
      ++it;
      continue;
    }
    answer.push_back(std::move(*it));
    it = waiting.erase(it);
  }
  if (waiting.empty()) parked_hists_.erase(parked);
  for (const ParkedHist& hist : answer) {
    parked_hist_deadlines_.erase({hist.until, key});
    auto c = connections_.find(hist.conn);
    if (c != connections_.end() && !c->second.closing) serve_hist(hist.conn, key.first, hist.frame);
  }
  auto interest = interest_.find(key);
  if (interest == interest_.end()) return;
  interest->second.hists -= std::min<std::uint32_t>(interest->second.hists,
                                                    static_cast<std::uint32_t>(answer.size()));
  release_interest(key, now);
}

void EdgeNode::serve_hist(ConnId conn, const std::string& tenant, const Hist& frame) {
  std::uint32_t limit = std::min(frame.limit.value_or(config_.hist_default), config_.hist_max);
  auto head = reader_.head(tenant, frame.conv);
  if (!head.ok()) return send_error(conn, ErrorCode::unavailable, "store: " + head.error().message, frame.rid);

  Seq after = 0;
  bool more = false;
  if (frame.after) {  // the messages just above `after`
    after = std::min(*frame.after, head.value());
    more = after + limit < head.value();
  } else {            // the messages just below `before` (default: above the head)
    Seq before = std::min(frame.before.value_or(head.value() + 1), head.value() + 1);
    Seq top = before - 1;  // highest seq returned
    after = top > limit ? top - limit : 0;
    limit = static_cast<std::uint32_t>(top - after);
    more = after > 0;
  }
  auto msgs = reader_.read_after(tenant, frame.conv, after, limit);
  if (!msgs.ok()) return send_error(conn, ErrorCode::unavailable, "store: " + msgs.error().message, frame.rid);
  // A page stays within page_max_bytes (at least one message): the messages nearest the
  // asking point are kept (the lowest for `after`, the highest below `before`), more:true.
  auto& found = msgs.value();
  std::size_t bytes = 0, keep = 0;
  for (std::size_t i = 0; i < found.size(); ++i) {
    const auto& m = frame.after ? found[i] : found[found.size() - 1 - i];
    if (keep > 0 && bytes + m.frame.size() > config_.page_max_bytes) break;
    bytes += m.frame.size();
    ++keep;
  }
  if (keep < found.size()) {
    more = true;
    if (frame.after)
      found.erase(found.begin() + static_cast<std::ptrdiff_t>(keep), found.end());
    else
      found.erase(found.begin(), found.end() - static_cast<std::ptrdiff_t>(keep));
  }
  std::vector<std::string> frames;
  frames.reserve(found.size());
  for (auto& m : found) frames.push_back(std::move(m.frame));
  write(conn, serialize_page(frame.conv, frames, more, frame.rid), "page");
}

void EdgeNode::handle(ConnId conn, Connection& c, Send&& frame, TimeMs now) {
  std::optional<std::string> from = acting_user(conn, c, frame.as, "send", frame.rid, now);
  if (!from) return;
  if (!c.identity->may_access(frame.conv)) {
    AuditRecord record = audit_of(c, "forbidden", now);
    record.conv = frame.conv;
    record.frame = "send";
    audit(std::move(record), now);
    send_nack(conn, frame.conv, frame.id, ErrorCode::forbidden, access_refusal(*c.identity, frame.conv),
              false, frame.rid);
    return;
  }
  if (shutting_down_) {
    send_nack(conn, frame.conv, frame.id, ErrorCode::unavailable, "node: shutting down", true,
              frame.rid);
    return;
  }
  AppendRequest append;
  append.tenant = c.identity->tenant;
  append.msg.conv = frame.conv;
  append.msg.id = frame.id;
  append.msg.from = std::move(*from);
  append.msg.ts = now;
  append.msg.cts = frame.cts;
  append.msg.trace = frame.trace ? std::move(frame.trace) : make_traceparent(random_);
  append.msg.body = std::move(frame.body);
  append.stage = config_.relay;

  PendingWrite pending;
  pending.conn = conn;
  pending.rid = frame.rid;
  pending.tenant = append.tenant;
  pending.conv = frame.conv;
  pending.id = frame.id;
  persist(WriteRequest{0, std::move(append)}, std::move(pending));
}

void EdgeNode::persist(WriteRequest request, PendingWrite pending) {
  request.ticket = next_ticket_++;
  pending_[request.ticket] = std::move(pending);
  outputs_.push_back(EdgePersist{std::move(request)});
}

std::optional<std::string> EdgeNode::acting_user(ConnId conn, const Connection& c,
                                                 const std::optional<std::string>& as,
                                                 std::string_view frame,
                                                 const std::optional<std::string>& rid,
                                                 TimeMs now) {
  if (!c.identity->node) {
    if (!as) return c.identity->user;
    AuditRecord record = audit_of(c, "forbidden", now);
    record.frame = std::string(frame);
    record.detail = "as: only a relay link speaks for another user";
    audit(std::move(record), now);
    send_error(conn, ErrorCode::forbidden, "as: only a relay link speaks for another user", rid);
    return std::nullopt;
  }
  if (as) return *as;
  send_error(conn, ErrorCode::invalid,
             "as: missing (a relay link names the user each " + std::string(frame) +
                 " speaks for)",
             rid);
  return std::nullopt;
}

// hello from a node token must say relay{node, tenant}, and hello.relay needs a node token
// naming that tenant; a relay already on this node's path would close a cycle.
bool EdgeNode::hello_relay(ConnId conn, Connection& c, const Hello& frame, Identity& identity,
                           TimeMs now) {
  std::optional<std::string> refusal;
  if (identity.node && !frame.relay) {
    refusal = "token: a node token is for a relay link (hello.relay)";
  } else if (!identity.node && frame.relay) {
    refusal = "token: hello.relay needs a node token";
  } else if (frame.relay) {
    if (frame.relay->node != identity.user) {
      refusal = "relay.node: \"" + frame.relay->node + "\" is not the node the token names (\"" +
                identity.user + "\")";
    } else if (!identity.may_relay_for(frame.relay->tenant)) {
      refusal = "relay.tenant: the node token does not name tenant \"" + frame.relay->tenant + "\"";
    } else if (std::find(path_.begin(), path_.end(), frame.relay->node) != path_.end()) {
      std::string path;
      for (const auto& node : path_) path += (path.empty() ? "" : " -> ") + node;
      refusal = "cycle: relay \"" + frame.relay->node + "\" is on this node's upstream path (" +
                path + ")";
    } else {
      identity.tenant = frame.relay->tenant;
    }
  }
  if (!refusal) return true;
  AuditRecord record = audit_of(c, "auth_failed", now);
  record.user = identity.user;
  record.detail = *refusal;
  audit(std::move(record), now);
  send_error(conn, ErrorCode::unauthorized, *refusal, frame.rid);
  close(conn, c, close_code::unauthorized, "unauthorized");
  return false;
}

void EdgeNode::handle(ConnId conn, Connection&, Ping&& frame, TimeMs now) {
  write_frame(conn, Pong{frame.ts.value_or(now), frame.rid});
}

void EdgeNode::handle(ConnId conn, Connection& c, Rcpt&& frame, TimeMs now) {
  std::optional<std::string> user = acting_user(conn, c, frame.as, "rcpt", frame.rid, now);
  if (!user) return;
  if (!check_access(conn, c, frame.conv, "rcpt", frame.rid, now, Access::read)) return;
  ReceiptRequest receipt{c.identity->tenant, *user, frame.conv, frame.seq, frame.kind};
  PendingWrite pending;
  pending.conn = conn;
  pending.rid = frame.rid;
  pending.tenant = receipt.tenant;
  pending.conv = frame.conv;
  pending.what = WriteKind::receipt;
  pending.user = *user;
  pending.kind = frame.kind;
  persist(WriteRequest{0, std::move(receipt)}, std::move(pending));
}

void EdgeNode::handle(ConnId conn, Connection& c, Typing&& frame, TimeMs now) {
  std::optional<std::string> user = acting_user(conn, c, frame.as, "typing", frame.rid, now);
  if (!user) return;
  if (!check_access(conn, c, frame.conv, "typing", frame.rid, now, Access::write)) return;
  // Only "on" is limited: an "off" ends what others see, and a user who sends a message and
  // starts typing again says on, off, on within a second.
  if (frame.on && !admit_typing(c, frame.conv, now)) {
    send_error(conn, ErrorCode::rate_limited,
               "typing: at most " + std::to_string(config_.typing_per_sec) +
                   " per second per conversation",
               frame.rid);
    count_refusal(conn, c, now);
    return;
  }
  Typing out{frame.conv, frame.on, *user, std::nullopt};
  send_to_topic({c.identity->tenant, frame.conv}, out, conn);
  if (config_.relay)
    upstream_.push_back(UpstreamTyping{c.identity->tenant, *user, frame.conv, frame.on});
}

// A downstream relay's user came or went (docs/protocol.md "Relays"): counted in the topic's
// present as one connection of that user's, while the relay stays subscribed.
void EdgeNode::handle(ConnId conn, Connection& c, Presence&& frame, TimeMs now) {
  if (!c.relay_node) {
    AuditRecord record = audit_of(c, "forbidden", now);
    record.frame = "relay_presence";
    record.detail = "relay_presence: only a relay link sends it";
    audit(std::move(record), now);
    return send_error(conn, ErrorCode::forbidden, "relay_presence: only a relay link sends it",
                      std::nullopt);
  }
  if (!c.subs.count(frame.conv))
    return send_error(conn, ErrorCode::invalid,
                      "relay_presence: subscribe to \"" + frame.conv + "\" first", std::nullopt);
  TopicKey key{c.identity->tenant, frame.conv};
  const std::string& user = *frame.as;
  if (frame.on) {
    if (!c.relayed_present.insert({frame.conv, user}).second) return;
    if (++topics_[key].present[user] == 1) presence_counted(key, user, true, conn);
    return;
  }
  if (!c.relayed_present.erase({frame.conv, user})) return;
  auto topic = topics_.find(key);
  if (topic == topics_.end()) return;
  auto present = topic->second.present.find(user);
  if (present != topic->second.present.end() && --present->second == 0) {
    topic->second.present.erase(present);
    presence_counted(key, user, false, conn);
  }
}

void EdgeNode::presence_counted(const TopicKey& key, const std::string& user, bool on,
                                ConnId conn) {
  send_to_topic(key, Presence{key.second, user, on}, conn);
  if (config_.relay) upstream_.push_back(UpstreamPresence{key.first, user, key.second, on});
}

// ---- subscriptions ------------------------------------------------------------------------

void EdgeNode::subscribe(ConnId conn, Connection& c, const SubRequest& request,
                         const std::optional<std::string>& rid, TimeMs) {
  if (config_.max_subs > 0 && !c.subs.count(request.conv) && c.subs.size() >= config_.max_subs)
    return send_error(conn, ErrorCode::rate_limited,
                      "subs: at most " + std::to_string(config_.max_subs) +
                          " subscriptions per connection",
                      rid);
  const std::string& tenant = c.identity->tenant;
  const std::string& user = c.identity->user;
  auto head = reader_.head(tenant, request.conv);
  auto receipts = reader_.receipts(tenant, user, request.conv);
  if (!head.ok() || !receipts.ok())
    return send_error(conn, ErrorCode::unavailable, "store: cannot read \"" + request.conv + "\"", rid);

  // A cursor past the head (a client that knows more than this node) replays nothing. On a
  // relay it is also where the live msgs start: the relay's log is catching up to it.
  Seq after = std::min(request.after.value_or(head.value()), head.value());
  Seq live_after = config_.relay ? std::max(after, request.after.value_or(0)) : after;
  std::uint32_t limit =
      std::min(request.limit.value_or(config_.replay_default), config_.replay_max);
  auto replay = reader_.read_after(tenant, request.conv, after, limit);
  if (!replay.ok()) return send_error(conn, ErrorCode::unavailable, "store: " + replay.error().message, rid);

  TopicKey key{tenant, request.conv};
  Topic& topic = topics_[key];
  bool newly_subscribed = !c.subs.count(request.conv);
  Subscription& sub = c.subs[request.conv];
  sub.last_sent = after;
  std::size_t bytes = 0;
  for (auto& m : replay.value()) {
    // A replay stays within page_max_bytes (at least one message), so it never overruns the
    // host's per-connection queue by itself; the client subs again for the rest (more:true).
    if (bytes > 0 && bytes + m.frame.size() > config_.page_max_bytes) break;
    bytes += m.frame.size();
    write(conn, std::move(m.frame), "msg");
    sub.last_sent = m.seq;
    ++counters_.replayed_messages;
  }
  bool more = sub.last_sent < head.value();
  sub.live = !more;  // a client still catching up gets no live msgs until it subs again
  if (!more) sub.last_sent = std::max(sub.last_sent, live_after);
  topic.subscribers.insert(conn);
  if (config_.relay) {
    hold_interest(key, head.value());
    if (c.provisional && !more) {  // then this conversation's staged sends, unsequenced
      auto staged = reader_.staged_messages();
      if (staged.ok())
        for (auto& m : staged.value())
          if (m.tenant == tenant && m.conv == request.conv) {
            write(conn, std::move(m.frame), "msg");
            ++counters_.provisional_deliveries;
          }
    }
  }

  // A relay link is not a person: it announces its users with presence frames.
  if (newly_subscribed && !c.relay_node && ++topic.present[user] == 1)
    presence_counted(key, user, true, conn);

  Subd subd;
  subd.conv = request.conv;
  subd.head = head.value();
  subd.read = receipts.value().read;
  std::set<std::string> present;
  for (const auto& [name, count] : topic.present)
    if (count > 0) present.insert(name);
  if (auto elsewhere = upstream_present_.find(key); elsewhere != upstream_present_.end())
    present.insert(elsewhere->second.begin(), elsewhere->second.end());
  subd.present.assign(present.begin(), present.end());
  subd.more = more;
  subd.rid = rid;
  write_frame(conn, subd);
}

void EdgeNode::unsubscribe(ConnId conn, Connection& c, const std::string& conv, TimeMs now) {
  auto sub = c.subs.find(conv);
  if (sub == c.subs.end()) return;
  c.subs.erase(sub);
  TopicKey key{c.identity->tenant, conv};
  auto topic_it = topics_.find(key);
  if (topic_it == topics_.end()) return;
  Topic& topic = topic_it->second;
  topic.subscribers.erase(conn);
  std::vector<std::string> gone;  // who this connection counted in the topic's present
  if (!c.relay_node) gone.push_back(c.identity->user);
  for (auto it = c.relayed_present.lower_bound({conv, std::string{}});
       it != c.relayed_present.end() && it->first == conv;) {
    gone.push_back(it->second);
    it = c.relayed_present.erase(it);
  }
  for (const std::string& user : gone) {
    auto present = topic.present.find(user);
    if (present == topic.present.end() || --present->second > 0) continue;
    topic.present.erase(present);
    presence_counted(key, user, false, conn);
  }
  if (topic.subscribers.empty()) {
    topics_.erase(topic_it);
    if (config_.relay) release_interest(key, now);
  }
}

void EdgeNode::send_to_topic(const TopicKey& key, const Frame& frame, ConnId except) {
  auto topic = topics_.find(key);
  if (topic == topics_.end()) return;
  EdgeFanout fanout{{}, std::make_shared<const std::string>(serialize(frame)), frame_type(frame)};
  for (ConnId subscriber : topic->second.subscribers) {
    if (subscriber == except) continue;
    auto c = connections_.find(subscriber);
    if (c == connections_.end() || c->second.closing) continue;
    auto sub = c->second.subs.find(key.second);
    if (sub == c->second.subs.end() || !sub->second.live) continue;
    fanout.conns.push_back(subscriber);
  }
  push_fanout(std::move(fanout));
}

void EdgeNode::push_fanout(EdgeFanout fanout) {
  if (!fanout.conns.empty()) outputs_.push_back(std::move(fanout));
}

void EdgeNode::fan_out_msg(const std::string& tenant, const std::string& conv, Seq seq,
                           const std::shared_ptr<const std::string>& frame) {
  auto topic = topics_.find({tenant, conv});
  if (topic == topics_.end()) return;
  // The subscribers that get this frame, in one output after the loop: a subscriber's gap
  // fill (written inside the loop) still comes before it.
  EdgeFanout fanout{{}, frame, "msg"};
  fanout.conns.reserve(topic->second.subscribers.size());
  for (ConnId subscriber : topic->second.subscribers) {
    auto c = connections_.find(subscriber);
    if (c == connections_.end() || c->second.closing) continue;
    auto sub_it = c->second.subs.find(conv);
    if (sub_it == c->second.subs.end() || !sub_it->second.live) continue;
    Subscription& sub = sub_it->second;
    if (seq <= sub.last_sent) continue;  // already replayed from the committed log
    if (seq > sub.last_sent + 1) {
      // Should not happen (commits arrive in order), but never leave a gap: fill it from the log.
      auto missing = reader_.read_after(tenant, conv, sub.last_sent,
                                        static_cast<std::uint32_t>(seq - sub.last_sent - 1));
      if (!missing.ok()) {
        say_bye(subscriber, c->second, std::string(bye_reason::unavailable), config_.lagging_retry_min_ms,
                config_.lagging_retry_max_ms, close_code::going_away);
        continue;
      }
      for (auto& m : missing.value()) {
        write(subscriber, std::move(m.frame), "msg");
        sub.last_sent = m.seq;
      }
      if (sub.last_sent + 1 != seq) continue;
    }
    fanout.conns.push_back(subscriber);
    sub.last_sent = seq;
    ++counters_.fanout_deliveries;
  }
  push_fanout(std::move(fanout));
}

bool EdgeNode::check_access(ConnId conn, const Connection& c, const std::string& conv,
                            std::string_view frame, const std::optional<std::string>& rid,
                            TimeMs now, Access need) {
  if (need == Access::read ? c.identity->may_read(conv) : c.identity->may_access(conv)) return true;
  AuditRecord record = audit_of(c, "forbidden", now);
  record.conv = conv;
  record.frame = std::string(frame);
  audit(std::move(record), now);
  send_error(conn, ErrorCode::forbidden, access_refusal(*c.identity, conv), rid);
  return false;
}


// ---- limits and deadlines -----------------------------------------------------------------

bool EdgeNode::Bucket::take(std::uint32_t per_sec, std::uint32_t burst, TimeMs now) {
  if (per_sec == 0) return true;
  const std::int64_t capacity = static_cast<std::int64_t>(std::max<std::uint32_t>(burst, 1)) * kMilli;
  if (tokens < 0) {
    tokens = capacity;
  } else if (now > refilled_at) {
    // Refill; elapsed is capped first so the product cannot overflow.
    std::int64_t elapsed = std::min<std::int64_t>(now - refilled_at, capacity / per_sec + 1);
    tokens = std::min(capacity, tokens + elapsed * static_cast<std::int64_t>(per_sec));
  }
  refilled_at = std::max(refilled_at, now);
  if (tokens < kMilli) return false;
  tokens -= kMilli;
  return true;
}

bool EdgeNode::admit_frame(ConnId conn, Connection& c, const Frame* frame,
                           const std::optional<std::string>& rid, TimeMs now) {
  if (c.frames.take(config_.rate_per_sec, config_.rate_burst, now)) return true;
  std::string msg = "rate: more than " + std::to_string(config_.rate_per_sec) +
                    " frames per second; slow down";
  if (const Send* send = frame ? std::get_if<Send>(frame) : nullptr)
    send_nack(conn, send->conv, send->id, ErrorCode::rate_limited, std::move(msg), true, send->rid);
  else
    send_error(conn, ErrorCode::rate_limited, std::move(msg), rid);
  count_refusal(conn, c, now);
  return false;
}

void EdgeNode::count_refusal(ConnId conn, Connection& c, TimeMs now) {
  if (c.refusals == 0 || now - c.refusals_since >= config_.abuse_window_ms) {
    c.refusals_since = now;
    c.refusals = 0;
  }
  if (++c.refusals < config_.abuse_refusals || config_.abuse_refusals == 0) return;
  AuditRecord record = audit_of(c, "abusive", now);
  record.detail = std::to_string(c.refusals) + " refused frames within " +
                  std::to_string(config_.abuse_window_ms) + " ms";
  audit(std::move(record), now);
  say_bye(conn, c, std::string(bye_reason::abusive), config_.abuse_retry_min_ms, config_.abuse_retry_max_ms,
          close_code::abusive);
}

bool EdgeNode::admit_typing(Connection& c, const std::string& conv, TimeMs now) {
  if (config_.typing_per_sec == 0) return true;
  if (c.typing.size() >= kTypingBucketsKept && !c.typing.count(conv)) {
    // Forget buckets idle for a second or more: they are full again anyway.
    std::erase_if(c.typing, [&](const auto& entry) { return now - entry.second.refilled_at >= 1000; });
  }
  return c.typing[conv].take(config_.typing_per_sec, config_.typing_per_sec, now);
}

void EdgeNode::set_deadline(ConnId conn, Connection& c, TimeMs at) {
  if (c.deadline) deadlines_.erase({c.deadline, conn});
  c.deadline = at;
  if (at) deadlines_.insert({at, conn});
}

std::optional<TimeMs> EdgeNode::next_deadline() const {
  std::optional<TimeMs> next;
  if (!deadlines_.empty()) next = deadlines_.begin()->first;
  if (!interest_deadlines_.empty() && (!next || interest_deadlines_.begin()->first < *next))
    next = interest_deadlines_.begin()->first;
  if (!parked_hist_deadlines_.empty() && (!next || parked_hist_deadlines_.begin()->first < *next))
    next = parked_hist_deadlines_.begin()->first;
  return next;
}

void EdgeNode::on_timer(TimeMs now) {
  while (!parked_hist_deadlines_.empty() && parked_hist_deadlines_.begin()->first <= now) {
    TopicKey key = parked_hist_deadlines_.begin()->second;  // a copy: answering erases entries
    parked_hist_deadlines_.erase(parked_hist_deadlines_.begin());
    answer_parked_hists(key, true, now);
  }
  while (!interest_deadlines_.empty() && interest_deadlines_.begin()->first <= now) {
    TopicKey key = interest_deadlines_.begin()->second;
    interest_deadlines_.erase(interest_deadlines_.begin());
    auto it = interest_.find(key);
    if (it == interest_.end() || it->second.linger_until == 0 || it->second.linger_until > now)
      continue;
    upstream_.push_back(UpstreamInterest{key.first, key.second, false, 0, false});
    note_heads(key, 0, it->second.upstream_head);  // followed no more: no lag of ours
    interest_.erase(it);
  }
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    ConnId conn = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = connections_.find(conn);
    if (it == connections_.end()) continue;
    Connection& c = it->second;
    c.deadline = 0;
    if (c.closing) continue;
    if (!c.identity) {
      send_error(conn, ErrorCode::unauthorized,
                 "hello: not received within " + std::to_string(config_.handshake_timeout_ms) +
                     " ms",
                 std::nullopt);
      close(conn, c, close_code::unauthorized, "unauthorized");
    } else {
      say_bye(conn, c, std::string(bye_reason::token_expired), config_.expired_retry_min_ms,
              config_.expired_retry_max_ms, close_code::unauthorized);
    }
  }
}

// ---- audit --------------------------------------------------------------------------------

AuditRecord EdgeNode::audit_of(const Connection& c, std::string event, TimeMs now) const {
  AuditRecord record;
  record.ts = now;
  record.event = std::move(event);
  if (c.identity) {
    record.tenant = c.identity->tenant;
    record.user = c.identity->user;
  }
  if (!c.peer.empty()) record.peer = c.peer;
  return record;
}

void EdgeNode::audit(AuditRecord record, TimeMs now, bool always) {
  if (!always && !audit_bucket_.take(config_.audit_per_sec, config_.audit_per_sec, now)) {
    ++counters_.audit_suppressed;
    return;
  }
  ++counters_.audit_records;
  outputs_.push_back(EdgePersist{WriteRequest{0, AuditRequest{std::move(record)}}});
}

void EdgeNode::reload_auth(TimeMs now) {
  auto reloaded = auth_.reload();
  if (!reloaded) return;
  AuditRecord record;
  record.ts = now;
  if (reloaded->ok()) {
    record.event = "secret_reload";
    record.detail = reloaded->value();
  } else {
    record.event = "secret_reload_failed";
    record.detail = reloaded->error().message;
  }
  audit(std::move(record), now, true);
}

// ---- the writer's answers -----------------------------------------------------------------

void EdgeNode::on_committed(const std::vector<WriteOutcome>& outcomes, TimeMs now) {
  for (const WriteOutcome& outcome : outcomes) {
    auto it = pending_.find(outcome.ticket);
    if (it == pending_.end()) continue;
    PendingWrite pending = std::move(it->second);
    pending_.erase(it);

    std::visit(Overloaded{
                   [&](const AppendOutcome& append) {
                     if (append.dup) ++counters_.duplicates; else ++counters_.messages_persisted;
                     if (writable(pending.conn)) {
                       std::optional<Seq> seq;  // none: staged here, the seq comes with the msg
                       if (append.seq) seq = append.seq;
                       Ack ack{pending.conv, pending.id, seq, append.ts, append.trace,
                               append.dup, pending.rid};
                       write_frame(pending.conn, ack);
                     }
                     if (append.dup || !append.frame) return;
                     if (append.seq) {
                       fan_out_msg(pending.tenant, pending.conv, append.seq, append.frame);
                       return;
                     }
                     staged_added(pending.tenant, pending.conv, pending.id, now);
                     fan_out_provisional({pending.tenant, pending.conv}, append.frame);
                     if (append.staged)
                       upstream_.push_back(UpstreamSend{pending.tenant, *append.staged});
                   },
                   [&](const ReplicateOutcome& replicated) {
                     if (replicated.was_staged)
                       staged_removed(pending.tenant, pending.conv, pending.id, now);
                     // Stored now, or there already (a gap is an Error): the log holds it.
                     note_heads({pending.tenant, pending.conv}, 0, pending.seq);
                     if (hist_ready({pending.tenant, pending.conv}))
                       answer_parked_hists({pending.tenant, pending.conv}, false, now);
                     if (!replicated.stored || !replicated.frame) return;
                     ++counters_.replicated_messages;
                     fan_out_msg(pending.tenant, pending.conv, pending.seq, replicated.frame);
                   },
                   [&](const DeadLetterOutcome& dead) {
                     if (!dead.found) return;
                     ++counters_.dead_letters;
                     staged_removed(pending.tenant, pending.conv, pending.id, now);
                     // The sender's rows become failed: every connection of theirs hears it.
                     for (auto& [other, oc] : connections_) {
                       if (oc.closing || !oc.identity || oc.identity->tenant != pending.tenant ||
                           oc.identity->user != dead.from)
                         continue;
                       send_nack(other, pending.conv, pending.id, pending.reason.code,
                                 "upstream: " + pending.reason.message, false, std::nullopt);
                     }
                   },
                   [&](const ReceiptOutcome& receipt) {
                     if (!receipt.advanced) return;
                     if (config_.relay && pending.what == WriteKind::receipt) {
                       Seq seq = pending.kind == ReceiptKind::read ? receipt.cursors.read
                                                                  : receipt.cursors.delivered;
                       upstream_.push_back(
                           UpstreamReceipt{pending.tenant, pending.user, pending.conv, seq, pending.kind});
                     }
                     // Fanned out to all subscribers, the sender's connection included.
                     Seq seq = pending.kind == ReceiptKind::read ? receipt.cursors.read
                                                                : receipt.cursors.delivered;
                     Rcpt out{pending.conv, seq, pending.kind, pending.user, std::nullopt};
                     send_to_topic({pending.tenant, pending.conv}, out, 0);
                   },
                   [&](const AuditOutcome&) {},
                   [&](const Error& error) {
                     if (pending.what == WriteKind::replicate)
                       return rewind_upstream(pending.tenant, pending.conv);
                     if (writable(pending.conn))
                       send_error(pending.conn, error.code, error.message, pending.rid);
                   },
               },
               outcome.result);
  }
}

void EdgeNode::on_commit(const std::vector<WriteRequest>& requests,
                         const Result<std::vector<WriteOutcome>>& result, TimeMs now) {
  if (result.ok())
    on_committed(result.value(), now);
  else
    on_commit_failed(requests, result.error(), now);
}

void EdgeNode::on_commit_failed(const std::vector<WriteRequest>& requests, const Error& error,
                                TimeMs) {
  for (const WriteRequest& request : requests) {
    auto it = pending_.find(request.ticket);
    if (it == pending_.end()) continue;
    PendingWrite pending = std::move(it->second);
    pending_.erase(it);
    if (pending.what == WriteKind::replicate) rewind_upstream(pending.tenant, pending.conv);
    if (!writable(pending.conn)) continue;
    if (pending.what == WriteKind::send)
      send_nack(pending.conn, pending.conv, pending.id, ErrorCode::unavailable,
                "store: " + error.message, true, pending.rid);
    else
      send_error(pending.conn, ErrorCode::unavailable, "store: " + error.message, pending.rid);
  }
}

// ---- leaving ------------------------------------------------------------------------------

void EdgeNode::drop_lagging(ConnId conn, TimeMs) {
  auto it = connections_.find(conn);
  if (it == connections_.end() || it->second.closing) return;
  say_bye(conn, it->second, std::string(bye_reason::lagging), config_.lagging_retry_min_ms, config_.lagging_retry_max_ms,
          close_code::lagging);
}

void EdgeNode::shutdown(TimeMs) {
  shutting_down_ = true;
  for (auto& [conn, c] : connections_) {
    if (c.closing) continue;
    TimeMs min_ms = shutdown_retry_min(config_, random_);
    say_bye(conn, c, std::string(bye_reason::shutdown), min_ms, min_ms + config_.shutdown_retry_spread_ms, close_code::going_away);
  }
}

void EdgeNode::say_bye(ConnId conn, Connection& c, std::string reason, TimeMs min_ms,
                       TimeMs max_ms, int code) {
  write_frame(conn, Bye{reason, min_ms, max_ms});
  close(conn, c, code, std::move(reason));
}

void EdgeNode::close(ConnId conn, Connection& c, int code, std::string reason) {
  c.closing = true;
  outputs_.push_back(EdgeClose{conn, code, std::move(reason)});
}

// ---- writing ------------------------------------------------------------------------------

// An answer that arrives later (a commit's ack, nack or err) goes only to a connection that is
// still open and not closing: nothing may follow an EdgeClose.
bool EdgeNode::writable(ConnId conn) const {
  auto it = connections_.find(conn);
  return conn != 0 && it != connections_.end() && !it->second.closing;
}

void EdgeNode::write(ConnId conn, std::string text, std::string_view type) {
  outputs_.push_back(EdgeWrite{conn, std::make_shared<const std::string>(std::move(text)), type});
}

void EdgeNode::write_frame(ConnId conn, const Frame& frame) {
  write(conn, serialize(frame), frame_type(frame));
}

void EdgeNode::send_error(ConnId conn, ErrorCode code, std::string msg,
                          const std::optional<std::string>& rid) {
  ++counters_.errors_out[std::string(to_string(code))];
  write_frame(conn, Err{code, std::move(msg), rid});
}

void EdgeNode::send_nack(ConnId conn, const std::string& conv, const std::string& id,
                         ErrorCode code, std::string msg, bool retry,
                         const std::optional<std::string>& rid) {
  ++counters_.errors_out[std::string(to_string(code))];
  write_frame(conn, Nack{conv, id, code, std::move(msg), retry, rid});
}

}  // namespace waymark

// ---- relaying ------------------------------------------------------------------------------

namespace waymark {

std::vector<UpstreamOp> EdgeNode::take_upstream() {
  std::vector<UpstreamOp> out;
  out.swap(upstream_);
  return out;
}

std::optional<TimeMs> EdgeNode::oldest_staged_at() const {
  if (staged_times_.empty()) return std::nullopt;
  return *staged_times_.begin();
}

Status EdgeNode::recover_staged(TimeMs now) {
  if (!config_.relay) return ok_status();
  auto staged = reader_.staged_messages();
  if (!staged.ok()) return staged.error();
  for (auto& m : staged.value()) {
    auto parsed = parse_frame(m.frame, Direction::from_edge);
    Msg* msg = parsed.ok() ? std::get_if<Msg>(&parsed.value()) : nullptr;
    if (!msg) continue;  // a frame this node wrote itself; unreadable only if the disk lies
    staged_added(m.tenant, m.conv, m.id, msg->ts);
    upstream_.push_back(UpstreamSend{m.tenant, std::move(*msg)});
  }
  (void)now;
  return ok_status();
}

// Held while the conversation has local subscribers or staged sends; released with a linger.
void EdgeNode::hold_interest(const TopicKey& key, Seq after) {
  Interest& interest = interest_[key];
  note_heads(key, 0, after);
  if (interest.linger_until) {
    interest_deadlines_.erase({interest.linger_until, key});
    interest.linger_until = 0;
  }
  if (interest.on) return;
  interest.on = true;
  upstream_.push_back(UpstreamInterest{key.first, key.second, true, after, false});
}

void EdgeNode::note_heads(const TopicKey& key, Seq upstream_head, Seq local_head) {
  auto it = interest_.find(key);
  if (it == interest_.end()) return;
  Interest& interest = it->second;
  auto lag = [](const Interest& i) -> std::uint64_t {
    return i.upstream_head > i.local_head ? i.upstream_head - i.local_head : 0;
  };
  std::uint64_t& total = links_[key.first].replication_lag;
  total -= std::min(total, lag(interest));
  interest.upstream_head = std::max(interest.upstream_head, upstream_head);
  interest.local_head = std::max(interest.local_head, local_head);
  total += lag(interest);
}

void EdgeNode::release_interest(const TopicKey& key, TimeMs now) {
  auto it = interest_.find(key);
  if (it == interest_.end() || !it->second.on) return;
  if (it->second.staged > 0 || it->second.hists > 0 || topics_.count(key)) return;
  if (it->second.linger_until) interest_deadlines_.erase({it->second.linger_until, key});
  it->second.linger_until = std::max<TimeMs>(now, 1) + config_.interest_linger_ms;
  interest_deadlines_.insert({it->second.linger_until, key});
}

void EdgeNode::staged_added(const std::string& tenant, const std::string& conv,
                            const std::string& id, TimeMs at) {
  if (!staged_.emplace(std::make_tuple(tenant, conv, id), at).second) return;
  staged_times_.insert(at);
  counters_.staged_now = staged_.size();
  TopicKey key{tenant, conv};
  Interest& interest = interest_[key];
  ++interest.staged;
  // Held and not lingering: nothing changes, and the local head it would note is noted by
  // every replicated msg anyway (no read transaction per staged send).
  if (interest.on && !interest.linger_until) return;
  auto head = reader_.head(tenant, conv);
  hold_interest(key, head.ok() ? head.value() : 0);
}

void EdgeNode::staged_removed(const std::string& tenant, const std::string& conv,
                              const std::string& id, TimeMs now) {
  auto it = staged_.find(std::make_tuple(tenant, conv, id));
  if (it == staged_.end()) return;
  staged_times_.erase(staged_times_.find(it->second));
  staged_.erase(it);
  counters_.staged_now = staged_.size();
  TopicKey key{tenant, conv};
  auto interest = interest_.find(key);
  if (interest == interest_.end()) return;
  if (interest->second.staged > 0) --interest->second.staged;
  release_interest(key, now);
}

// A replicated msg did not reach the log: deliver again from what did.
void EdgeNode::rewind_upstream(const std::string& tenant, const std::string& conv) {
  auto head = reader_.head(tenant, conv);
  if (!head.ok()) return;
  upstream_.push_back(UpstreamInterest{tenant, conv, true, head.value(), true});
}

void EdgeNode::fan_out_provisional(const TopicKey& key,
                                   const std::shared_ptr<const std::string>& frame) {
  auto topic = topics_.find(key);
  if (topic == topics_.end()) return;
  EdgeFanout fanout{{}, frame, "msg"};
  for (ConnId subscriber : topic->second.subscribers) {
    auto c = connections_.find(subscriber);
    if (c == connections_.end() || c->second.closing || !c->second.provisional) continue;
    auto sub = c->second.subs.find(key.second);
    if (sub == c->second.subs.end() || !sub->second.live) continue;
    fanout.conns.push_back(subscriber);
    ++counters_.provisional_deliveries;
  }
  push_fanout(std::move(fanout));
}

void EdgeNode::set_upstream_path(const std::string& tenant, const std::vector<std::string>& upstream,
                                 TimeMs now) {
  UpstreamLinkStatus& link = links_[tenant];
  if (std::find(upstream.begin(), upstream.end(), config_.node) != upstream.end()) {
    std::string path = config_.node;
    for (const auto& node : upstream) path += " -> " + node;
    link.stopped = true;
    link.reason = "cycle: this node is on its own upstream path (" + path + ")";
    upstream_.push_back(UpstreamStop{tenant, link.reason});
    AuditRecord record;
    record.ts = now;
    record.event = "upstream_refused";
    record.tenant = tenant;
    record.detail = link.reason;
    audit(std::move(record), now, true);
    return;
  }
  path_.assign(1, config_.node);
  path_.insert(path_.end(), upstream.begin(), upstream.end());
  // A relay below this node that is now above it too closes a cycle: refuse it.
  for (auto& [conn, c] : connections_) {
    if (c.closing || !c.relay_node) continue;
    if (std::find(path_.begin(), path_.end(), *c.relay_node) == path_.end()) continue;
    send_error(conn, ErrorCode::unauthorized,
               "cycle: relay \"" + *c.relay_node + "\" is on this node's upstream path",
               std::nullopt);
    close(conn, c, close_code::unauthorized, "unauthorized");
  }
}

void EdgeNode::on_upstream(const std::string& tenant, const ClientEvent& event, TimeMs now) {
  std::visit(
      Overloaded{
          [&](const MessageEvent& message) {
            if (!message.msg.seq) return;
            note_heads({tenant, message.msg.conv}, *message.msg.seq, 0);
            PendingWrite pending;
            pending.tenant = tenant;
            pending.conv = message.msg.conv;
            pending.id = message.msg.id;
            pending.seq = *message.msg.seq;
            pending.what = WriteKind::replicate;
            persist(WriteRequest{0, ReplicateRequest{tenant, message.msg}}, std::move(pending));
          },
          [&](const ReceiptEvent& receipt) {
            PendingWrite pending;
            pending.tenant = tenant;
            pending.conv = receipt.conv;
            pending.what = WriteKind::upstream_receipt;
            pending.user = receipt.user;
            pending.kind = receipt.kind;
            persist(WriteRequest{0, ReceiptRequest{tenant, receipt.user, receipt.conv, receipt.seq,
                                                   receipt.kind}},
                    std::move(pending));
          },
          [&](const HeadEvent& head) {
            // The link's subscription told the upstream's head: hist can wait for it.
            if (auto interest = interest_.find({tenant, head.conv}); interest != interest_.end())
              interest->second.synced = true;
            note_heads({tenant, head.conv}, head.head, 0);
            if (hist_ready({tenant, head.conv})) answer_parked_hists({tenant, head.conv}, false, now);
          },
          [&](const TypingEvent& typing) {
            send_to_topic({tenant, typing.conv}, Typing{typing.conv, typing.on, typing.user, std::nullopt}, 0);
          },
          [&](const PresenceEvent& presence) {
            // Users present on other edges; this node's own users it announces itself.
            TopicKey key{tenant, presence.conv};
            std::set<std::string>& elsewhere = upstream_present_[key];
            bool changed = presence.on ? elsewhere.insert(presence.user).second
                                       : elsewhere.erase(presence.user) > 0;
            if (elsewhere.empty()) upstream_present_.erase(key);
            auto topic = topics_.find(key);
            if (!changed || (topic != topics_.end() && topic->second.present.count(presence.user)))
              return;
            send_to_topic(key, Presence{presence.conv, presence.user, presence.on}, 0);
          },
          [&](const RowEvent& row) {
            if (row.state != RowState::failed || !row.error) return;
            PendingWrite pending;
            pending.tenant = tenant;
            pending.conv = row.conv;
            pending.id = row.id;
            pending.what = WriteKind::dead_letter;
            pending.reason = *row.error;
            persist(WriteRequest{0, DeadLetterRequest{tenant, row.conv, row.id, *row.error, now}},
                    std::move(pending));
          },
          [&](const ConnectionEvent& connection) {
            UpstreamLinkStatus& link = links_[tenant];
            if (link.state == ConnectionState::online && connection.state != ConnectionState::online)
              ++link.reconnects;
            link.state = connection.state;
            link.reason = connection.reason;
            if (connection.state != ConnectionState::online)  // heads are news again after a reconnect
              for (auto& [key, interest] : interest_)
                if (key.first == tenant) interest.synced = false;
            if (connection.token_refused) link.stopped = true;
            if (connection.state == ConnectionState::online) {
              link.stopped = false;  // a new token (SIGHUP) was taken
              set_upstream_path(tenant, connection.path, now);
            }
          },
          [&](const auto&) {},
      },
      event);
}

}  // namespace waymark
