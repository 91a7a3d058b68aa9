// json_text_test: the core's JSON writer (json_write.h) and reader (json_read.h) against
// boost::json's DOM, the oracle: each string escapes as its serializer escapes it, what is
// written parses to what was meant, and check_json with JsonView accepts, refuses and reads
// exactly what json::parse does.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

#include "json_read.h"
#include "json_write.h"

using namespace waymark;
namespace json = boost::json;

namespace {

std::string quoted(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

}  // namespace

TEST_CASE("json_write: strings escape byte for byte as boost::json's serializer") {
  std::string every_ascii;
  for (int c = 0; c < 0x80; ++c) every_ascii += static_cast<char>(c);
  for (std::string text : {std::string(), std::string("plain"), every_ascii,
                           std::string("quote \" backslash \\ slash / tab \t"),
                           std::string("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8"),
                           std::string("\x1f\x7f", 2), std::string("nul\0inside", 10)}) {
    INFO(json::serialize(json::string(text)));
    CHECK(quoted(text) == json::serialize(json::string(text)));
    CHECK(json::parse(quoted(text)).as_string() == text);
  }
  CHECK(quoted("\b\f\n\r\t\x01") == R"("\b\f\n\r\t\u0001")");
}

TEST_CASE("json_write: an object's members in the order written, each kind as JSON reads it") {
  std::string text = JsonObject()
                         .str("s", "a\"b")
                         .num("neg", std::int64_t{-42})
                         .num("max", std::numeric_limits<std::uint64_t>::max())
                         .boolean("yes", true)
                         .boolean("no", false)
                         .null("none")
                         .raw("body", R"({"x":[1,2.5,"y"]})")
                         .str("key \"escaped\"", "")
                         .done();
  CHECK(text ==
        R"({"s":"a\"b","neg":-42,"max":18446744073709551615,"yes":true,"no":false,"none":null,)"
        R"("body":{"x":[1,2.5,"y"]},"key \"escaped\"":""})");
  json::object o = json::parse(text).as_object();
  CHECK(o.at("s").as_string() == "a\"b");
  CHECK(o.at("neg").as_int64() == -42);
  CHECK(o.at("max").as_uint64() == std::numeric_limits<std::uint64_t>::max());
  CHECK(o.at("body").as_object().at("x").as_array().size() == 3);
  CHECK(o.contains("key \"escaped\""));
}

TEST_CASE("json_write: empty and nested containers") {
  CHECK(JsonObject().done() == "{}");
  CHECK(JsonArray().done() == "[]");
  std::string nested = JsonArray().raw(JsonObject().num("a", 1).done()).str("b").num(-3).raw("[]").done();
  CHECK(nested == R"([{"a":1},"b",-3,[]])");
  CHECK(json::parse(nested).as_array().size() == 4);
}

// ---- json_read.h: check_json and JsonView, with boost::json's DOM as the oracle ----

namespace {

// Whether `view` reads as the DOM's `value`: same kind, same scalars, same members (for a key
// given twice, the DOM keeps the last and so does find), same elements.
bool same(const JsonView& view, const json::value& value, bool& non_finite) {
  switch (value.kind()) {
    case json::kind::null: return view.is_null();
    case json::kind::bool_: return view.is_bool() && view.get_bool() == value.get_bool();
    case json::kind::int64: return view.is_int64() && view.get_int64() == value.get_int64();
    case json::kind::uint64: return view.is_uint64() && !view.is_int64() && !view.is_double();
    case json::kind::double_:
      if (!std::isfinite(value.get_double())) non_finite = true;
      return view.is_double() && !view.is_int64() && !view.is_uint64();
    case json::kind::string:
      return view.is_string() && view.get_string() == std::string(value.get_string()) &&
             view.string_is(value.get_string());
    case json::kind::array: {
      if (!view.is_array()) return false;
      std::vector<JsonView> elements = view.elements();
      if (elements.size() != value.get_array().size()) return false;
      for (std::size_t i = 0; i < elements.size(); ++i)
        if (!same(elements[i], value.get_array()[i], non_finite)) return false;
      return true;
    }
    case json::kind::object: {
      if (!view.is_object()) return false;
      std::size_t distinct = 0;
      std::vector<std::string> keys;
      for (const JsonMember& member : view.members()) {
        std::string key = member.key();
        if (!member.key_is(key)) return false;
        if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key), ++distinct;
      }
      if (distinct != value.get_object().size()) return false;
      for (const auto& field : value.get_object()) {
        auto found = view.find(field.key());
        if (!found || !same(*found, field.value(), non_finite)) return false;
      }
      return true;
    }
  }
  return false;
}

