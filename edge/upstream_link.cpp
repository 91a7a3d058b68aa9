// The upstream link's thread: a ClientHost loop that applies the node's ops to each tenant's
// relay-link ClientSession and queues the sessions' events for the lws service thread.
#include "upstream_link.h"

#include <chrono>
#include <fstream>

#include "client_host.h"
#include "waymark/client_session.h"

namespace waymark::edge {

Result<UpstreamUrl> parse_upstream_url(const std::string& url) {
  UpstreamUrl out;
  std::string rest;
  if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else if (url.rfind("wss://", 0) == 0) {
    out.tls = true;
    rest = url.substr(6);
  } else {
    return make_error(ErrorCode::invalid, "--upstream: must start with ws:// or wss://, got \"" + url + "\"");
  }
  std::size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) out.path = rest.substr(slash);
  std::size_t colon = authority.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == authority.size())
    return make_error(ErrorCode::invalid, "--upstream: needs HOST:PORT, got \"" + url + "\"");
  out.host = authority.substr(0, colon);
  try {
    std::size_t used = 0;
    out.port = std::stoi(authority.substr(colon + 1), &used);
    if (used != authority.size() - colon - 1 || out.port <= 0 || out.port > 65535) throw 0;
  } catch (...) {
    return make_error(ErrorCode::invalid, "--upstream: bad port in \"" + url + "\"");
  }
  return out;
}

Result<std::string> read_node_token(const std::string& file) {
  std::ifstream in(file);
  std::string token;
  if (!in || !std::getline(in, token)) token.clear();
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
    token.pop_back();
  if (token.empty())
    return make_error(ErrorCode::invalid, "--upstream-token-file " + file + ": cannot read a token from it");
  return token;
}

UpstreamLink::UpstreamLink(UpstreamOptions options, std::function<void()> wake)
    : options_(std::move(options)), wake_(std::move(wake)) {}

UpstreamLink::~UpstreamLink() { stop(); }

void UpstreamLink::start() {
  thread_ = std::thread([this] { run(); });
}

void UpstreamLink::stop() {
  stopping_ = true;
  if (ClientHost* host = host_.load()) host->wake();
  if (thread_.joinable()) thread_.join();
}

void UpstreamLink::submit(std::vector<UpstreamOp> ops) {
  if (ops.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& op : ops) ops_.push_back(std::move(op));
  }
  if (ClientHost* host = host_.load()) host->wake();
}

Result<std::monostate> UpstreamLink::reload_token() {
  if (options_.token_file.empty()) return std::monostate{};
  auto token = read_node_token(options_.token_file);
  if (!token.ok()) return token.error();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    new_token_ = std::move(token).value();
  }
  if (ClientHost* host = host_.load()) host->wake();
  return std::monostate{};
}

std::vector<std::pair<std::string, ClientEvent>> UpstreamLink::take_events() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<std::string, ClientEvent>> out;
  out.swap(events_);
  return out;
}

void UpstreamLink::apply_pending(ClientHost& host) {
  std::vector<UpstreamOp> ops;
  std::optional<std::string> new_token;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ops.swap(ops_);
    new_token.swap(new_token_);
  }
  std::map<std::size_t, bool> touched;
  if (new_token) {
    options_.token = *new_token;  // for links made from now on
    for (const auto& [tenant, index] : sessions_) {
      host.session(index).set_token(*new_token);
      host.session(index).connect_now(ClientHost::now());  // online links carry on as they are
      touched[index] = true;
    }
  }
  for (const UpstreamOp& op : ops) {
    const std::string& tenant = upstream_tenant(op);
    auto it = sessions_.find(tenant);
    if (it == sessions_.end()) {
      if (std::holds_alternative<UpstreamStop>(op)) continue;
      auto session = std::make_unique<ClientSession>(relay_link_config(options_.node, tenant),
                                                     options_.token, options_.node, host.random());
      tenant_of_.push_back(tenant);
      it = sessions_.emplace(tenant, host.add(std::move(session))).first;
    }
    apply_upstream(host.session(it->second), op, ClientHost::now());
    touched[it->second] = true;
  }
  for (const auto& [index, _] : touched) host.pump(index);
}

void UpstreamLink::run() {
  ClientHost host(options_.url.host, options_.url.port, options_.url.path, options_.url.tls,
                  options_.ca_file);
  bool have_events = false;
  host.on_event([&](std::size_t index, ClientEvent& event) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.emplace_back(tenant_of_[index], std::move(event));
    have_events = true;
  });
  host_ = &host;
  while (!stopping_) {
    host.run_until(
        [&] {
          apply_pending(host);
          if (have_events) {
            have_events = false;
            wake_();
          }
          return stopping_.load();
        },
        std::chrono::seconds(1));
  }
  host_ = nullptr;
}

}  // namespace waymark::edge
