// JSON text written member by member, without a DOM: the one writer of every frame, event,
// row and state document the core makes. Strings are escaped exactly as boost::json's
// serializer escapes them (", \, and control characters; \b \t \n \f \r or \u00xx), numbers
// are integers only (a body, the one place a fraction can appear, is spliced in as its text).
// Private to the core and its bindings (waymark_core_internal). Any thread.
#pragma once

#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace waymark {

// Appends `value` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view value);

// Appends the decimal text of an integer.
template <std::integral Integer>
void append_json_integer(std::string& out, Integer value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// One JSON object, members in the order written; a key given twice is written twice, so each
// caller writes each key once.
class JsonObject {
 public:
  explicit JsonObject(std::size_t reserve = 64) {
    text_.reserve(reserve);
    text_ += '{';
  }
  JsonObject& str(std::string_view key, std::string_view value) {
    this->key(key);
    append_json_string(text_, value);
    return *this;
  }
  template <std::integral Integer>
    requires(!std::same_as<Integer, bool>)
  JsonObject& num(std::string_view key, Integer value) {
    this->key(key);
    append_json_integer(text_, value);
    return *this;
  }
  JsonObject& boolean(std::string_view key, bool value) {
    this->key(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  JsonObject& null(std::string_view key) {
    this->key(key);
    text_ += "null";
    return *this;
  }
  // `json_text` must be one JSON value already (a body as sent, a nested object's text).
  JsonObject& raw(std::string_view key, std::string_view json_text) {
    this->key(key);
    text_ += json_text;
    return *this;
  }
  std::string done() {
    text_ += '}';
    return std::move(text_);
  }

 private:
  void key(std::string_view name) {
    if (text_.size() > 1) text_ += ',';
    append_json_string(text_, name);
    text_ += ':';
  }
  std::string text_;
};

// One JSON array, elements in the order written.
class JsonArray {
 public:
  JsonArray() { text_ += '['; }
  JsonArray& str(std::string_view value) {
    comma();
    append_json_string(text_, value);
    return *this;
  }
  template <std::integral Integer>
    requires(!std::same_as<Integer, bool>)
  JsonArray& num(Integer value) {
    comma();
    append_json_integer(text_, value);
    return *this;
  }
  JsonArray& raw(std::string_view json_text) {
    comma();
    text_ += json_text;
    return *this;
  }
  std::string done() {
    text_ += ']';
    return std::move(text_);
  }

 private:
  void comma() {
    if (text_.size() > 1) text_ += ',';
  }
  std::string text_;
};

}  // namespace waymark
