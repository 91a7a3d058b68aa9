// JSON text read without a DOM (json_read.h): boost::json's streaming parser checks the text,
// a structural scan then finds each value's exact bytes.
#include "json_read.h"

#include <boost/json/basic_parser_impl.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace json = boost::json;

namespace waymark {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view text, std::size_t at) {
  while (at < text.size() && is_space(text[at])) ++at;
  return at;
}

// REQUIRES: text[at] == '"'. Returns the index just past the closing quote.
std::size_t skip_string(std::string_view text, std::size_t at) {
  for (++at; at < text.size(); ++at) {
    if (text[at] == '\\') {
      ++at;  // the escaped character, whatever it is, cannot end the string
    } else if (text[at] == '"') {
      return at + 1;
    }
  }
  return text.size();
}

// Returns the index just past the value that starts at text[at].
std::size_t skip_value(std::string_view text, std::size_t at) {
  if (at >= text.size()) return text.size();
  char first = text[at];
  if (first == '"') return skip_string(text, at);
  if (first != '{' && first != '[') {  // a number, true, false or null
    while (at < text.size() && !is_space(text[at]) && text[at] != ',' && text[at] != '}' &&
           text[at] != ']')
      ++at;
    return at;
  }
  std::size_t depth = 0;
  while (at < text.size()) {
    char c = text[at];
    if (c == '"') {
      at = skip_string(text, at);
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return at + 1;
    }
    ++at;
  }
  return text.size();
}

bool is_integer_literal(std::string_view text) {
  return !text.empty() && text.find_first_of(".eE") == std::string_view::npos &&
         (text.front() == '-' || (text.front() >= '0' && text.front() <= '9'));
}

template <typename Integer>
bool parse_whole(std::string_view text, Integer& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

void append_utf8(std::string& out, std::uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xc0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xe0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code_point & 0x3f));
  }
}

std::uint32_t hex4(std::string_view text, std::size_t at) {
  std::uint32_t value = 0;
  for (std::size_t i = at; i < at + 4 && i < text.size(); ++i) {
    char c = text[i];
    value <<= 4;
    if (c >= '0' && c <= '9') value |= static_cast<std::uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') value |= static_cast<std::uint32_t>(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') value |= static_cast<std::uint32_t>(c - 'A' + 10);
  }
  return value;
}

// The streaming parser's handler: it builds nothing and notes a non-finite number.
struct Checker {
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  bool non_finite = false;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t, json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double d, json::string_view, json::error_code&) {
    if (!std::isfinite(d)) non_finite = true;
    return true;
  }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }
};

// A fault boost::json's parser reports, in words. Read from its error enum, not through
// error_code::message(): Boost.System's categories behind that bring printf and strerror into
// the SDK (11.7 KB of its wasm).
std::string_view fault_text(const json::error_code& ec) {
  switch (static_cast<json::error>(ec.value())) {
    case json::error::syntax: return "syntax error";
    case json::error::extra_data: return "extra data after the value";
    case json::error::incomplete: return "incomplete JSON";
    case json::error::exponent_overflow: return "exponent overflow";
    case json::error::too_deep: return "nested too deep";
    case json::error::illegal_leading_surrogate: return "illegal leading surrogate";
    case json::error::illegal_trailing_surrogate: return "illegal trailing surrogate";
    case json::error::expected_hex_digit: return "expected a hex digit";
    case json::error::expected_utf16_escape: return "expected a \\u escape";
    default: return "invalid JSON";
  }
}

}  // namespace

std::string decode_json_string(std::string_view inner) {
  std::string out;
  out.reserve(inner.size());
  for (std::size_t i = 0; i < inner.size(); ++i) {
    char c = inner[i];
    if (c != '\\' || i + 1 >= inner.size()) {
      out += c;
      continue;
    }
    char escaped = inner[++i];
    switch (escaped) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        std::uint32_t unit = hex4(inner, i + 1);
        i += 4;
        // The checker accepted the text, so a leading surrogate has its trailing \uXXXX.
        if (unit >= 0xd800 && unit < 0xdc00 && i + 6 < inner.size() && inner[i + 1] == '\\') {
          std::uint32_t low = hex4(inner, i + 3);
          unit = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
          i += 6;
        }
        append_utf8(out, unit);
        break;
      }
      default: out += escaped;  // " \ /
    }
  }
  return out;
}

