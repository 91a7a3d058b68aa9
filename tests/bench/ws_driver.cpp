#include "ws_driver.h"

#include <sys/socket.h>

#include <cstring>

#include "frame_peek.h"

namespace waymark::bench {
namespace {

constexpr std::size_t kBytesPerWrite = 64 * 1024;

}  // namespace

struct Socket {
  std::size_t conn = 0;
  lws* wsi = nullptr;
  bool counted_connecting = false;  // still holds a place in the connect window
  bool dead = false;                // dropped or closed: ignore whatever lws still reports
};

WsDriver::WsDriver(WsDriverOptions options, WsHandler& handler)
    : options_(std::move(options)), handler_(handler) {
  protocols_.push_back(lws_protocols{"waymark.v1", &WsDriver::callback, 0, 1 << 16, 0, nullptr, 0});
  protocols_.push_back(lws_protocols{nullptr, nullptr, 0, 0, 0, nullptr, 0});
  loop_ = std::make_unique<uv_loop_t>();
  if (uv_loop_init(loop_.get()) != 0) {
    loop_.reset();
    return;
  }
  void* foreign_loops[1] = {loop_.get()};
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV;
  info.foreign_loops = foreign_loops;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = protocols_.data();
  info.user = this;
  // No lws validity timers: lws 4.1 keeps every wsi's timer in one sorted list, so with a
  // timer per connection each insert walks thousands of entries (measured: connects slowed from
  // ~1500/s to ~100/s past 10k connections). The harness needs no keepalive of its own.
  info.retry_and_idle_policy = &no_idle_policy_;
  lws_set_log_level(LLL_ERR, nullptr);
  context_ = lws_create_context(&info);
  if (context_) lws_sul_schedule(context_, 0, &tick_.sul, &WsDriver::on_tick, LWS_US_PER_MS);
}

WsDriver::~WsDriver() {
  if (context_) lws_context_destroy(context_);
  if (loop_) {  // lws closes its handles on the loop: run it until they are gone
    uv_run(loop_.get(), UV_RUN_DEFAULT);
    uv_loop_close(loop_.get());
  }
}

void WsDriver::on_tick(lws_sorted_usec_list_t* sul) {
  WsDriver* driver = lws_container_of(sul, Tick, sul)->driver;
  lws_sul_schedule(driver->context_, 0, &driver->tick_.sul, &WsDriver::on_tick, LWS_US_PER_MS);
}

std::size_t WsDriver::add(std::size_t n) {
  std::size_t first = conns_.size();
  for (std::size_t i = 0; i < n; ++i) {
    conns_.emplace_back();
    conns_.back().index = first + i;
  }
  return first;
}

void WsDriver::connect(std::size_t index) {
  WsConn& conn = conns_[index];
  if (conn.state == WsConn::State::waiting || conn.state == WsConn::State::connecting ||
      conn.state == WsConn::State::open)
    return;
  conn.state = WsConn::State::waiting;
  connect_queue_.push_back(index);
}

void WsDriver::start_connects() {
  while (!connect_queue_.empty() && connecting_ < options_.connect_window) {
    std::size_t index = connect_queue_.front();
    connect_queue_.pop_front();
    WsConn& conn = conns_[index];
    if (conn.state != WsConn::State::waiting) continue;
    sockets_.push_back(Socket{});
    Socket* socket = &sockets_.back();
    socket->conn = index;
    socket->counted_connecting = true;
    conn.socket = socket;
    conn.state = WsConn::State::connecting;
    conn.out.clear();
    conn.rx.clear();
    ++connecting_;

    lws_client_connect_info info;
    std::memset(&info, 0, sizeof info);
    info.context = context_;
    info.address = options_.host.c_str();
    info.port = conn.port ? conn.port : options_.port;
    info.path = "/ws";
    info.host = options_.host.c_str();
    info.origin = options_.host.c_str();
    info.protocol = "waymark.v1";
    info.opaque_user_data = socket;
    info.pwsi = &socket->wsi;
    info.retry_and_idle_policy = &no_idle_policy_;
    if (!lws_client_connect_via_info(&info)) {
      ++connect_failures_;
      socket->wsi = nullptr;
      socket_gone(socket);
    }
  }
}

void WsDriver::send(WsConn& conn, std::string text) {
  if (conn.state != WsConn::State::open || !conn.socket) return;
  conn.out.push_back(std::move(text));
  if (!conn.to_write) {
    conn.to_write = true;
    to_write_.push_back(conn.index);
  }
}

// What the scenario sent since the last turn goes out now, one send per connection, without a
// round through the loop for a writeable callback (as the edge writes, edge_server.cpp).
void WsDriver::write_queued() {
  for (std::size_t index : to_write_) {
    WsConn& conn = conns_[index];
    conn.to_write = false;
    if (conn.state != WsConn::State::open || !conn.socket || !conn.socket->wsi) continue;
    lws* wsi = conn.socket->wsi;
    if (lws_partial_buffered(wsi)) {
      lws_callback_on_writable(wsi);
    } else if (!write_out(conn, wsi)) {
      drop(conn);  // the socket failed; the run reports what did not arrive
    } else if (!conn.out.empty()) {
      lws_callback_on_writable(wsi);
    }
  }
  to_write_.clear();
}

// Every queued frame (up to 64 KiB) masked here and written in one send, as the edge writes
// its own (edge_server.cpp): lws's LWS_WRITE_RAW passes the bytes through and buffers what the
// socket does not take.
bool WsDriver::write_out(WsConn& conn, lws* wsi) {
  write_buffer_.resize(LWS_PRE);
  while (!conn.out.empty() && write_buffer_.size() - LWS_PRE < kBytesPerWrite) {
    edge::append_text_frame(write_buffer_, conn.out.front(), mask_keys_.next());
    conn.out.pop_front();
  }
  std::size_t bytes = write_buffer_.size() - LWS_PRE;
  return bytes == 0 ||
         lws_write(wsi, write_buffer_.data() + LWS_PRE, bytes, LWS_WRITE_RAW) >= static_cast<int>(bytes);
}

void WsDriver::drop(WsConn& conn) {
  Socket* socket = conn.socket;
  conn.socket = nullptr;
  conn.state = WsConn::State::closed;
  conn.out.clear();
  if (!socket) return;
  if (socket->counted_connecting) {
    socket->counted_connecting = false;
    --connecting_;
  }
  socket->dead = true;
  if (!socket->wsi) return;
  // A connected socket is shut down (the server sees it end without a close frame) and lws
  // closes it when it reads the end; lws_set_timeout would instead put each of a storm's
  // 10,000 sockets through lws's sorted timer list, one walk per insert.
  int fd = lws_get_socket_fd(socket->wsi);
  if (fd < 0 || ::shutdown(fd, SHUT_RDWR) != 0)
    lws_set_timeout(socket->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

// The socket's life ended (connect error or close) without drop(): tell the scenario.
void WsDriver::socket_gone(Socket* socket) {
  if (socket->counted_connecting) {
    socket->counted_connecting = false;
    --connecting_;
  }
  socket->wsi = nullptr;
  if (socket->dead) return;
  socket->dead = true;
  WsConn& conn = conns_[socket->conn];
  if (conn.socket != socket) return;
  conn.socket = nullptr;
  conn.state = WsConn::State::closed;
  conn.out.clear();
  handler_.on_closed(conn);
}

int WsDriver::callback(lws* wsi, lws_callback_reasons reason, void*, void* in, size_t len) {
  auto* driver = static_cast<WsDriver*>(lws_context_user(lws_get_context(wsi)));
  return driver ? driver->handle(wsi, reason, in, len) : 0;
}

int WsDriver::handle(lws* wsi, lws_callback_reasons reason, void* in, size_t len) {
  auto* socket = static_cast<Socket*>(lws_get_opaque_user_data(wsi));
  switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED: {
      if (!socket || socket->dead) return -1;
      socket->wsi = wsi;
      if (socket->counted_connecting) {
        socket->counted_connecting = false;
        --connecting_;
      }
      WsConn& conn = conns_[socket->conn];
      conn.state = WsConn::State::open;
      std::string hello = handler_.hello(conn);
      if (!hello.empty()) send(conn, std::move(hello));
      handler_.on_open(conn);
      return 0;
    }

    case LWS_CALLBACK_CLIENT_RECEIVE: {
      if (!socket || socket->dead) return -1;
      WsConn& conn = conns_[socket->conn];
      std::string_view text(static_cast<const char*>(in), len);
      bool whole = lws_is_first_fragment(wsi) && lws_is_final_fragment(wsi);
      if (!whole) {  // reassembled; a frame that came in one piece is read where it lies
        if (lws_is_first_fragment(wsi)) conn.rx.clear();
        conn.rx.append(text);
        if (!lws_is_final_fragment(wsi)) return 0;
        text = conn.rx;
      }
      ++frames_in_;
      if (std::optional<Frame> peeked = peek_frame(text)) {
        handler_.on_frame(conn, *peeked);
      } else if (auto frame = parse_frame(text, options_.inbound, limits_); frame.ok()) {
        handler_.on_frame(conn, frame.value());
      } else {
        ++bad_frames_;
      }
      if (!whole) conn.rx.clear();
      return 0;
    }

    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (!socket || socket->dead) return -1;
      WsConn& conn = conns_[socket->conn];
      if (!write_out(conn, wsi)) return -1;
      if (!conn.out.empty()) lws_callback_on_writable(wsi);
      return 0;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      if (len >= 2) {
        auto* bytes = static_cast<const unsigned char*>(in);
        ++close_codes_[(bytes[0] << 8) | bytes[1]];
      }
      return 0;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
      ++connect_errors_;
      if (socket) socket_gone(socket);
      return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:  // the last word on any wsi: never leak a connect slot
      if (socket) socket_gone(socket);
      if (reason == LWS_CALLBACK_WSI_DESTROY) lws_set_opaque_user_data(wsi, nullptr);
      return 0;

    default:
      break;
  }
  return 0;
}

bool WsDriver::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                         const std::function<void()>& tick) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    start_connects();
    if (tick) tick();
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    write_queued();
    uv_run(loop_.get(), UV_RUN_ONCE);  // returns after socket activity or the 1 ms tick
  }
}

}  // namespace waymark::bench
