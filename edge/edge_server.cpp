// The lws side of the edge: one protocol callback, a single switch translating lws events into
// EdgeNode calls; writes only in SERVER_WRITEABLE with LWS_PRE headroom; bounded queues.
#include "edge_server.h"

#include "waymark/codec.h"
#include "ws_frame.h"

#include <boost/json/serialize.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

namespace waymark::edge {
namespace {

constexpr const char* kProtocolName = "waymark.v1";
// One writeable callback writes every queued frame up to this many bytes in one send.
constexpr std::size_t kBytesPerWriteable = 64 * 1024;
constexpr std::size_t kHttpChunk = 16384;

// Randomness for session and trace ids from OpenSSL's CSPRNG, drawn 4 KiB at a time: one
// RAND_bytes call (and its fork check, a getpid) per 512 draws instead of one per draw, which
// was 7.8% of the edge's CPU under ingest (docs/benchmarks.md, "Hot paths"). Same quality.
// Not thread-safe: the lws service thread only.
class OsRandom final : public RandomSource {
 public:
  std::uint64_t next_u64() override {
    if (next_ == buffer_.size()) refill();
    return buffer_[next_++];
  }

 private:
  void refill() {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(buffer_.data()),
                   static_cast<int>(buffer_.size() * sizeof buffer_[0])) != 1) {
      static std::random_device device;  // OpenSSL failed to seed: still unpredictable enough
      for (auto& value : buffer_) value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }
    next_ = 0;
  }

  std::array<std::uint64_t, 512> buffer_{};
  std::size_t next_ = buffer_.size();
};

struct PerSession {  // lws's per-connection user data: just our id
  ConnId id;
};

// An audit record as a log line too: {"event":"audit","audit":true,"kind":<its event>,...}; the
// line has its own ts.
void log_audit(const AuditRecord& record) {
  boost::json::object fields = audit_object(record);
  fields.erase("ts");
  fields.erase("event");
  fields["audit"] = true;
  fields["kind"] = record.event;
  bool routine = record.event == "secret_reload";
  log_event(routine ? LogLevel::info : LogLevel::warn, "audit", std::move(fields));
}

}  // namespace

EdgeServer::EdgeServer(EdgeOptions options, LogStore& store, Authenticator& auth)
    : options_(std::move(options)), store_(store), auth_(auth), random_(std::make_unique<OsRandom>()) {
  // One largest frame must always fit in a queue, or every such message would lag its reader.
  options_.max_queue_bytes = std::max(options_.max_queue_bytes, 2 * options_.max_frame + 4096);
  EdgeConfig config = options_.node_config;
  config.node = options_.node;
  config.heartbeat_ms = options_.heartbeat_ms;
  config.max_frame = options_.max_frame;
  config.page_max_bytes = std::min(config.page_max_bytes, options_.max_queue_bytes / 4);
  config.relay = options_.upstream.has_value();
  node_ = std::make_unique<EdgeNode>(config, store_, auth_, *random_);
}

EdgeServer::~EdgeServer() {
  if (upstream_) upstream_->stop();
  if (context_) lws_context_destroy(context_);
  if (loop_) ev_loop_destroy(loop_);
  if (writer_) writer_->stop();
}

