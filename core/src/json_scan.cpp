// A structural scan over JSON text already validated by boost::json: strings, nesting and
// scalars are skipped without being decoded, so a value's exact bytes can be cut out.
#include "json_scan.h"

#include <boost/json/parse.hpp>
#include <boost/json/string.hpp>

#include <string>

namespace waymark::json_scan {
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

// Whether the string literal `literal` (quotes included) decodes to `key`.
bool key_matches(std::string_view literal, std::string_view key) {
  std::string_view inner = literal.substr(1, literal.size() >= 2 ? literal.size() - 2 : 0);
  if (inner.find('\\') == std::string_view::npos) return inner == key;
  boost::json::error_code ec;
  boost::json::value decoded = boost::json::parse(literal, ec);
  return !ec && decoded.is_string() && std::string_view(decoded.get_string()) == key;
}

}  // namespace

std::optional<std::string_view> raw_member(std::string_view object_text, std::string_view key) {
  std::size_t at = skip_space(object_text, 0);
  if (at >= object_text.size() || object_text[at] != '{') return std::nullopt;
  std::optional<std::string_view> found;
  at = skip_space(object_text, at + 1);
  while (at < object_text.size() && object_text[at] == '"') {
    std::size_t key_end = skip_string(object_text, at);
    std::string_view literal = object_text.substr(at, key_end - at);
    at = skip_space(object_text, key_end);
    if (at >= object_text.size() || object_text[at] != ':') return found;
    at = skip_space(object_text, at + 1);
    std::size_t value_end = skip_value(object_text, at);
    if (key_matches(literal, key)) found = object_text.substr(at, value_end - at);
    at = skip_space(object_text, value_end);
    if (at >= object_text.size() || object_text[at] != ',') break;
    at = skip_space(object_text, at + 1);
  }
  return found;
}

std::vector<std::string_view> raw_elements(std::string_view array_text) {
  std::vector<std::string_view> elements;
  std::size_t at = skip_space(array_text, 0);
  if (at >= array_text.size() || array_text[at] != '[') return elements;
  at = skip_space(array_text, at + 1);
  while (at < array_text.size() && array_text[at] != ']') {
    std::size_t end = skip_value(array_text, at);
    if (end == at) break;  // not valid JSON after all: stop rather than loop
    elements.push_back(array_text.substr(at, end - at));
    at = skip_space(array_text, end);
    if (at >= array_text.size() || array_text[at] != ',') break;
    at = skip_space(array_text, at + 1);
  }
  return elements;
}

}  // namespace waymark::json_scan
