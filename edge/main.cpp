// waymark-edge: the command line, the store, the signal thread, then the server loop.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>
#include <thread>

#include "edge_log.h"
#include "edge_server.h"
#include "lmdb_log_store.h"

#ifndef WAYMARK_DEFAULT_WEB_DIR
#define WAYMARK_DEFAULT_WEB_DIR "web"
#endif
#ifndef WAYMARK_DEFAULT_SDK_DIR
#define WAYMARK_DEFAULT_SDK_DIR ""
#endif

namespace {

bool split_listen(const std::string& listen, std::string& host, int& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = listen.substr(0, colon);
  try {
    std::size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    return used == listen.size() - colon - 1 && port >= 0 && port <= 65535;
  } catch (...) {
    return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace waymark::edge;
  EdgeOptions options;
  options.web_dir = WAYMARK_DEFAULT_WEB_DIR;
  options.sdk_dir = WAYMARK_DEFAULT_SDK_DIR;
  std::string listen = "127.0.0.1:8080";
  std::string log_level = "info";

  CLI::App app{"waymark-edge: a Waymark edge node. It stores every message durably in an LMDB "
               "log before acknowledging it, fans it out to subscribers and replays from cursors."};
  app.add_option("--listen", listen, "HOST:PORT to serve WebSocket (/ws) and HTTP on; port 0 picks a free one")
      ->capture_default_str();
  app.add_option("--data", options.data_dir, "Directory of the LMDB log (created if missing)")
      ->capture_default_str();
  app.add_flag("--dev", options.dev, "Development mode: accept dev:<user> tokens (tenant \"dev\", every conversation)");
  app.add_option("--web", options.web_dir, "Directory of static files served at /")->capture_default_str();
  app.add_option("--sdk", options.sdk_dir, "Directory of the browser SDK served at /sdk/")->capture_default_str();
  app.add_option("--node", options.node, "This node's name, sent in welcome.node")->capture_default_str();
  app.add_option("--max-frame", options.max_frame, "Largest accepted frame in bytes; larger ones close the socket with 1009")
      ->capture_default_str()->check(CLI::Range(std::size_t{256}, std::size_t{16} << 20));
  app.add_option("--max-queue", options.max_queue_bytes,
                 "Bytes queued to one connection before it is closed as lagging (4008)")
      ->capture_default_str()->check(CLI::Range(std::size_t{65536}, std::size_t{1} << 32));
  app.add_option("--heartbeat-ms", options.heartbeat_ms, "welcome.hb: how often clients ping")
      ->capture_default_str()->check(CLI::Range(1000, 600000));
  app.add_option("--max-map-bytes", options.max_map_bytes,
                 "Cap on the LMDB map; past it sends are refused with nack retry:true (a full disk)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  CLI11_PARSE(app, argc, argv);

  LogLevel level = LogLevel::info;
  parse_log_level(log_level, level);
  set_log_level(level);
  if (!split_listen(listen, options.host, options.port)) {
    std::fprintf(stderr, "waymark-edge: --listen must be HOST:PORT, got \"%s\"\n", listen.c_str());
    return 2;
  }
  if (!options.dev) {
    std::fprintf(stderr,
                 "waymark-edge: refusing to start without authentication: pass --dev to accept "
                 "dev:<user> tokens (development only); JWT secrets (--auth-secret-file) are not "
                 "supported by this build yet\n");
    return 2;
  }
  if (!std::filesystem::is_directory(options.web_dir))
    log_event(LogLevel::warn, "no_web_dir", {{"web", options.web_dir}});
  if (!options.sdk_dir.empty() && !std::filesystem::is_directory(options.sdk_dir)) options.sdk_dir.clear();

  // Signals are taken by one thread with sigwait, so no handler runs inside lws or LMDB.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  LmdbOptions store_options;
  store_options.max_map_bytes = options.max_map_bytes;
  store_options.initial_map_bytes = std::min(store_options.initial_map_bytes, options.max_map_bytes);
  auto store = LmdbLogStore::Open(options.data_dir, store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "waymark-edge: cannot open the store in %s: %s\n", options.data_dir.c_str(),
                 store.error().message.c_str());
    return 1;
  }
  waymark::DevAuthenticator dev_auth;
  EdgeServer server(options, *store.value(), dev_auth);
  if (auto started = server.start(); !started.ok()) {
    std::fprintf(stderr, "waymark-edge: %s\n", started.error().message.c_str());
    return 1;
  }

  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    timespec wait{0, 200'000'000};
    while (!done) {
      int signal = sigtimedwait(&signals, nullptr, &wait);
      if (signal == SIGTERM || signal == SIGINT) {
        log_event(LogLevel::info, "signal", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
        server.request_shutdown();
      }
    }
  });
  int code = server.run();
  done = true;
  signal_thread.join();
  return code;
}