TimeMs EdgeServer::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Status EdgeServer::start() {
  protocols_.clear();
  // One protocol for everything: WebSocket at /ws and the dynamic HTTP routes. Listed first, it
  // also serves clients that do not name the subprotocol.
  protocols_.push_back(lws_protocols{kProtocolName, &EdgeServer::callback, sizeof(PerSession),
                                     options_.max_frame + 1, 0, this, 0});
  protocols_.push_back(lws_protocols{nullptr, nullptr, 0, 0, 0, nullptr, 0});

  // The web app's manifest (web/manifest.webmanifest); lws does not know the extension.
  static constexpr lws_protocol_vhost_options kMimeWebManifest{nullptr, nullptr, ".webmanifest", "application/manifest+json"};
  mime_mjs_ = lws_protocol_vhost_options{&kMimeWebManifest, nullptr, ".mjs", "text/javascript"};
  mime_wasm_ = lws_protocol_vhost_options{&mime_mjs_, nullptr, ".wasm", "application/wasm"};

  std::memset(&mount_root_, 0, sizeof mount_root_);
  mount_root_.mountpoint = "/";
  mount_root_.mountpoint_len = 1;
  mount_root_.origin = options_.web_dir.c_str();
  mount_root_.def = "index.html";
  mount_root_.origin_protocol = LWSMPRO_FILE;
  mount_root_.extra_mimetypes = &mime_wasm_;
  mount_root_.cache_max_age = 0;

  std::memset(&mount_sdk_, 0, sizeof mount_sdk_);
  mount_sdk_.mountpoint = "/sdk";
  mount_sdk_.mountpoint_len = 4;
  mount_sdk_.origin = options_.sdk_dir.c_str();
  mount_sdk_.def = "waymark.js";
  mount_sdk_.origin_protocol = LWSMPRO_FILE;
  mount_sdk_.extra_mimetypes = &mime_wasm_;
  mount_sdk_.mount_next = &mount_root_;

  std::memset(&mount_healthz_, 0, sizeof mount_healthz_);
  mount_healthz_.mountpoint = "/healthz";
  mount_healthz_.mountpoint_len = 8;
  mount_healthz_.protocol = kProtocolName;
  mount_healthz_.origin_protocol = LWSMPRO_CALLBACK;
  mount_healthz_.mount_next = options_.sdk_dir.empty() ? &mount_root_ : &mount_sdk_;

  std::memset(&mount_metrics_, 0, sizeof mount_metrics_);
  mount_metrics_.mountpoint = "/metrics";
  mount_metrics_.mountpoint_len = 8;
  mount_metrics_.protocol = kProtocolName;
  mount_metrics_.origin_protocol = LWSMPRO_CALLBACK;
  mount_metrics_.mount_next = &mount_healthz_;

  // Dead peers are found by sweep_idle() in the tick, not by lws's per-connection validity
  // timers: lws 4.1 keeps every timer in one sorted list and re-inserts a connection's timer on
  // each frame it receives, which stalled handshakes past about 9,000 connections
  // (docs/benchmarks.md). A policy with no hangup time turns those timers off.
  std::memset(&idle_policy_, 0, sizeof idle_policy_);

  loop_ = ev_loop_new(EVFLAG_AUTO);
  if (!loop_) return make_error(ErrorCode::unavailable, "listen: cannot create the event loop (libev)");
  void* foreign_loops[1] = {loop_};

  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.foreign_loops = foreign_loops;
  info.port = options_.port;
  info.iface = options_.host.c_str();
  info.protocols = protocols_.data();
  info.mounts = &mount_metrics_;
  info.retry_and_idle_policy = &idle_policy_;
  // UTF-8 is checked by the JSON parser, which answers err bad_frame and keeps the socket.
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBEV;
  info.user = this;
  // lws's own pending states (a TLS handshake, HTTP headers, the upgrade) end after this: a
  // slow-loris socket never reaches the node's hello deadline.
  info.timeout_secs = static_cast<unsigned int>(
      std::max<TimeMs>(1, (options_.node_config.handshake_timeout_ms + 999) / 1000));
  info.timeout_secs_ah_idle = info.timeout_secs;  // headers trickling in (lws's default: 10 s)
  if (!options_.tls_cert.empty()) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.ssl_cert_filepath = options_.tls_cert.c_str();
    info.ssl_private_key_filepath = options_.tls_key.c_str();
  }
  lws_set_log_level(LLL_ERR, nullptr);

  context_ = lws_create_context(&info);
  if (!context_)
    return make_error(ErrorCode::unavailable,
                      "listen: cannot serve on " + options_.host + ":" + std::to_string(options_.port) +
                          (options_.tls_cert.empty()
                               ? std::string(" (address in use or not available)")
                               : " (address in use, or the TLS certificate or key unusable)"));
  lws_vhost* vhost = lws_get_vhost_by_name(context_, "default");
  bound_port_ = vhost ? lws_get_vhost_listen_port(vhost) : options_.port;

  writer_ = std::make_unique<GroupCommitWriter>(store_, [this] { lws_cancel_service(context_); });
  if (options_.upstream) {
    // What was staged before a restart goes upstream again first, in the order it was staged.
    if (Status recovered = node_->recover_staged(now()); !recovered.ok())
      return make_error(ErrorCode::unavailable, "store: cannot read the staged sends: " +
                                                    recovered.error().message);
    upstream_ = std::make_unique<UpstreamLink>(*options_.upstream,
                                               [this] { lws_cancel_service(context_); });
    upstream_->start();
    log_event(LogLevel::info, "relaying",
              {{"upstream", options_.upstream->url.host + ":" +
                                std::to_string(options_.upstream->url.port) +
                                options_.upstream->url.path},
               {"tls", options_.upstream->url.tls},
               {"staged", node_->counters().staged_now}});
    flush();
  }
  lws_sul_schedule(context_, 0, &tick_.sul, &EdgeServer::on_tick, 100 * LWS_US_PER_MS);
  log_event(LogLevel::info, "listening",
            {{"host", options_.host}, {"port", bound_port_}, {"node", options_.node},
             {"data", options_.data_dir}, {"dev", options_.dev},
             {"tls", !options_.tls_cert.empty()}});
  return ok_status();
}

