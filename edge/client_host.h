// ClientHost: runs core ClientSessions natively over lws client sockets, in one lws context on
// the calling thread. The host for integration tests, the load harness and (later) an edge's
// upstream link: the same ClientSession the browser runs, with lws, a real clock and OpenSSL
// randomness around it. Not thread-safe: one thread creates it, adds sessions and runs it.
#pragma once

#include <libwebsockets.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "waymark/client_session.h"
#include "ws_frame.h"

namespace waymark::edge {

class ClientHost {
 public:
  using EventHandler = std::function<void(std::size_t session, ClientEvent& event)>;

  // host/port of an edge; the socket opens ws://host:port/ws with subprotocol waymark.v1.
  ClientHost(std::string host, int port);
  // wss:// when tls (verified against the system's CAs, or ca_file when given); any path.
  ClientHost(std::string host, int port, std::string path, bool tls, std::string ca_file = {});
  ~ClientHost();
  ClientHost(const ClientHost&) = delete;
  ClientHost& operator=(const ClientHost&) = delete;

  // Adds a session and starts it; returns its index. REQUIRES: session not yet started.
  std::size_t add(std::unique_ptr<ClientSession> session);
  ClientSession& session(std::size_t index) { return *sessions_[index].session; }
  std::size_t size() const { return sessions_.size(); }
  void on_event(EventHandler handler) { handler_ = std::move(handler); }

  // Call after using a session's app API (send, subscribe, ...) so its output goes out.
  void pump(std::size_t index);
  // Services sockets and timers until done() is true or the timeout passes; returns done().
  // done() is asked after every turn of the loop, which wake() ends early.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  // Any thread: makes the running run_until turn its loop (and ask done()) now.
  void wake();
  // A random source from OpenSSL, for sessions the caller builds.
  RandomSource& random() { return *random_; }
  static TimeMs now();

 private:
  struct Socket {
    ClientHost* host = nullptr;
    std::size_t session = 0;
    ConnectionId connection = 0;
    lws* wsi = nullptr;
    std::deque<std::string> outgoing;
    std::string rx;
    std::optional<int> close_code;
    bool closed = false;
  };
  struct Entry {
    std::unique_ptr<ClientSession> session;
    Socket* socket = nullptr;  // the current one
  };

  static int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
  int handle(lws* wsi, lws_callback_reasons reason, void* in, size_t len);
  void open(std::size_t index, ConnectionId connection);
  void socket_closed(Socket* socket);
  void fire_timers();
  static void on_tick(lws_sorted_usec_list_t* sul);

  std::string host_;
  int port_;
  std::string path_ = "/ws";
  bool tls_ = false;
  std::string ca_file_;
  std::unique_ptr<RandomSource> random_;
  MaskKeys mask_keys_;  // seeded from random_
  lws_context* context_ = nullptr;
  std::vector<lws_protocols> protocols_;
  std::vector<Entry> sessions_;
  std::list<Socket> sockets_;  // stable addresses: lws holds pointers to them
  std::vector<unsigned char> write_buffer_;
  EventHandler handler_;
  // Wakes lws_service every 10 ms for session timers. lws_container_of needs standard layout.
  struct Tick {
    lws_sorted_usec_list_t sul;
    ClientHost* host;
  } tick_{{}, this};
};

}  // namespace waymark::edge
