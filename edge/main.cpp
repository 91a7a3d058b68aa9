// waymark-edge: the command line, the store, the signal thread, then the server loop.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <pthread.h>
#include <thread>

#include "edge_log.h"
#include "edge_server.h"
#include "install_layout.h"
#include "jwt_authenticator.h"
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
  using waymark::EdgeConfig;
  using waymark::Status;
  using waymark::TimeMs;
  EdgeOptions options;
  // Installed (P/bin/waymark-edge next to P/share/waymark/web): the prefix's web app and SDK;
  // otherwise the build's defaults. --web and --sdk override either.
  StaticDirs static_dirs =
      default_static_dirs(executable_path(argv[0]), WAYMARK_DEFAULT_WEB_DIR, WAYMARK_DEFAULT_SDK_DIR);
  options.web_dir = static_dirs.web_dir;
  options.sdk_dir = static_dirs.sdk_dir;
  std::string listen = "127.0.0.1:8080";
  std::string log_level = "info";
  std::string secret_file;
  bool print_audit = false;
  EdgeConfig& limits = options.node_config;

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
  LmdbOptions store_options;
  std::uint64_t checkpoint_ms = static_cast<std::uint64_t>(store_options.apply_interval.count());
  app.add_option("--checkpoint-bytes", store_options.apply_bytes,
                 "Write-ahead log bytes that start a checkpoint into LMDB (docs/reliability.md)")
      ->capture_default_str()->check(CLI::Range(std::uint64_t{64} << 10, std::uint64_t{1} << 32));
  app.add_option("--checkpoint-ms", checkpoint_ms, "A checkpoint at least this often while writes are pending")
      ->capture_default_str()->check(CLI::Range(1, 60000));
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));

  // Security (docs/security.md).
  app.add_option("--auth-secret-file", secret_file,
                     "HS256 JWT secrets, one per line (>= 32 bytes each); every line verifies; "
                     "SIGHUP re-reads the file")
          ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", options.tls_cert, "PEM certificate: serve wss:// and https://")
                          ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert")
                         ->check(CLI::ExistingFile);

  app.add_option("--rate-limit", limits.rate_per_sec,
                 "Frames per second per connection (token bucket); 0: no limit")
      ->capture_default_str();
  app.add_option("--rate-burst", limits.rate_burst, "Frames a connection may send at once before --rate-limit applies")
      ->capture_default_str()->check(CLI::Range(1u, 1u << 30));
  app.add_option("--abuse-refusals", limits.abuse_refusals,
                 "Refused frames within 10 s that close a connection as abusive (4008); 0: never")
      ->capture_default_str();
  app.add_option("--typing-rate", limits.typing_per_sec, "typing on:true frames per second per connection and conversation (off is never limited); 0: no limit")
      ->capture_default_str();
  app.add_option("--max-subs", limits.max_subs, "Subscriptions per connection; 0: no limit")->capture_default_str();
  app.add_option("--max-conns-per-user", limits.max_conns_per_user, "Open connections per user (tenant + sub); 0: no limit")
      ->capture_default_str();
  app.add_option("--handshake-timeout-ms", limits.handshake_timeout_ms,
                 "Time a socket has to complete its handshake and say hello")
      ->capture_default_str()->check(CLI::Range(TimeMs{100}, TimeMs{600000}));
  app.add_option("--audit-rate", limits.audit_per_sec, "Audit records stored per second at most (the rest are counted); 0: no limit")
      ->capture_default_str();
  std::string upstream_url, upstream_token_file, upstream_ca;
  app.add_option("--upstream", upstream_url,
                 "ws[s]://HOST:PORT/ws of the upstream edge: this edge relays to it (a region); "
                 "without it this edge is a root and sequences every conversation");
  app.add_option("--upstream-token-file", upstream_token_file,
                 "File holding the node token this edge presents upstream (an HS256 JWT with "
                 "node:true and tnts); under --dev the token dev-node:<--node> is used without it");
  app.add_option("--upstream-ca", upstream_ca, "PEM CA bundle to verify a wss:// upstream with (default: the system's)");
  app.add_flag("--print-audit", print_audit,
               "Print the audit log of --data as JSON lines and exit (safe while an edge runs)");
  app.failure_message(CLI::FailureMessage::help);  // a bad argument prints the error and the usage
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help is a clean exit; any bad argument is exit 2, like every other refusal to start.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (print_audit) {
    Status read = read_audit_log(options.data_dir, [](std::uint64_t, std::string_view record) {
      std::fwrite(record.data(), 1, record.size(), stdout);
      std::fputc('\n', stdout);
    });
    if (!read.ok()) {
      std::fprintf(stderr, "waymark-edge: cannot read the audit log in %s: %s\n",
                   options.data_dir.c_str(), read.error().message.c_str());
      return 1;
    }
    return 0;
  }

  LogLevel level = LogLevel::info;
  parse_log_level(log_level, level);
  set_log_level(level);
  if (!split_listen(listen, options.host, options.port)) {
    std::fprintf(stderr, "waymark-edge: --listen must be HOST:PORT, got \"%s\"\n", listen.c_str());
    return 2;
  }
  if (options.dev && !secret_file.empty()) {
    std::fprintf(stderr, "waymark-edge: --dev and --auth-secret-file exclude each other: dev "
                         "tokens or JWTs, not both\n");
    return 2;
  }
  if (!options.dev && secret_file.empty()) {
    std::fprintf(stderr,
                 "waymark-edge: refusing to start without authentication: pass "
                 "--auth-secret-file FILE (HS256 JWT secrets), or --dev to accept dev:<user> "
                 "tokens (development only)\n");
    return 2;
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    std::fprintf(stderr, "waymark-edge: --tls-cert and --tls-key go together\n");
    return 2;
  }
  if (!upstream_url.empty()) {
    auto url = waymark::edge::parse_upstream_url(upstream_url);
    if (!url.ok()) {
      std::fprintf(stderr, "waymark-edge: %s\n", url.error().message.c_str());
      return 2;
    }
    if (!waymark::is_valid_node_name(options.node)) {
      std::fprintf(stderr, "waymark-edge: --node must be 1-64 chars of [A-Za-z0-9._-] to relay, got \"%s\"\n",
                   options.node.c_str());
      return 2;
    }
    waymark::edge::UpstreamOptions upstream;
    upstream.url = url.value();
    upstream.node = options.node;
    upstream.ca_file = upstream_ca;
    if (!upstream_token_file.empty()) {
      auto token = waymark::edge::read_node_token(upstream_token_file);
      if (!token.ok()) {
        std::fprintf(stderr, "waymark-edge: %s\n", token.error().message.c_str());
        return 2;
      }
      upstream.token = std::move(token).value();
      upstream.token_file = upstream_token_file;
    } else if (options.dev) {
      upstream.token = "dev-node:" + options.node;
    } else {
      std::fprintf(stderr, "waymark-edge: --upstream needs --upstream-token-file (a node token), "
                           "or --dev for dev-node:<node>\n");
      return 2;
    }
    options.upstream = std::move(upstream);
  } else if (!upstream_token_file.empty() || !upstream_ca.empty()) {
    std::fprintf(stderr, "waymark-edge: --upstream-token-file and --upstream-ca need --upstream\n");
    return 2;
  }
  std::unique_ptr<waymark::Authenticator> auth;
  if (options.dev) {
    auth = std::make_unique<waymark::DevAuthenticator>();
  } else {
    auto jwt = JwtAuthenticator::Open(secret_file);
    if (!jwt.ok()) {
      std::fprintf(stderr, "waymark-edge: %s\n", jwt.error().message.c_str());
      return 2;
    }
    log_event(LogLevel::info, "secrets_loaded",
              {{"file", secret_file}, {"secrets", jwt.value()->secret_count()}});
    auth = std::move(jwt).value();
  }
  if (!std::filesystem::is_directory(options.web_dir))
    log_event(LogLevel::warn, "no_web_dir", {{"web", options.web_dir}});
  if (!options.sdk_dir.empty() && !std::filesystem::is_directory(options.sdk_dir)) options.sdk_dir.clear();

  // Signals are taken by one thread with sigwait, so no handler runs inside lws or LMDB.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  store_options.apply_interval = std::chrono::milliseconds(checkpoint_ms);
  store_options.max_map_bytes = options.max_map_bytes;
  store_options.initial_map_bytes = std::min(store_options.initial_map_bytes, options.max_map_bytes);
  auto store = LmdbLogStore::Open(options.data_dir, store_options);
  if (!store.ok()) {
    std::fprintf(stderr, "waymark-edge: cannot open the store in %s: %s\n", options.data_dir.c_str(),
                 store.error().message.c_str());
    return 1;
  }
  EdgeServer server(options, *store.value(), *auth);
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
      } else if (signal == SIGHUP) {
        log_event(LogLevel::info, "signal", {{"signal", "SIGHUP"}});
        server.request_reload();
      }
    }
  });
  int code = server.run();
  done = true;
  signal_thread.join();
  return code;
}