int EdgeServer::run() {
  while (!finished_) ev_run(loop_, EVRUN_ONCE);  // returns after activity or a timer
  log_event(LogLevel::info, "stopped", {{"connections_left", connections_.size()}});
  return 0;
}

void EdgeServer::request_shutdown() {
  shutdown_requested_ = true;
  if (context_) lws_cancel_service(context_);
}

void EdgeServer::request_reload() {
  reload_requested_ = true;
  if (context_) lws_cancel_service(context_);
}

// ---- the callback -----------------------------------------------------------------------

int EdgeServer::callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* server = static_cast<EdgeServer*>(lws_context_user(lws_get_context(wsi)));
  if (!server) return lws_callback_http_dummy(wsi, reason, user, in, len);
  return server->handle(wsi, reason, user, in, len);
}

int EdgeServer::handle(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* session = static_cast<PerSession*>(user);
  switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
      return phase_ == Phase::running ? 0 : 1;  // shutting down: accept nobody new

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
      char uri[64] = {0};
      int n = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
      if (n <= 0 || std::strcmp(uri, "/ws") != 0 || phase_ != Phase::running) return 1;
      return 0;
    }

    case LWS_CALLBACK_ESTABLISHED: {
      session->id = next_conn_++;
      connections_[session->id].wsi = wsi;
      connections_[session->id].last_heard = std::chrono::steady_clock::now();
      char peer[64] = {0};
      lws_get_peer_simple(wsi, peer, sizeof peer);
      node_->on_connect(session->id, now(), peer);
      flush();
      return 0;
    }

    case LWS_CALLBACK_RECEIVE:
      return on_receive(session->id, wsi, static_cast<const char*>(in), len);

    case LWS_CALLBACK_RECEIVE_PONG:
      if (auto it = connections_.find(session->id); it != connections_.end()) {
        it->second.last_heard = std::chrono::steady_clock::now();
        it->second.pinged = false;
      }
      return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable(session->id, wsi);

    case LWS_CALLBACK_CLOSED: {
      auto it = connections_.find(session->id);
      if (it != connections_.end()) {
        queued_bytes_total_ -= it->second.queued_bytes;
        connections_.erase(it);
      }
      node_->on_disconnect(session->id, now());
      flush();
      return 0;
    }

    case LWS_CALLBACK_HTTP:
      return on_http(wsi);

    case LWS_CALLBACK_HTTP_WRITEABLE:
      if (http_responses_.count(wsi)) return on_http_writeable(wsi);
      break;

    case LWS_CALLBACK_CLOSED_HTTP:
      http_responses_.erase(wsi);
      break;

    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
      on_completions();
      on_upstream_events();
      tick();
      return 0;

    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int EdgeServer::on_receive(ConnId id, lws* wsi, const char* data, std::size_t len) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return -1;
  Connection& c = it->second;
  c.last_heard = std::chrono::steady_clock::now();
  c.pinged = false;
  if (lws_is_first_fragment(wsi)) {
    c.rx.clear();
    c.rx_binary = lws_frame_is_binary(wsi) != 0;
    c.rx_oversized = false;
  }
  if (!c.rx_oversized) {
    if (check_frame_size(c.rx.size() + len, options_.max_frame)) {
      c.rx_oversized = true;
      c.rx.clear();
      node_->on_oversized(id, now());  // err too_large, then close 1009
    } else {
      c.rx.append(data, len);
    }
  }
  if (lws_is_final_fragment(wsi) && !c.rx_oversized) {
    if (c.rx_binary)
      node_->on_binary(id, now());
    else
      node_->on_text(id, c.rx, now());
    c.rx.clear();
  }
  flush();
  return 0;
}