// check_json against json::parse on one text: the same verdict, the same message, and when
// accepted the same values and the same non-finite finding.
void check_against_dom(const std::string& text) {
  INFO(text);
  json::parse_options options;
  options.max_depth = 8;
  json::error_code ec;
  json::value value = json::parse(text, ec, {}, options);
  JsonChecked checked = check_json(text, 8);
  REQUIRE(checked.error.has_value() == static_cast<bool>(ec));
  if (ec) {
    CHECK(checked.error->find(" at byte ") != std::string::npos);
    return;
  }
  bool non_finite = false;
  CHECK(same(checked.value, value, non_finite));
  CHECK(checked.non_finite == non_finite);
}

}  // namespace

TEST_CASE("json_read: check_json and JsonView read what boost::json's DOM reads") {
  for (std::string text : {
           R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})", R"(  [1, -0, 2.5e3, 1E2, -1.5]  )",
           R"("\u00e9\ud83d\ude00\n\"\\\/")", R"({"k\u0065y":1,"key":2})", R"({"x":1,"x":"last"})",
           "9223372036854775807", "-9223372036854775808", "9223372036854775808",
           "18446744073709551615", "18446744073709551616", "-9223372036854775809", "1e400",
           "-1e400", "1e-400", R"({"body":{"n":[1e309]}})", "0", "-0", "0.0", "{}", "[]",
           R"([[[[[[[1]]]]]]])", R"([[[[[[[[[1]]]]]]]]])", "", " ", "{", "[1,]", "{\"a\":1,}",
           "01", "1.", ".5", "+1", "tru", "nul", "\"\\x\"", "\"\\ud800\"", "\"\x01\"",
           "\"\xff\"", "\"\xc3\"", "{} x", "1 2", "/* c */ 1", "{\"a\" 1}", "[1 2]", "NaN",
           "Infinity", "\"a\"\"b\"", "{\"\":\"\"}", "[\"\\u0000\"]"}) {
    check_against_dom(text);
  }
}

TEST_CASE("json_read: a refusal names the fault and the byte it is at") {
  CHECK(check_json("{} x", 8).error == "extra data after the value at byte 3");
  CHECK(check_json("[1,]", 8).error == "syntax error at byte 3");
  CHECK(check_json("", 8).error == "incomplete JSON at byte 0");
  CHECK(check_json(R"({"a":[1,2)", 8).error == "incomplete JSON at byte 9");
  CHECK(check_json("[[[[[[[[[1]]]]]]]]]", 8).error == "nested too deep at byte 8");
  CHECK(check_json("\"\\ud800\"", 8).error == "syntax error at byte 7");
  CHECK(check_json("\"\\ud800\\u0041\"", 8).error == "illegal trailing surrogate at byte 9");
  CHECK(check_json("\"\xff\"", 8).error == "syntax error at byte 1");
  CHECK((!check_json("[1e99999]", 8).error && check_json("[1e99999]", 8).non_finite));
  CHECK(!check_json(" {\"a\":[]} ", 8).error);
}

TEST_CASE("json_read: random documents and their mutations agree with boost::json") {
  std::uint64_t state = 0x5eed1234abcdefull;  // fixed: the same documents on every run
  auto next = [&](std::uint64_t bound) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (state >> 33) % bound;
  };
  static constexpr std::string_view kPieces[] = {
      "{", "}", "[", "]", ",", ":", "\"a\"", "\"\\u00e9\"", "\"b\\\"c\"", "1", "-2", "3.5",
      "1e400", "true", "false", "null", " ", "\"body\"", "18446744073709551615", "\"\\ud83d\\ude00\""};
  for (int round = 0; round < 4000; ++round) {
    std::string text;
    if (round % 2 == 0) {
      // Valid documents: a random tree written by boost::json, then maybe one byte changed.
      std::function<json::value(int)> make = [&](int depth) -> json::value {
        switch (next(depth > 3 ? 5 : 7)) {
          case 0: return nullptr;
          case 1: return next(2) == 0;
          case 2: return static_cast<std::int64_t>(next(1u << 31)) - (1 << 30);
          case 3: return json::string(std::string(1 + next(3), static_cast<char>('a' + next(3))));
          case 4: return static_cast<double>(next(1000)) / 8.0;
          case 5: {
            json::array a;
            for (std::uint64_t i = next(4); i > 0; --i) a.push_back(make(depth + 1));
            return a;
          }
          default: {
            json::object o;
            for (std::uint64_t i = next(4); i > 0; --i)
              o[std::string(1, static_cast<char>('k' + next(4)))] = make(depth + 1);
            return o;
          }
        }
      };
      text = json::serialize(make(0));
      if (next(3) == 0 && !text.empty()) text[next(text.size())] = static_cast<char>(next(128));
    } else {
      // Random token soup: mostly invalid, sometimes not.
      for (std::uint64_t i = 1 + next(10); i > 0; --i) text += kPieces[next(std::size(kPieces))];
    }
    check_against_dom(text);
  }
}
