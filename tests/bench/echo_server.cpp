// waymark-bench-echo: the transport ceiling. A libwebsockets server that writes every text
// message back unchanged: it neither parses nor stores. The harness runs ingest and idle
// against it with the same connections and frames it sends the edge.
// Usage: waymark-bench-echo [--listen HOST:PORT]; logs {"event":"listening","port":N} on stderr
// and serves until SIGTERM or SIGINT. --help prints the usage; a bad argument exits 2.
#include <CLI/CLI.hpp>
#include <libwebsockets.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <string>

namespace {

volatile std::sig_atomic_t stopping = 0;
lws_context* context = nullptr;

struct EchoConn {  // lws allocates it per connection (zeroed); we construct into it
  std::deque<std::string>* queue;
  std::string* rx;
};

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* conn = static_cast<EchoConn*>(user);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      conn->queue = new std::deque<std::string>();
      conn->rx = new std::string();
      return 0;
    case LWS_CALLBACK_RECEIVE:
      if (lws_is_first_fragment(wsi)) conn->rx->clear();
      conn->rx->append(static_cast<const char*>(in), len);
      if (lws_is_final_fragment(wsi)) {
        conn->queue->push_back(std::move(*conn->rx));
        conn->rx->clear();
        lws_callback_on_writable(wsi);
      }
      return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
      static std::string buffer;
      while (!conn->queue->empty()) {
        const std::string& text = conn->queue->front();
        buffer.resize(LWS_PRE + text.size());
        std::memcpy(buffer.data() + LWS_PRE, text.data(), text.size());
        if (lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, text.size(),
                      LWS_WRITE_TEXT) < static_cast<int>(text.size()))
          return -1;
        conn->queue->pop_front();
        if (lws_send_pipe_choked(wsi)) break;
      }
      if (!conn->queue->empty()) lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_CLOSED:
      delete conn->queue;
      delete conn->rx;
      conn->queue = nullptr;
      conn->rx = nullptr;
      return 0;
    default:
      return 0;
  }
}

void on_signal(int) {
  stopping = 1;
  if (context) lws_cancel_service(context);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  CLI::App app{"waymark-bench-echo: a libwebsockets server that writes every text message back "
               "unchanged (the benchmarks' transport ceiling)"};
  app.add_option("--listen", listen, "HOST:PORT to serve on; port 0 picks a free one")
      ->capture_default_str();
  app.failure_message(CLI::FailureMessage::help);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::size_t colon = listen.rfind(':');
  int port = -1;
  if (colon != std::string::npos) {
    try {
      std::size_t used = 0;
      port = std::stoi(listen.substr(colon + 1), &used);
      if (used != listen.size() - colon - 1) port = -1;
    } catch (const std::exception&) {
      port = -1;
    }
  }
  if (colon == std::string::npos || colon == 0 || port < 0 || port > 65535) {
    std::fprintf(stderr, "waymark-bench-echo: --listen wants HOST:PORT, got '%s'\n%s", listen.c_str(),
                 app.help().c_str());
    return 2;
  }
  const std::string host = listen.substr(0, colon);
  lws_protocols protocols[] = {
      {"waymark.v1", callback, sizeof(EchoConn), 1 << 16, 0, nullptr, 0},
      {nullptr, nullptr, 0, 0, 0, nullptr, 0},
  };
  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.port = port;
  info.iface = host.c_str();
  info.protocols = protocols;
  info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
  lws_retry_bo_t no_idle_policy{};  // no per-connection validity timer (see ws_driver.cpp)
  info.retry_and_idle_policy = &no_idle_policy;
  lws_set_log_level(LLL_ERR, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  context = lws_create_context(&info);
  if (!context) {
    std::fprintf(stderr, "waymark-bench-echo: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  lws_vhost* vhost = lws_get_vhost_by_name(context, "default");
  std::fprintf(stderr, "{\"event\":\"listening\",\"host\":\"%s\",\"port\":%d}\n", host.c_str(),
               vhost ? lws_get_vhost_listen_port(vhost) : port);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  while (!stopping && lws_service(context, 0) >= 0) {
  }
  lws_context_destroy(context);
  return 0;
}
