// Structured log lines: one JSON object per line on stderr, through spdlog. Any thread.
#pragma once

#include <boost/json/object.hpp>

#include <string_view>

namespace waymark::edge {

enum class LogLevel { debug, info, warn, error };

// Parses "debug", "info", "warn", "error"; false for anything else.
bool parse_log_level(std::string_view text, LogLevel& level);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// Writes {"ts":..., "level":..., "event": event, ...fields} as one line.
void log_event(LogLevel level, std::string_view event, boost::json::object fields = {});

}  // namespace waymark::edge
