// lws client glue for ClientSession: OpenSocket/WriteFrame/CloseSocket become lws calls, lws
// callbacks become on_open/on_frame/on_close, and next_deadline drives on_timer.
#include "client_host.h"

#include "overloaded.h"
#include "ws_frame.h"

#include <openssl/rand.h>

#include <cstring>
#include <random>

namespace waymark::edge {
namespace {

constexpr std::size_t kBytesPerWriteable = 64 * 1024;

class OpenSslRandom final : public RandomSource {
 public:
  std::uint64_t next_u64() override {
    std::uint64_t value = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&value), sizeof value) != 1) {
      static std::random_device device;
      value = (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }
    return value;
  }
};

}  // namespace

ClientHost::ClientHost(std::string host, int port) : ClientHost(std::move(host), port, "/ws", false) {}

ClientHost::ClientHost(std::string host, int port, std::string path, bool tls, std::string ca_file)
    : host_(std::move(host)),
      port_(port),
      path_(std::move(path)),
      tls_(tls),
      ca_file_(std::move(ca_file)),
      random_(std::make_unique<OpenSslRandom>()),
      mask_keys_(static_cast<std::uint32_t>(random_->next_u64())) {
  protocols_.push_back(lws_protocols{"waymark.v1", &ClientHost::callback, 0, 1 << 16, 0, nullptr, 0});
  protocols_.push_back(lws_protocols{nullptr, nullptr, 0, 0, 0, nullptr, 0});
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols_.data();
  info.user = this;
  if (tls_) {
    info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    if (!ca_file_.empty()) info.client_ssl_ca_filepath = ca_file_.c_str();
  }
  lws_set_log_level(LLL_ERR, nullptr);
  context_ = lws_create_context(&info);
  if (context_) lws_sul_schedule(context_, 0, &tick_.sul, &ClientHost::on_tick, 10 * LWS_US_PER_MS);
}

void ClientHost::on_tick(lws_sorted_usec_list_t* sul) {
  ClientHost* host = lws_container_of(sul, Tick, sul)->host;
  lws_sul_schedule(host->context_, 0, &host->tick_.sul, &ClientHost::on_tick, 10 * LWS_US_PER_MS);
}

ClientHost::~ClientHost() {
  handler_ = nullptr;  // sockets closing during destruction report to nobody
  if (context_) lws_context_destroy(context_);
}

TimeMs ClientHost::now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::size_t ClientHost::add(std::unique_ptr<ClientSession> session) {
  sessions_.push_back(Entry{std::move(session), nullptr});
  std::size_t index = sessions_.size() - 1;
  sessions_[index].session->start(now());
  pump(index);
  return index;
}

void ClientHost::pump(std::size_t index) {
  Entry& entry = sessions_[index];
  for (;;) {
    auto io = entry.session->take_io();
    auto events = entry.session->take_events();
    if (io.empty() && events.empty()) return;
    for (auto& action : io) {
      std::visit(Overloaded{
                     [&](OpenSocket& o) { open(index, o.connection); },
                     [&](WriteFrame& w) {
                       Socket* socket = entry.socket;
                       if (!socket || socket->connection != w.connection || socket->closed) return;
                       socket->outgoing.push_back(std::move(w.text));
                       if (socket->wsi) lws_callback_on_writable(socket->wsi);
                     },
                     [&](CloseSocket& c) {
                       Socket* socket = entry.socket;
                       if (!socket || socket->connection != c.connection) return;
                       socket->close_code = c.code;
                       entry.socket = nullptr;  // the session already forgot it
                       if (socket->wsi) lws_callback_on_writable(socket->wsi);
                     },
                 },
                 action);
    }
    if (handler_)
      for (auto& event : events) handler_(index, event);
  }
}

