// JSON log lines over spdlog's stderr sink (its own lock makes lines whole across threads).
#include "edge_log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>
#include <chrono>

namespace waymark::edge {
namespace {

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto created = spdlog::stderr_logger_mt("waymark");
    created->set_pattern("%v");
    created->set_level(spdlog::level::info);
    created->flush_on(spdlog::level::debug);
    return created;
  }();
  return instance;
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

std::string_view name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
  }
  return "info";
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel& level) {
  for (LogLevel candidate : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (name(candidate) == text) {
      level = candidate;
      return true;
    }
  }
  return false;
}

void set_log_level(LogLevel level) { logger()->set_level(to_spdlog(level)); }

bool log_enabled(LogLevel level) { return logger()->should_log(to_spdlog(level)); }

void log_event(LogLevel level, std::string_view event, boost::json::object fields) {
  if (!log_enabled(level)) return;
  boost::json::object line;
  line["ts"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  line["level"] = name(level);
  line["event"] = event;
  for (auto& field : fields) line[field.key()] = std::move(field.value());
  logger()->log(to_spdlog(level), "{}", boost::json::serialize(line));
}

}  // namespace waymark::edge
