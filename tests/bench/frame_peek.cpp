#include "frame_peek.h"

#include <string>

namespace waymark::bench {
namespace {

struct Cursor {
  std::string_view text;
  std::size_t at = 0;

  void space() {
    while (at < text.size() && (text[at] == ' ' || text[at] == '\n' || text[at] == '\t' || text[at] == '\r'))
      ++at;
  }
  bool take(char c) {
    space();
    if (at >= text.size() || text[at] != c) return false;
    ++at;
    return true;
  }
  // A string without escapes: its inside. nullopt for an escape or no closing quote.
  std::optional<std::string_view> plain_string() {
    space();
    if (at >= text.size() || text[at] != '"') return std::nullopt;
    std::size_t start = ++at;
    while (at < text.size() && text[at] != '"') {
      if (text[at] == '\\') return std::nullopt;
      ++at;
    }
    if (at >= text.size()) return std::nullopt;
    return text.substr(start, at++ - start);
  }
  // Past a string starting at text[at] == '"'; false when it does not close.
  bool skip_string() {
    for (++at; at < text.size(); ++at) {
      if (text[at] == '\\') {
        ++at;
      } else if (text[at] == '"') {
        ++at;
        return true;
      }
    }
    return false;
  }
  // Any value, skipped: its text. nullopt when it does not end.
  std::optional<std::string_view> value() {
    space();
    std::size_t start = at;
    if (at >= text.size()) return std::nullopt;
    if (text[at] == '"') {
      if (!skip_string()) return std::nullopt;
    } else if (text[at] == '{' || text[at] == '[') {
      int depth = 0;
      do {
        char c = text[at];
        if (c == '"') {
          if (!skip_string()) return std::nullopt;
          continue;
        }
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') --depth;
        ++at;
      } while (depth > 0 && at < text.size());
      if (depth != 0) return std::nullopt;
    } else {
      while (at < text.size() && text[at] != ',' && text[at] != '}' && text[at] != ']' &&
             text[at] != ' ' && text[at] != '\n' && text[at] != '\t' && text[at] != '\r')
        ++at;
    }
    if (at == start) return std::nullopt;
    return text.substr(start, at - start);
  }
};

std::optional<std::uint64_t> digits(std::string_view raw) {
  if (raw.empty() || raw.size() > 18) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : raw) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

std::optional<Frame> peek_frame(std::string_view text) {
  Cursor r{text};
  if (!r.take('{')) return std::nullopt;
  std::string_view type, conv, id, body;
  std::optional<std::uint64_t> seq;
  bool dup = false;
  bool first = true;
  for (;;) {
    if (!first && !r.take(',')) break;
    first = false;
    auto key = r.plain_string();
    if (!key || !r.take(':')) return std::nullopt;
    if (*key == "t" || *key == "conv" || *key == "id") {
      auto value = r.plain_string();
      if (!value) return std::nullopt;
      (*key == "t" ? type : *key == "conv" ? conv : id) = *value;
      continue;
    }
    auto raw = r.value();
    if (!raw) return std::nullopt;
    if (*key == "seq") {
      seq = digits(*raw);
      if (!seq) return std::nullopt;
    } else if (*key == "body") {
      body = *raw;
    } else if (*key == "dup") {
      dup = *raw == "true";
    }
  }
  if (!r.take('}')) return std::nullopt;
  r.space();
  if (r.at != text.size() || conv.empty() || id.empty()) return std::nullopt;
  if (type == "msg" && seq && !body.empty()) {
    Msg msg;
    msg.conv = std::string(conv);
    msg.id = std::string(id);
    msg.seq = *seq;
    msg.body = JsonText{std::string(body)};
    return Frame{std::move(msg)};
  }
  if (type == "ack") {
    Ack ack;
    ack.conv = std::string(conv);
    ack.id = std::string(id);
    if (seq) ack.seq = *seq;
    ack.dup = dup;
    return Frame{std::move(ack)};
  }
  if (type == "send" && !body.empty()) {
    Send send;
    send.conv = std::string(conv);
    send.id = std::string(id);
    send.body = JsonText{std::string(body)};
    return Frame{std::move(send)};
  }
  return std::nullopt;
}

std::int64_t peek_t0(std::string_view body) {
  static constexpr std::string_view kKey = "\"t0\":";
  std::size_t at = body.find(kKey);
  if (at == std::string_view::npos) return 0;
  std::int64_t value = 0;
  for (at += kKey.size(); at < body.size() && body[at] >= '0' && body[at] <= '9'; ++at)
    value = value * 10 + (body[at] - '0');
  return value;
}

}  // namespace waymark::bench