int EdgeServer::on_writeable(ConnId id, lws* wsi) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return -1;
  Connection& c = it->second;
  if (c.ping_due) {  // sweep_idle: a WebSocket ping to a quiet peer
    c.ping_due = false;
    // A payload, because lws 4.1 passes an empty pong up to no callback.
    static constexpr char kPayload[] = "waymark";
    write_buffer_.resize(LWS_PRE + sizeof kPayload - 1);
    std::memcpy(write_buffer_.data() + LWS_PRE, kPayload, sizeof kPayload - 1);
    if (lws_write(wsi, write_buffer_.data() + LWS_PRE, sizeof kPayload - 1, LWS_WRITE_PING) < 0)
      return -1;
  }
  if (!write_queue(c)) return -1;
  if (!c.queue.empty()) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  if (c.close_code) {
    lws_close_reason(wsi, static_cast<lws_close_status>(*c.close_code),
                     reinterpret_cast<unsigned char*>(c.close_reason.data()),
                     std::min<std::size_t>(c.close_reason.size(), 120));
    return -1;
  }
  return 0;
}

// Every queued frame (up to kBytesPerWriteable) framed here and written in one send: lws's
// LWS_WRITE_RAW passes bytes through on a WebSocket connection, and buffers what the socket
// does not take (after anything it holds already), writing it before the connection's
// writeable callback runs again. No extension is negotiated, so the frames need nothing but
// their headers. False: the socket failed.
bool EdgeServer::write_queue(Connection& c) {
  write_buffer_.resize(LWS_PRE);
  while (!c.queue.empty() && write_buffer_.size() - LWS_PRE < kBytesPerWriteable) {
    const std::string& text = *c.queue.front();
    append_text_frame(write_buffer_, text);
    c.queued_bytes -= text.size();
    queued_bytes_total_ -= text.size();
    c.queue.pop_front();
  }
  std::size_t bytes = write_buffer_.size() - LWS_PRE;
  return bytes == 0 ||
         lws_write(c.wsi, write_buffer_.data() + LWS_PRE, bytes, LWS_WRITE_RAW) >= static_cast<int>(bytes);
}

// ---- HTTP: /healthz and /metrics ---------------------------------------------------------

