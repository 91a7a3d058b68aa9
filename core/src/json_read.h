// JSON text read without a DOM: check_json validates it once with boost::json's streaming
// parser (syntax, UTF-8, escapes, nesting; nothing is built), then JsonView reads values out
// of the checked text, in place: a member or an element is a view of its own exact text, so a
// message body is kept byte for byte as its sender wrote it (JsonText), and a value's kind is
// the one boost::json's DOM would have given it (int64, uint64 or double for a number).
// Private to the core and its bindings (waymark_core_internal). Pure functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace waymark {

class JsonView;

// One member of an object: its key as written (between the quotes, escapes undecoded) and
// its value.
struct JsonMember;

// A JSON value inside text that check_json accepted. REQUIRES (every method): that.
// On text check_json did not accept, results are unspecified but nothing is read outside
// the view.
class JsonView {
 public:
  JsonView() = default;
  explicit JsonView(std::string_view text) : text_(text) {}

  std::string_view text() const { return text_; }  // exactly the value, no space around it

  bool is_object() const { return first() == '{'; }
  bool is_array() const { return first() == '['; }
  bool is_string() const { return first() == '"'; }
  bool is_bool() const { return first() == 't' || first() == 'f'; }
  bool is_null() const { return first() == 'n'; }
  // Numbers as boost::json sorts them: an integer literal (no fraction, no exponent) that fits
  // an int64 is int64; a larger one that fits a uint64 is uint64; every other number is a double.
  bool is_int64() const;
  bool is_uint64() const;
  bool is_double() const;

  std::int64_t get_int64() const;  // REQUIRES: is_int64()
  double get_double() const;       // any number, as strtod reads it. REQUIRES: a number
  bool get_bool() const { return first() == 't'; }  // REQUIRES: is_bool()
  std::string get_string() const;  // the string decoded. REQUIRES: is_string()
  // Whether this is a string that decodes to `value` (no copy unless it holds escapes).
  bool string_is(std::string_view value) const;

  // The object's members in order (a repeated key appears each time), or none.
  std::vector<JsonMember> members() const;
  // The value of member `key` (the last one when it repeats, as boost::json keeps the last),
  // or nullopt. Keys are compared decoded ("b\u006fdy" is "body").
  std::optional<JsonView> find(std::string_view key) const;
  // The array's elements in order, or none.
  std::vector<JsonView> elements() const;

 private:
  char first() const { return text_.empty() ? '\0' : text_.front(); }
  std::string_view text_;
};

struct JsonMember {
  std::string_view key_text;  // between the quotes, as written
  JsonView value;
  bool key_is(std::string_view key) const;
  std::string key() const;  // decoded
};

// What check_json found.
struct JsonChecked {
  // The first fault and the byte it is at ("syntax error at byte 12", counted from 0), or nullopt.
  std::optional<std::string> error;
  bool non_finite = false;  // a number too large for a double (1e400): JSON allows it, we do not
  JsonView value;           // the one value, without the space around it (when no error)
};

// Validates `text` as exactly one JSON value (RFC 8259, as boost::json::parse does by
// default: no comments, no trailing commas, valid UTF-8) nested at most `max_depth` deep.
JsonChecked check_json(std::string_view text, std::size_t max_depth);

// Decodes the inside of a JSON string literal (between its quotes) that check_json accepted.
std::string decode_json_string(std::string_view inner);

}  // namespace waymark
