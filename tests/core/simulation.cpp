// The simulated network, edge host and apps behind simulation.h.
#include "simulation.h"

#include <algorithm>
#include <boost/json.hpp>
#include <sstream>
#include <cstdio>
#include <cstdlib>

#include "waymark/codec.h"
#include "waymark/write_batch.h"
#include "overloaded.h"

namespace waymark::sim {
namespace {

int rank(RowState state) {
  switch (state) {
    case RowState::queued: return 0;
    case RowState::stored: return 1;
    case RowState::sequenced: return 2;
    case RowState::delivered: return 3;
    case RowState::read: return 4;
    case RowState::failed: return -1;
  }
  return -1;
}

}  // namespace

struct Simulation::Link {
  ConnId id = 0;
  int client = 0;
  int client_generation = 0;
  ConnectionId client_conn = 0;
  std::uint64_t edge_generation = 0;
  bool edge_open = false;    // between the edge's on_connect and on_disconnect
  bool client_open = true;   // until the client closed it or was told it closed
  TimeMs to_edge_tail = 0;   // frames keep their order within a connection
  TimeMs to_client_tail = 0;
  std::optional<TimeMs> cutoff;  // frames arriving after this are lost (a cut)
  // The edge's wire guarantee, checked per conv: the next msg seq this connection must get
  // (0: not known yet, the sub asked for live only).
  std::map<std::string, Seq> expect;
  int hello_seen = 0;  // a repeated hello is refused by the edge and subscribes nothing
};

struct Simulation::Client {
  std::string user;
  std::unique_ptr<SeededRandom> random;
  std::unique_ptr<ClientSession> session;
  int generation = 0;
  std::string saved_state;
  std::map<ConnectionId, ConnId> links;  // the current session's sockets
  std::optional<TimeMs> timer_at;
};

Simulation::Simulation(std::uint64_t seed, SimOptions options)
    : seed_(seed), options_(options), random_(seed), start_(now_), edge_random_(seed ^ 0xed9e) {
  for (int i = 0; i < options_.convs; ++i) convs_.push_back("conv-" + std::to_string(i));
  for (int i = 0; i < options_.clients; ++i) {
    auto client = std::make_unique<Client>();
    client->user = "user" + std::to_string(i);
    clients_.push_back(std::move(client));
    AppView view;
    view.user = "user" + std::to_string(i);
    views_.push_back(std::move(view));
  }
}

Simulation::~Simulation() = default;

void Simulation::at(TimeMs when, Action action) { queue_.emplace(std::max(when, now_), std::move(action)); }

TimeMs Simulation::latency() {
  return options_.min_latency_ms +
         static_cast<TimeMs>(random_.below(
             static_cast<std::uint64_t>(options_.max_latency_ms - options_.min_latency_ms + 1)));
}

bool Simulation::chance(double p) {
  return static_cast<double>(random_.below(1'000'000)) < p * 1'000'000.0;
}

// ---- the edge host --------------------------------------------------------------------------

void Simulation::start_edge() {
  EdgeConfig config;
  config.node = "sim-edge";
  config.heartbeat_ms = options_.heartbeat_ms;
  edge_ = std::make_unique<EdgeNode>(config, store_, auth_, edge_random_);
  edge_up_ = true;
}

void Simulation::crash_edge() {
  if (!edge_up_) return;
  ++stats_.crashes;
  edge_up_ = false;
  edge_.reset();
  ++edge_generation_;
  // Writes in the writer at the crash: either their commit made it (never acked) or not.
  if (!pending_writes_.empty() && chance(0.5)) (void)commit_batch(store_, pending_writes_);
  pending_writes_.clear();
  for (auto& [id, link] : links_) {
    if (!link->edge_open) continue;
    link->edge_open = false;
    link->cutoff = now_;
    if (!chance(options_.half_open_probability)) {
      ConnId link_id = id;
      at(now_ + latency(), [this, link_id] {
        auto it = links_.find(link_id);
        if (it == links_.end() || !it->second->client_open) return;
        Link& l = *it->second;
        Client& c = *clients_[static_cast<std::size_t>(l.client)];
        l.client_open = false;
        if (c.generation != l.client_generation) return;
        c.session->on_close(l.client_conn, now_);
        drain_client(l.client);
      });
    }
  }
  at(now_ + 500 + static_cast<TimeMs>(random_.below(2500)), [this] { start_edge(); });
}

void Simulation::schedule_commit() {
  if (commit_scheduled_) return;
  commit_scheduled_ = true;
  at(now_ + 1 + static_cast<TimeMs>(random_.below(15)), [this] { commit(); });
}

void Simulation::commit() {
  commit_scheduled_ = false;
  if (!edge_up_ || pending_writes_.empty()) return;
  std::vector<WriteRequest> batch;
  batch.swap(pending_writes_);
  if (faults_ && chance(options_.store_failure_probability)) {
    ++stats_.failed_commits;
    edge_->on_commit_failed(batch, make_error(ErrorCode::unavailable, "simulated disk failure"), now_);
  } else {
    // Committed now, visible to readers at once; the outcome reaches the edge's thread a
    // moment later, as it does from the real writer thread.
    auto outcomes = commit_batch(store_, batch);
    std::uint64_t generation = edge_generation_;
    at(now_ + static_cast<TimeMs>(random_.below(5)),
       [this, generation, batch = std::move(batch), outcomes = std::move(outcomes)] {
         if (!edge_up_ || generation != edge_generation_) return;  // crashed before acking
         edge_->on_commit(batch, outcomes, now_);
         drain_edge();
       });
    return;
  }
  drain_edge();
}

void Simulation::drain_edge() {
  drain_outputs(
      *edge_,
      [&](EdgeWrite& write) {
        auto it = links_.find(write.conn);
        if (it == links_.end() || !it->second->edge_open) return;
        Link& link = *it->second;
        check_wire_order(link, *write.text);
        if (std::getenv("SIM_TRACE")) fprintf(stderr, "%lld <edge %llu %s\n", (long long)(now_-start_), (unsigned long long)link.id, write.text->c_str());
        int copies = faults_ && chance(options_.duplicate_probability) ? 2 : 1;
        stats_.duplicated += static_cast<std::uint64_t>(copies - 1);
        for (int i = 0; i < copies; ++i) {
          TimeMs arrive = std::max(link.to_client_tail, now_ + latency());
          link.to_client_tail = arrive;
          ConnId link_id = link.id;
          auto text = write.text;
          at(arrive, [this, link_id, text, arrive] {
            auto found = links_.find(link_id);
            if (found == links_.end()) return;
            Link& l = *found->second;
            if (!l.client_open || (l.cutoff && arrive > *l.cutoff)) return;
            Client& c = *clients_[static_cast<std::size_t>(l.client)];
            if (c.generation != l.client_generation) return;
            ++stats_.frames;
            if (text->find("\"dup\":true") != std::string::npos) ++stats_.dup_acks;
            if (text->rfind("{\"t\":\"nack\"", 0) == 0) ++stats_.nacks;
            c.session->on_frame(l.client_conn, *text, now_);
            drain_client(l.client);
          });
        }
      },
      [&](EdgeClose& close) {
        auto it = links_.find(close.conn);
        if (it == links_.end() || !it->second->edge_open) return;
        Link& link = *it->second;
        link.edge_open = false;
        edge_->on_disconnect(close.conn, now_);
        TimeMs arrive = std::max(link.to_client_tail, now_ + latency());
        ConnId link_id = link.id;
        at(arrive, [this, link_id] {
          auto found = links_.find(link_id);
          if (found == links_.end() || !found->second->client_open) return;
          Link& l = *found->second;
          l.client_open = false;
          Client& c = *clients_[static_cast<std::size_t>(l.client)];
          if (c.generation != l.client_generation) return;
          c.session->on_close(l.client_conn, now_);
          drain_client(l.client);
        });
      },
      [&](EdgePersist& persist) {
        pending_writes_.push_back(std::move(persist.request));
        schedule_commit();
      },
      [&] { return edge_up_; });
}

void Simulation::note_subscriptions(Link& link, const std::string& text) {
  auto frame = parse_frame(text, Direction::from_client);
  if (!frame.ok()) return;
  if (auto* sub = std::get_if<Sub>(&frame.value()))
    link.expect[sub->request.conv] = sub->request.after ? *sub->request.after + 1 : 0;
  if (auto* hello = std::get_if<Hello>(&frame.value()); hello && !link.hello_seen++)
    for (const auto& request : hello->subs)
      link.expect[request.conv] = request.after ? *request.after + 1 : 0;
}

void Simulation::check_wire_order(Link& link, const std::string& text) {
  if (text.rfind(R"({"t":"msg")", 0) != 0) return;
  auto frame = parse_frame(text, Direction::from_edge);
  if (!frame.ok()) return;
  const Msg& msg = std::get<Msg>(frame.value());
  auto it = link.expect.find(msg.conv);
  if (it == link.expect.end()) {
    wire_violations_.push_back("msg " + msg.conv + "/" + std::to_string(*msg.seq) +
                               " on a connection not subscribed to it");
    return;
  }
  if (it->second != 0 && *msg.seq != it->second)
    wire_violations_.push_back("connection " + std::to_string(link.id) + " got " + msg.conv +
                               "/" + std::to_string(*msg.seq) + " where " +
                               std::to_string(it->second) + " was next");
  it->second = *msg.seq + 1;
}

// ---- clients --------------------------------------------------------------------------------

void Simulation::drain_client(int index) {
  Client& client = *clients_[static_cast<std::size_t>(index)];
  for (;;) {
    auto io = client.session->take_io();
    auto events = client.session->take_events();
    if (io.empty() && events.empty()) break;
    for (auto& event : events) handle_client_event(index, event);
    for (auto& action : io) {
      std::visit(
          Overloaded{
              [&](OpenSocket& open) {
                ConnectionId cid = open.connection;
                int generation = client.generation;
                ++stats_.sockets_opened;
                if (!edge_up_ || (faults_ && chance(options_.refuse_probability))) {
                  ++stats_.refused;
                  at(now_ + latency(), [this, index, cid, generation] {
                    Client& c = *clients_[static_cast<std::size_t>(index)];
                    if (c.generation != generation) return;
                    c.session->on_close(cid, now_);
                    drain_client(index);
                  });
                  return;
                }
                auto link = std::make_unique<Link>();
                link->id = next_link_++;
                link->client = index;
                link->client_generation = generation;
                link->client_conn = cid;
                link->edge_generation = edge_generation_;
                ConnId link_id = link->id;
                client.links[cid] = link_id;
                links_[link_id] = std::move(link);
                at(now_ + latency(), [this, index, link_id] {
                  Link& l = *links_.at(link_id);
                  Client& c = *clients_[static_cast<std::size_t>(index)];
                  if (c.generation != l.client_generation || !l.client_open) return;
                  if (!edge_up_ || l.edge_generation != edge_generation_ || l.cutoff) {
                    l.client_open = false;
                    c.session->on_close(l.client_conn, now_);
                    drain_client(index);
                    return;
                  }
                  l.edge_open = true;
                  edge_->on_connect(link_id, now_);
                  drain_edge();
                  c.session->on_open(l.client_conn, now_);
                  drain_client(index);
                });
              },
              [&](WriteFrame& write) {
                auto found = client.links.find(write.connection);
                if (found == client.links.end()) return;
                Link& link = *links_.at(found->second);
                if (!link.client_open) return;
                int copies = faults_ && chance(options_.duplicate_probability) ? 2 : 1;
                stats_.duplicated += static_cast<std::uint64_t>(copies - 1);
                for (int i = 0; i < copies; ++i) {
                  TimeMs arrive = std::max(link.to_edge_tail, now_ + latency());
                  link.to_edge_tail = arrive;
                  ConnId link_id = link.id;
                  std::uint64_t generation = link.edge_generation;
                  auto text = std::make_shared<std::string>(write.text);
                  at(arrive, [this, link_id, text, arrive, generation] {
                    Link& l = *links_.at(link_id);
                    if (!edge_up_ || generation != edge_generation_ || !l.edge_open) return;
                    if (l.cutoff && arrive > *l.cutoff) return;
                    ++stats_.frames;
                    note_subscriptions(l, *text);
                    if (std::getenv("SIM_TRACE")) fprintf(stderr, "%lld >edge %llu %s\n", (long long)(now_-start_), (unsigned long long)link_id, text->c_str());
                    edge_->on_text(link_id, *text, now_);
                    drain_edge();
                  });
                }
              },
              [&](CloseSocket& close) {
                auto found = client.links.find(close.connection);
                if (found == client.links.end()) return;
                Link& link = *links_.at(found->second);
                link.client_open = false;
                ConnId link_id = link.id;
                std::uint64_t generation = link.edge_generation;
                at(std::max(link.to_edge_tail, now_ + latency()), [this, link_id, generation] {
                  Link& l = *links_.at(link_id);
                  if (!edge_up_ || generation != edge_generation_ || !l.edge_open) return;
                  l.edge_open = false;
                  edge_->on_disconnect(link_id, now_);
                  drain_edge();
                });
              },
          },
          action);
    }
  }
  if (auto deadline = client.session->next_deadline()) {
    TimeMs when = std::max(*deadline, now_);
    if (!client.timer_at || when < *client.timer_at) {
      client.timer_at = when;
      int generation = client.generation;
      at(when, [this, index, when, generation] {
        Client& c = *clients_[static_cast<std::size_t>(index)];
        if (c.generation != generation || c.timer_at != when) return;
        c.timer_at.reset();
        c.session->on_timer(now_);
        drain_client(index);
      });
    }
  }
}

void Simulation::handle_client_event(int index, ClientEvent& event) {
  AppView& view = views_[static_cast<std::size_t>(index)];
  Client& client = *clients_[static_cast<std::size_t>(index)];
  auto violation = [&](std::string text) {
    view.violations.push_back(view.user + " at t+" + std::to_string(now_ - start_) + "ms: " + text);
  };
  std::visit(Overloaded{
                 [&](RowEvent& row) {
                   if (row.state == RowState::failed) {
                     violation("row " + row.id + " failed: " + (row.error ? row.error->message : ""));
                     return;
                   }
                   auto it = view.rows.find(row.id);
                   if (it != view.rows.end() && rank(row.state) < rank(it->second))
                     violation("row " + row.id + " went back from " +
                               std::string(to_string(it->second)) + " to " +
                               std::string(to_string(row.state)));
                   if (it == view.rows.end() || rank(row.state) > rank(it->second))
                     view.rows[row.id] = row.state;
                   if (row.own && row.seq) {
                     auto acked = view.acked_seq.find(row.id);
                     if (acked != view.acked_seq.end() && acked->second != *row.seq)
                       violation("row " + row.id + " changed seq");
                     view.acked_seq[row.id] = *row.seq;
                   }
                 },
                 [&](MessageEvent& message) {
                   view.history[message.msg.conv].emplace_back(*message.msg.seq, message.msg.id);
                 },
                 [&](CursorEvent& cursor) {
                   auto it = view.last_cursor.find(cursor.conv);
                   if (it != view.last_cursor.end() && cursor.seq <= it->second)
                     violation("cursor of " + cursor.conv + " moved from " +
                               std::to_string(it->second) + " to " + std::to_string(cursor.seq));
                   view.last_cursor[cursor.conv] = cursor.seq;
                 },
                 [&](StateChangedEvent&) { client.saved_state = client.session->export_state(); },
                 [&](auto&) {},
             },
             event);
}

void Simulation::reload_client(int index) {
  Client& client = *clients_[static_cast<std::size_t>(index)];
  ++stats_.reloads;
  // The tab goes away: its sockets close (the edge hears it a little later).
  for (auto& [cid, link_id] : client.links) {
    Link& link = *links_.at(link_id);
    if (!link.client_open) continue;
    link.client_open = false;
    std::uint64_t generation = link.edge_generation;
    ConnId id = link_id;
    at(std::max(link.to_edge_tail, now_ + latency()), [this, id, generation] {
      Link& l = *links_.at(id);
      if (!edge_up_ || generation != edge_generation_ || !l.edge_open) return;
      l.edge_open = false;
      edge_->on_disconnect(id, now_);
      drain_edge();
    });
  }
  client.links.clear();
  client.timer_at.reset();
  ++client.generation;
  client.random = std::make_unique<SeededRandom>(random_.next_u64());
  client.session = std::make_unique<ClientSession>(ClientConfig{}, "dev:" + client.user,
                                                   "tab-" + std::to_string(client.generation),
                                                   *client.random);
  auto imported = client.session->import_state(client.saved_state, now_);
  if (!imported.ok())
    views_[static_cast<std::size_t>(index)].violations.push_back("import failed: " +
                                                                 imported.error().message);
  client.session->start(now_);
  drain_client(index);
}

void Simulation::cut_link(ConnId link_id) {
  Link& link = *links_.at(link_id);
  ++stats_.cuts;
  link.cutoff = now_ + static_cast<TimeMs>(random_.below(static_cast<std::uint64_t>(options_.max_latency_ms)));
  if (!chance(options_.half_open_probability)) {  // the client hears of it; else heartbeats find it
    at(now_ + latency(), [this, link_id] {
      Link& l = *links_.at(link_id);
      if (!l.client_open) return;
      l.client_open = false;
      Client& c = *clients_[static_cast<std::size_t>(l.client)];
      if (c.generation != l.client_generation) return;
      c.session->on_close(l.client_conn, now_);
      drain_client(l.client);
    });
  }
  std::uint64_t generation = link.edge_generation;
  at(now_ + static_cast<TimeMs>(random_.below(20000)), [this, link_id, generation] {
    Link& l = *links_.at(link_id);
    if (!edge_up_ || generation != edge_generation_ || !l.edge_open) return;
    l.edge_open = false;
    edge_->on_disconnect(link_id, now_);
    drain_edge();
  });
}

// ---- the run --------------------------------------------------------------------------------

bool Simulation::converged() const {
  if (!edge_up_ || !pending_writes_.empty()) return false;
  for (const auto& client : clients_) {
    if (client->session->outbox_size() != 0) return false;
    if (client->session->connection_state() != ConnectionState::online) return false;
  }
  for (const auto& conv : convs_) {
    Seq head = const_cast<MemoryLogStore&>(store_).head("dev", conv).value();
    for (const auto& client : clients_)
      if (client->session->cursor(conv).value_or(0) != head) return false;
  }
  return true;
}

void Simulation::step_until(TimeMs end, bool stop_when_converged) {
  while (!queue_.empty() && queue_.begin()->first <= end) {
    auto node = queue_.extract(queue_.begin());
    now_ = node.key();
    node.mapped()();
    if (stop_when_converged && converged()) return;
  }
  now_ = std::max(now_, end);
}

bool Simulation::run() {
  start_edge();
  for (int i = 0; i < options_.clients; ++i) {
    Client& client = *clients_[static_cast<std::size_t>(i)];
    client.random = std::make_unique<SeededRandom>(random_.next_u64());
    client.session = std::make_unique<ClientSession>(ClientConfig{}, "dev:" + client.user, "tab-0",
                                                     *client.random);
    for (const auto& conv : convs_) client.session->subscribe(conv, Seq{0}, now_);
    client.session->start(now_ + static_cast<TimeMs>(random_.below(100)));
    drain_client(i);
  }
  auto random_time = [&] { return now_ + static_cast<TimeMs>(random_.below(static_cast<std::uint64_t>(options_.fault_window_ms))); };

  for (int i = 0; i < options_.clients; ++i) {
    for (int n = 0; n < options_.sends_per_client; ++n) {
      at(random_time(), [this, i, n] {
        Client& c = *clients_[static_cast<std::size_t>(i)];
        const std::string& conv = convs_[random_.below(convs_.size())];
        JsonText body{boost::json::serialize(boost::json::object{{"text", c.user + " says " + std::to_string(n)}})};
        std::string id = c.session->send(conv, body, now_);
        views_[static_cast<std::size_t>(i)].sent_ids.insert(id);
        drain_client(i);
      });
    }
    for (int n = 0; n < 4; ++n) {  // reading, typing and scrolling back, to exercise them
      at(random_time(), [this, i] {
        Client& c = *clients_[static_cast<std::size_t>(i)];
        const std::string& conv = convs_[random_.below(convs_.size())];
        if (auto cursor = c.session->cursor(conv)) c.session->mark_read(conv, *cursor, now_);
        c.session->set_typing(conv, true, now_);
        c.session->request_history(conv, std::nullopt, std::nullopt, 20, now_);
        drain_client(i);
      });
    }
  }
  for (int n = 0; n < options_.cuts; ++n) {
    at(random_time(), [this] {
      std::vector<ConnId> open;
      for (const auto& [id, link] : links_)
        if (link->client_open && link->edge_open) open.push_back(id);
      if (!open.empty()) cut_link(open[random_.below(open.size())]);
    });
  }
  for (int n = 0; n < options_.edge_crashes; ++n) at(random_time(), [this] { crash_edge(); });
  for (int n = 0; n < options_.client_reloads; ++n) {
    at(random_time(), [this] { reload_client(static_cast<int>(random_.below(clients_.size()))); });
  }

  step_until(start_ + options_.fault_window_ms, false);
  faults_ = false;
  step_until(start_ + options_.fault_window_ms + options_.settle_limit_ms, true);
  return converged();
}

std::vector<std::string> Simulation::check_properties() const {
  std::vector<std::string> problems = wire_violations_;
  for (const auto& view : views_)
    problems.insert(problems.end(), view.violations.begin(), view.violations.end());

  // The store: dense seqs, one seq per id, ids all sent by somebody.
  std::map<std::string, std::vector<std::pair<Seq, std::string>>> stored;  // conv -> (seq, id)
  std::map<std::pair<std::string, std::string>, Seq> seq_of;              // (conv, id) -> seq
  for (const auto& [key, seq] : store_.data().ids) {
    const auto& [tenant, conv, id] = key;
    stored[conv].emplace_back(seq, id);
    seq_of[{conv, id}] = seq;
  }
  std::set<std::string> all_sent;
  for (const auto& view : views_) all_sent.insert(view.sent_ids.begin(), view.sent_ids.end());
  std::size_t stored_count = 0;
  for (auto& [conv, entries] : stored) {
    std::sort(entries.begin(), entries.end());
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first != i + 1)
        problems.push_back(conv + ": stored seqs not dense at " + std::to_string(i + 1));
      if (!all_sent.count(entries[i].second))
        problems.push_back(conv + ": stored id " + entries[i].second + " was never sent");
    }
    stored_count += entries.size();
  }
  if (stored_count != all_sent.size())
    problems.push_back("stored " + std::to_string(stored_count) + " messages for " +
                       std::to_string(all_sent.size()) + " sends");

  for (const auto& view : views_) {
    // Every send is one row that reached sequenced, with the seq the store holds.
    for (const auto& id : view.sent_ids) {
      auto row = view.rows.find(id);
      if (row == view.rows.end()) {
        problems.push_back(view.user + ": no row for sent id " + id);
        continue;
      }
      if (rank(row->second) < rank(RowState::sequenced))
        problems.push_back(view.user + ": row " + id + " stuck at " + std::string(to_string(row->second)));
      auto acked = view.acked_seq.find(id);
      bool found = false;
      for (const auto& [key, seq] : seq_of) {
        if (key.second != id) continue;
        found = true;
        if (acked == view.acked_seq.end() || acked->second != seq)
          problems.push_back(view.user + ": row " + id + " seq differs from the store's");
      }
      if (!found) problems.push_back(view.user + ": sent id " + id + " not stored");
    }
    // The same gap-free history as the store, each message exactly once.
    for (const auto& [conv, entries] : stored) {
      auto history = view.history.find(conv);
      std::vector<std::pair<Seq, std::string>> seen =
          history == view.history.end() ? std::vector<std::pair<Seq, std::string>>{} : history->second;
      if (seen != entries)
        problems.push_back(view.user + ": history of " + conv + " has " +
                           std::to_string(seen.size()) + " messages, the store " +
                           std::to_string(entries.size()) + " (or they differ)");
    }
  }
  return problems;
}

std::string Simulation::summary() const {
  std::ostringstream out;
  out << "seed " << seed_ << ": t+" << (now_ - start_) << "ms, " << store_.data().ids.size()
      << " messages stored, " << stats_.frames << " frames delivered (" << stats_.duplicated
      << " duplicated), " << stats_.sockets_opened << " sockets opened (" << stats_.refused
      << " refused), " << stats_.cuts << " cuts, " << stats_.crashes << " edge crashes, "
      << stats_.reloads << " reloads, " << stats_.failed_commits << " failed commits, "
      << stats_.nacks << " nacks, " << stats_.dup_acks << " dup acks";
  return out.str();
}

}  // namespace waymark::sim
