// json_text_test: the core's JSON writer (json_write.h) against boost::json, which reads every
// frame back: each string escapes as boost::json's serializer escapes it, and what is written
// parses to what was meant.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <limits>
#include <string>

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