void ClientHost::open(std::size_t index, ConnectionId connection) {
  sockets_.push_back(Socket{});
  Socket* socket = &sockets_.back();
  socket->host = this;
  socket->session = index;
  socket->connection = connection;
  sessions_[index].socket = socket;

  lws_client_connect_info info;
  std::memset(&info, 0, sizeof info);
  info.context = context_;
  info.address = host_.c_str();
  info.port = port_;
  info.path = path_.c_str();
  if (tls_) info.ssl_connection = LCCSCF_USE_SSL;
  info.host = host_.c_str();
  info.origin = host_.c_str();
  info.protocol = "waymark.v1";
  info.opaque_user_data = socket;
  info.pwsi = &socket->wsi;
  if (!lws_client_connect_via_info(&info)) {
    // Refused before any callback: report it as a closed socket on the next turn.
    socket->wsi = nullptr;
    socket_closed(socket);
  }
}

void ClientHost::socket_closed(Socket* socket) {
  if (socket->closed) return;
  socket->closed = true;
  socket->wsi = nullptr;
  Entry& entry = sessions_[socket->session];
  if (entry.socket == socket) entry.socket = nullptr;
  entry.session->on_close(socket->connection, now());
  pump(socket->session);
}

int ClientHost::callback(lws* wsi, lws_callback_reasons reason, void*, void* in, size_t len) {
  auto* host = static_cast<ClientHost*>(lws_context_user(lws_get_context(wsi)));
  return host ? host->handle(wsi, reason, in, len) : 0;
}

int ClientHost::handle(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  auto* socket = static_cast<Socket*>(lws_get_opaque_user_data(wsi));
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      if (!socket) return -1;
      socket->wsi = wsi;
      sessions_[socket->session].session->on_open(socket->connection, now());
      pump(socket->session);
      return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
      if (!socket || socket->closed) return -1;
      if (lws_is_first_fragment(wsi)) socket->rx.clear();
      socket->rx.append(static_cast<const char*>(in), len);
      if (lws_is_final_fragment(wsi)) {
        sessions_[socket->session].session->on_frame(socket->connection, socket->rx, now());
        socket->rx.clear();
        pump(socket->session);
      }
      return 0;

    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (!socket) return -1;
      // Every queued frame, masked here, in one send up to kBytesPerWriteable (an upstream
      // link sends its backlog 256 frames at a time): no send and choke check per frame.
      write_buffer_.resize(LWS_PRE);
      while (!socket->outgoing.empty() && write_buffer_.size() - LWS_PRE < kBytesPerWriteable) {
        append_text_frame(write_buffer_, socket->outgoing.front(), mask_keys_.next());
        socket->outgoing.pop_front();
      }
      if (std::size_t bytes = write_buffer_.size() - LWS_PRE; bytes > 0) {
        if (lws_write(wsi, write_buffer_.data() + LWS_PRE, bytes, LWS_WRITE_RAW) < static_cast<int>(bytes))
          return -1;
      }
      if (!socket->outgoing.empty()) lws_callback_on_writable(wsi);
      else if (socket->close_code) {
        lws_close_reason(wsi, static_cast<lws_close_status>(*socket->close_code), nullptr, 0);
        return -1;
      }
      return 0;
    }

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
      if (socket) socket_closed(socket);
      return 0;

    default:
      break;
  }
  return 0;
}

void ClientHost::fire_timers() {
  TimeMs current = now();
  for (std::size_t i = 0; i < sessions_.size(); ++i) {
    auto deadline = sessions_[i].session->next_deadline();
    if (deadline && *deadline <= current) {
      sessions_[i].session->on_timer(current);
      pump(i);
    }
  }
  // Sockets lws is finished with can go.
  sockets_.remove_if([this](const Socket& s) {
    if (!s.closed) return false;
    for (const auto& entry : sessions_)
      if (entry.socket == &s) return false;
    return true;
  });
}

void ClientHost::wake() {
  if (context_) lws_cancel_service(context_);
}

bool ClientHost::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    lws_service(context_, 0);  // returns after socket activity or the 10 ms tick
    fire_timers();
  }
  return true;
}

}  // namespace waymark::edge