int EdgeServer::on_http(lws* wsi) {
  char uri[128] = {0};
  lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI);
  std::string path(uri);
  unsigned status = HTTP_STATUS_OK;
  const char* content_type = "text/plain; charset=utf-8";
  HttpResponse response;
  if (path == "/healthz") {
    bool healthy = phase_ == Phase::running;
    status = healthy ? HTTP_STATUS_OK : HTTP_STATUS_SERVICE_UNAVAILABLE;
    content_type = "application/json";
    response.body = std::string(R"({"status":")") + (healthy ? "ok" : "shutting_down") +
                    R"(","node":)" + json_quote(options_.node) +
                    (upstream_ ? ",\"upstream\":" + healthz_upstream() : std::string()) + "}";
  } else if (path == "/metrics") {
    if (auto size = store_.size_bytes(); size.ok()) metrics_.set_lmdb_bytes(size.value());
    metrics_.set_queued_bytes(queued_bytes_total_);
    content_type = "text/plain; version=0.0.4; charset=utf-8";
    std::optional<TimeMs> oldest = node_->oldest_staged_at();
    metrics_.set_upstream(node_->upstream_links(), upstream_ != nullptr,
                          oldest ? std::optional<double>((now() - *oldest) / 1000.0) : std::nullopt);
    response.body = metrics_.render(node_->counters());
  } else {
    status = HTTP_STATUS_NOT_FOUND;
    response.body = "not found\n";
  }
  unsigned char headers[LWS_PRE + 1024];
  unsigned char* start = headers + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = headers + sizeof headers - 1;
  if (lws_add_http_common_headers(wsi, status, content_type, response.body.size(), &p, end))
    return 1;
  if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>("no-store"), 8, &p, end))
    return 1;
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return 1;
  http_responses_[wsi] = std::move(response);
  lws_callback_on_writable(wsi);
  return 0;
}

