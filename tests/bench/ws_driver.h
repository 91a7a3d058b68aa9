// WsDriver: thousands of WebSocket client connections in one lws context on the calling
// thread (libuv's loop, so a turn costs what is ready, not a poll() over every socket), each speaking Waymark frames through the core's codec. Scenarios (ws_scenarios.cpp)
// implement WsHandler; the driver owns sockets, connect pacing, write queues and reassembly.
// Not thread-safe: one thread creates it and runs it.
#pragma once

#include <libwebsockets.h>
#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "waymark/codec.h"
#include "waymark/frames.h"
#include "ws_frame.h"

namespace waymark::bench {

struct Socket;  // one lws client socket of a WsConn (ws_driver.cpp)

struct WsConn {
  enum class State { idle, waiting, connecting, open, closed };
  std::size_t index = 0;
  State state = State::idle;
  bool to_write = false;         // listed in WsDriver::to_write_
  std::deque<std::string> out;   // frames not yet written
  std::string rx;                // the text frame being reassembled
  Socket* socket = nullptr;  // the current socket, if any
  int port = 0;                  // the server's port; 0: the driver's (WsDriverOptions::port)
};

class WsHandler {
 public:
  virtual ~WsHandler() = default;
  // The first frame of a new socket (a hello); empty for the echo target, which has none.
  virtual std::string hello(WsConn& conn) = 0;
  // The socket is up and the hello written.
  virtual void on_open(WsConn&) {}
  virtual void on_frame(WsConn& conn, Frame& frame) = 0;
  // The socket closed without the scenario asking (error, bye, lagging close); not for drop().
  virtual void on_closed(WsConn&) {}
};

struct WsDriverOptions {
  std::string host = "127.0.0.1";
  int port = 0;
  int connect_window = 256;      // connection attempts in flight at once (a storm's pacing)
  Direction inbound = Direction::from_edge;  // from_client against the echo server
};

class WsDriver {
 public:
  WsDriver(WsDriverOptions options, WsHandler& handler);
  ~WsDriver();
  WsDriver(const WsDriver&) = delete;
  WsDriver& operator=(const WsDriver&) = delete;
  bool ok() const { return context_ != nullptr; }

  // Adds n connections (not yet connecting); returns the index of the first.
  std::size_t add(std::size_t n);
  WsConn& conn(std::size_t index) { return conns_[index]; }
  std::size_t size() const { return conns_.size(); }
  // Queues a (re)connect; started when the connect window has room.
  void connect(std::size_t index);
  void send(WsConn& conn, std::string text);
  // Closes the socket abruptly (no close frame from the scenario's point of view); the
  // handler hears nothing more from it.
  void drop(WsConn& conn);

  // Services sockets until done() or the timeout; tick() runs at least every millisecond.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                 const std::function<void()>& tick = {});

  std::uint64_t frames_in() const { return frames_in_; }
  std::uint64_t bad_frames() const { return bad_frames_; }
  std::uint64_t connect_failures() const { return connect_failures_ + connect_errors_; }
  // Close codes the servers sent (4008 lagging, 1001 shutdown, ...), and how often.
  const std::map<int, std::uint64_t>& close_codes() const { return close_codes_; }

 private:
  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int handle(lws* wsi, lws_callback_reasons reason, void* in, size_t len);
  void start_connects();
  void write_queued();
  bool write_out(WsConn& conn, lws* wsi);
  void socket_gone(Socket* socket);
  static void on_tick(lws_sorted_usec_list_t* sul);

  WsDriverOptions options_;
  WsHandler& handler_;
  std::unique_ptr<uv_loop_t> loop_;
  lws_context* context_ = nullptr;
  std::vector<lws_protocols> protocols_;
  std::deque<WsConn> conns_;      // stable addresses
  std::list<Socket> sockets_;     // stable addresses: lws holds pointers to them
  std::deque<std::size_t> connect_queue_;
  int connecting_ = 0;
  std::vector<unsigned char> write_buffer_;
  std::vector<std::size_t> to_write_;  // connections sent to since the last turn
  edge::MaskKeys mask_keys_{0x9e3779b9u};  // a fresh masking key per frame
  ParseLimits limits_{std::size_t{1} << 24};
  std::uint64_t frames_in_ = 0;
  std::uint64_t bad_frames_ = 0;
  std::uint64_t connect_failures_ = 0;
  std::uint64_t connect_errors_ = 0;
  std::map<int, std::uint64_t> close_codes_;
  lws_retry_bo_t no_idle_policy_{};  // all zero: no PING, no idle hangup, no per-wsi timer
  struct Tick {
    lws_sorted_usec_list_t sul;
    WsDriver* driver;
  } tick_{{}, this};
};

}  // namespace waymark::bench