bool JsonView::is_int64() const {
  std::int64_t value = 0;
  return is_integer_literal(text_) && parse_whole(text_, value);
}

bool JsonView::is_uint64() const {
  std::uint64_t value = 0;
  return is_integer_literal(text_) && text_.front() != '-' && !is_int64() && parse_whole(text_, value);
}

bool JsonView::is_double() const {
  char c = first();
  return (c == '-' || (c >= '0' && c <= '9')) && !is_int64() && !is_uint64();
}

std::int64_t JsonView::get_int64() const {
  std::int64_t value = 0;
  parse_whole(text_, value);
  return value;
}

double JsonView::get_double() const {
  std::string text(text_);  // strtod needs the terminator the view lacks
  return std::strtod(text.c_str(), nullptr);
}

std::string JsonView::get_string() const {
  if (text_.size() < 2) return {};
  return decode_json_string(text_.substr(1, text_.size() - 2));
}

bool JsonView::string_is(std::string_view value) const {
  if (!is_string() || text_.size() < 2) return false;
  std::string_view inner = text_.substr(1, text_.size() - 2);
  if (inner.find('\\') == std::string_view::npos) return inner == value;
  return decode_json_string(inner) == value;
}

bool JsonMember::key_is(std::string_view key) const {
  if (key_text.find('\\') == std::string_view::npos) return key_text == key;
  return decode_json_string(key_text) == key;
}

std::string JsonMember::key() const { return decode_json_string(key_text); }

std::vector<JsonMember> JsonView::members() const {
  std::vector<JsonMember> out;
  if (!is_object()) return out;
  std::size_t at = skip_space(text_, 1);
  while (at < text_.size() && text_[at] == '"') {
    std::size_t key_end = skip_string(text_, at);
    std::string_view key = text_.substr(at + 1, key_end - at - 2);
    at = skip_space(text_, key_end);
    if (at >= text_.size() || text_[at] != ':') break;
    at = skip_space(text_, at + 1);
    std::size_t value_end = skip_value(text_, at);
    out.push_back(JsonMember{key, JsonView(text_.substr(at, value_end - at))});
    at = skip_space(text_, value_end);
    if (at >= text_.size() || text_[at] != ',') break;
    at = skip_space(text_, at + 1);
  }
  return out;
}

std::optional<JsonView> JsonView::find(std::string_view key) const {
  std::optional<JsonView> found;
  for (const JsonMember& member : members())
    if (member.key_is(key)) found = member.value;
  return found;
}

std::vector<JsonView> JsonView::elements() const {
  std::vector<JsonView> out;
  if (!is_array()) return out;
  std::size_t at = skip_space(text_, 1);
  while (at < text_.size() && text_[at] != ']') {
    std::size_t end = skip_value(text_, at);
    if (end == at) break;  // not valid JSON after all: stop rather than loop
    out.emplace_back(text_.substr(at, end - at));
    at = skip_space(text_, end);
    if (at >= text_.size() || text_[at] != ',') break;
    at = skip_space(text_, at + 1);
  }
  return out;
}

JsonChecked check_json(std::string_view text, std::size_t max_depth) {
  JsonChecked out;
  json::parse_options options;
  options.max_depth = max_depth;
  json::basic_parser<Checker> parser(options);
  json::error_code ec;
  // On a fault, `used` is where it is: the byte the parser stopped at.
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::error::extra_data;
  if (ec) {
    out.error = std::string(fault_text(ec)) + " at byte " + std::to_string(used);
    return out;
  }
  out.non_finite = parser.handler().non_finite;
  std::size_t start = skip_space(text, 0);
  out.value = JsonView(text.substr(start, skip_value(text, start) - start));
  return out;
}

}  // namespace waymark