int EdgeServer::on_http_writeable(lws* wsi) {
  HttpResponse& response = http_responses_.at(wsi);
  std::size_t chunk = std::min(kHttpChunk, response.body.size() - response.sent);
  bool last = response.sent + chunk == response.body.size();
  write_buffer_.resize(LWS_PRE + chunk);
  std::memcpy(write_buffer_.data() + LWS_PRE, response.body.data() + response.sent, chunk);
  if (lws_write(wsi, write_buffer_.data() + LWS_PRE, chunk,
                last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != static_cast<int>(chunk))
    return -1;
  response.sent += chunk;
  if (!last) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  http_responses_.erase(wsi);
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

// ---- the writer's completions, the tick, shutdown ------------------------------------------

void EdgeServer::on_completions() {
  auto completions = writer_->take_completions();
  auto steady_now = std::chrono::steady_clock::now();
  for (auto& completion : completions) {
    metrics_.commit(completion.requests.size(),
                    std::chrono::duration<double>(completion.commit_time).count());
    node_->on_commit(completion.requests, completion.result, now());
    if (completion.result.ok()) {
      const auto& outcomes = completion.result.value();
      for (std::size_t i = 0; i < outcomes.size() && i < completion.requests.size(); ++i) {
        auto received = received_at_.find(outcomes[i].ticket);
        if (received != received_at_.end()) {
          metrics_.durable_ack(std::chrono::duration<double>(steady_now - received->second).count());
          received_at_.erase(received);
        }
        const auto* append = std::get_if<AppendRequest>(&completion.requests[i].op);
        const auto* outcome = std::get_if<AppendOutcome>(&outcomes[i].result);
        if (append && outcome && log_enabled(LogLevel::info))
          log_event(LogLevel::info, "stored",
                    {{"tenant", append->tenant}, {"conv", append->msg.conv}, {"id", append->msg.id},
                     {"from", append->msg.from}, {"seq", outcome->seq}, {"dup", outcome->dup},
                     {"trace", outcome->trace.value_or("")}});
      }
    } else {
      for (const auto& request : completion.requests) received_at_.erase(request.ticket);
      log_event(LogLevel::error, "commit_failed",
                {{"error", completion.result.error().message},
                 {"writes", completion.requests.size()}});
    }
  }
  flush();
}

void EdgeServer::on_upstream_events() {
  if (!upstream_) return;
  auto events = upstream_->take_events();
  if (events.empty()) return;
  for (auto& [tenant, event] : events) {
    if (const auto* connection = std::get_if<ConnectionEvent>(&event)) log_link_change(tenant, *connection);
    node_->on_upstream(tenant, event, now());
  }
  flush();
}

// JSON log lines for the link going up and down (only on a change of state).
void EdgeServer::log_link_change(const std::string& tenant, const ConnectionEvent& event) {
  auto links = node_->upstream_links();
  auto before = links.find(tenant);
  ConnectionState was = before == links.end() ? ConnectionState::offline : before->second.state;
  if (was == event.state) return;
  if (event.state == ConnectionState::online) {
    boost::json::array path;
    for (const auto& node : event.path) path.emplace_back(node);
    log_event(LogLevel::info, "upstream_up", {{"tenant", tenant}, {"path", std::move(path)}});
  } else if (event.state == ConnectionState::offline) {
    boost::json::object fields{{"tenant", tenant}, {"reason", event.reason}};
    if (event.next_retry_at) fields["retry_in_ms"] = *event.next_retry_at - now();
    log_event(event.token_refused ? LogLevel::error : LogLevel::warn, "upstream_down", std::move(fields));
  }
}

std::string EdgeServer::healthz_upstream() const {
  boost::json::object links;
  for (const auto& [tenant, link] : node_->upstream_links()) {
    boost::json::object entry{{"state", link.stopped ? "stopped" : std::string(to_string(link.state))},
                              {"reconnects", link.reconnects},
                              {"replication_lag", link.replication_lag}};
    if (link.state != ConnectionState::online && !link.reason.empty()) entry["reason"] = link.reason;
    links[tenant] = std::move(entry);
  }
  boost::json::object upstream{{"url", options_.upstream->url.host + ":" +
                                           std::to_string(options_.upstream->url.port) +
                                           options_.upstream->url.path},
                               {"outbox", node_->counters().staged_now},
                               {"links", std::move(links)}};
  if (auto oldest = node_->oldest_staged_at()) upstream["outbox_oldest_age_ms"] = now() - *oldest;
  return boost::json::serialize(upstream);
}

void EdgeServer::on_tick(lws_sorted_usec_list_t* sul) {
  EdgeServer* server = lws_container_of(sul, Tick, sul)->server;
  server->tick();
  if (!server->finished_)
    lws_sul_schedule(server->context_, 0, &server->tick_.sul, &EdgeServer::on_tick, 100 * LWS_US_PER_MS);
}

// Peers heard from in no way (frame, WebSocket pong) for 2 x hb get a WebSocket ping; after
// 3 x hb they are hung up on. Once a second is precise enough for periods of 30 s and more.
void EdgeServer::sweep_idle(std::chrono::steady_clock::time_point steady_now) {
  if (steady_now - last_idle_sweep_ < std::chrono::seconds(1)) return;
  last_idle_sweep_ = steady_now;
  const auto ping_after = std::chrono::milliseconds(2 * options_.heartbeat_ms);
  const auto hangup_after = std::chrono::milliseconds(3 * options_.heartbeat_ms);
  for (auto& [id, c] : connections_) {
    auto quiet = steady_now - c.last_heard;
    if (quiet >= hangup_after) {
      lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    } else if (quiet >= ping_after && !c.pinged) {
      c.pinged = true;
      c.ping_due = true;
      lws_callback_on_writable(c.wsi);
    }
  }
}

void EdgeServer::tick() {
  auto steady_now = std::chrono::steady_clock::now();
  sweep_idle(steady_now);
  if (reload_requested_.exchange(false)) {
    node_->reload_auth(now());
    if (upstream_) {
      auto reloaded = upstream_->reload_token();
      if (reloaded.ok())
        log_event(LogLevel::info, "upstream_token_reload", {{"file", options_.upstream->token_file}});
      else
        log_event(LogLevel::error, "upstream_token_reload",
                  {{"file", options_.upstream->token_file}, {"error", reloaded.error().message}});
    }
  }
  node_->on_timer(now());  // handshake timeouts, token expiry
  flush();
  if (shutdown_requested_ && phase_ == Phase::running) {
    phase_ = Phase::draining;
    shutdown_started_ = steady_now;
    log_event(LogLevel::info, "shutdown", {{"connections", connections_.size()},
                                           {"writes_in_flight", writer_->in_flight()}});
  }
  if (phase_ == Phase::draining && writer_->in_flight() == 0) {
    // Everything accepted is committed and acked (queued); now say bye to everyone.
    node_->shutdown(now());
    flush();
    phase_ = Phase::closing;
  }
  if (phase_ != Phase::running) {
    bool all_closed = phase_ == Phase::closing && connections_.empty();
    if (all_closed || steady_now - shutdown_started_ >= options_.shutdown_grace) {
      finished_ = true;
      lws_cancel_service(context_);
    }
  }
}

// ---- carrying out the node's outputs ------------------------------------------------------

void EdgeServer::flush() {
  drain_outputs(
      *node_,
      [&](EdgeWrite& write) {
        auto it = connections_.find(write.conn);
        if (it == connections_.end() || it->second.close_code) return;
        Connection& c = it->second;
        // A lagging connection gets its bye and nothing more: what it was sent is a gap-free
        // prefix of its stream, and it resumes from its cursor.
        if (c.lagging && write.type != "bye") return;
        metrics_.frame_out(write.type);
        c.queued_bytes += write.text->size();
        queued_bytes_total_ += write.text->size();
        c.queue.push_back(std::move(write.text));
        if (c.queued_bytes > options_.max_queue_bytes && !c.lagging) {
          // A reader this far behind is dropped; it resumes from its cursor, losing nothing.
          // Frames not yet written are discarded whole, never from the middle of the stream.
          c.lagging = true;
          queued_bytes_total_ -= c.queued_bytes;
          c.queued_bytes = 0;
          c.queue.clear();
          metrics_.lagging_close();
          log_event(LogLevel::warn, "lagging_close", {{"conn", write.conn}});
          node_->drop_lagging(write.conn, now());
        }
        if (!c.written_in_flush) {
          c.written_in_flush = true;
          to_write_.push_back(write.conn);
        }
      },
      [&](EdgeClose& close) {
        auto it = connections_.find(close.conn);
        if (it == connections_.end() || it->second.close_code) return;
        it->second.close_code = close.code;
        it->second.close_reason = close.reason;
        // A peer that stops reading cannot hold the close up for long.
        lws_set_timeout(it->second.wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
        lws_callback_on_writable(it->second.wsi);
      },
      [&](EdgePersist& persist) {
        if (const auto* audit = std::get_if<AuditRequest>(&persist.request.op)) {
          log_audit(audit->record);
        } else {
          received_at_[persist.request.ticket] = std::chrono::steady_clock::now();
        }
        writer_->submit(std::move(persist.request));
      });
  write_flushed();
  if (upstream_) {
    std::vector<UpstreamOp> ops = node_->take_upstream();
    for (const UpstreamOp& op : ops)
      if (const auto* stop = std::get_if<UpstreamStop>(&op))
        log_event(LogLevel::error, "upstream_refused", {{"tenant", stop->tenant}, {"reason", stop->reason}});
    upstream_->submit(std::move(ops));
  }
}

// The frames a flush queued go out now, one send per connection, rather than after a turn of
// the loop for a writeable callback; the callback is asked for only when something is
// left: more than one send's worth, a ping, a close to write after the frames. While lws still
// holds bytes the socket did not take, the frames stay in the queue, where max_queue_bytes
// counts them, and go out from the callback once lws has written its own.
void EdgeServer::write_flushed() {
  for (ConnId id : to_write_) {
    auto it = connections_.find(id);
    if (it == connections_.end()) continue;
    Connection& c = it->second;
    c.written_in_flush = false;
    if (c.close_code || c.ping_due || lws_partial_buffered(c.wsi)) {
      lws_callback_on_writable(c.wsi);
      continue;
    }
    if (!write_queue(c)) {  // the socket failed: lws closes it, outside any callback of its own
      lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
      continue;
    }
    if (!c.queue.empty()) lws_callback_on_writable(c.wsi);
  }
  to_write_.clear();
}

}  // namespace waymark::edge
