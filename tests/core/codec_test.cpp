// codec_test: every frame of protocol.md round-trips through serialize/parse, and every kind of
// bad input of "Errors and bad input" is refused with its code and a message naming the field.
#include <catch2/catch.hpp>

#include <cmath>

#include <boost/json.hpp>

#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "waymark/codec.h"
#include "waymark/identifiers.h"
#include "waymark/write_batch.h"

namespace json = boost::json;
using namespace waymark;

namespace {

// The direction names say who wrote the text: a client (parsed at the edge) or an edge.
using Strings = std::vector<std::string>;

constexpr Direction kFromClient = Direction::from_client;
constexpr Direction kFromEdge = Direction::from_edge;

constexpr std::string_view kTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

const char* direction_name(Direction direction) {
  return direction == kFromClient ? "from_client" : "from_edge";
}

// serialize -> parse must give back the very same struct.
void check_round_trip(const Frame& frame, Direction direction) {
  std::string text = serialize(frame);
  INFO("type " << frame_type(frame) << ", " << direction_name(direction) << ": " << text);
  auto parsed = parse_frame(text, direction);
  if (!parsed.ok()) FAIL("parse failed: " << parsed.error().message);
  CHECK(frame_type(parsed.value()) == frame_type(frame));
  CHECK(serialize(parsed.value()) == text);
  CHECK(parsed.value() == frame);
}

// The frame is refused with `code`, and the message starts with "<field>:" and says more.
void check_rejected(std::string_view text, Direction direction, ErrorCode code,
                    std::string_view field, const ParseLimits& limits = {}) {
  INFO(direction_name(direction) << ": "
                                 << (text.size() <= 400 ? std::string(text)
                                                        : std::string(text.substr(0, 400)) + "..."));
  auto parsed = parse_frame(text, direction, limits);
  if (parsed.ok()) FAIL("accepted as " << serialize(parsed.value()));
  CHECK(to_string(parsed.error().code) == to_string(code));
  const std::string& message = parsed.error().message;
  std::string prefix = std::string(field) + ":";
  INFO("message: " << message);
  CHECK(message.rfind(prefix, 0) == 0);
  CHECK(message.size() > prefix.size() + 1);  // a reason follows the field name
}

Frame parse_ok(std::string_view text, Direction direction) {
  INFO(direction_name(direction) << ": " << text);
  auto parsed = parse_frame(text, direction);
  if (!parsed.ok()) FAIL("refused: " << parsed.error().message);
  return parsed.value();
}

std::set<std::string> keys_of(const std::string& text) {
  std::set<std::string> keys;
  const json::value value = json::parse(text);  // named: the loop must not outlive it
  for (const auto& field : value.as_object()) keys.insert(std::string(field.key()));
  return keys;
}

Msg sample_msg(Seq seq) {
  Msg m;
  m.conv = "ops";
  m.seq = seq;
  m.id = "01JD0000000000000000000" + std::to_string(seq % 10);
  m.from = "alice";
  m.ts = 1700000000000 + static_cast<TimeMs>(seq);
  m.cts = 1699999999000;
  m.trace = std::string(kTrace);
  m.body = JsonText{R"({"text":"db failover done","n":)" + std::to_string(seq) + "}"};
  return m;
}

}  // namespace

// ---- round trips ------------------------------------------------------------------------

TEST_CASE("codec: client frames round-trip with optional fields present and absent", "[codec]") {
  SECTION("hello") {
    check_round_trip(Hello{"dev:alice", std::nullopt, {}, std::nullopt}, kFromClient);
    check_round_trip(Hello{"", std::nullopt, {}, std::nullopt}, kFromClient);
    check_round_trip(Hello{"eyJhbGciOi.x.y", "tab-7f3a",
                           {SubRequest{"ops", 41, std::nullopt}, SubRequest{"team.a:b-c_d", std::nullopt, 10},
                            SubRequest{"z", 0, 1000}, SubRequest{"only-conv", std::nullopt, std::nullopt}},
                           "r-1"},
                     kFromClient);
  }
  SECTION("sub") {
    check_round_trip(Sub{SubRequest{"ops", std::nullopt, std::nullopt}, std::nullopt}, kFromClient);
    check_round_trip(Sub{SubRequest{"ops", 41, 500}, "rid"}, kFromClient);
    check_round_trip(Sub{SubRequest{"ops", 0, std::nullopt}, std::nullopt}, kFromClient);
    check_round_trip(Sub{SubRequest{"ops", std::nullopt, 1}, ""}, kFromClient);
  }
  SECTION("unsub") {
    check_round_trip(Unsub{"ops", std::nullopt}, kFromClient);
    check_round_trip(Unsub{"ops", "r"}, kFromClient);
  }
  SECTION("hist") {
    check_round_trip(Hist{"ops", std::nullopt, std::nullopt, std::nullopt, std::nullopt}, kFromClient);
    check_round_trip(Hist{"ops", 120, std::nullopt, 50, "h1"}, kFromClient);
    check_round_trip(Hist{"ops", std::nullopt, 7, std::nullopt, std::nullopt}, kFromClient);
    check_round_trip(Hist{"ops", std::nullopt, 0, 1, std::nullopt}, kFromClient);
  }
  SECTION("send") {
    check_round_trip(Send{"ops", "01JD", JsonText{"null"}, std::nullopt, std::nullopt, std::nullopt},
                     kFromClient);
    check_round_trip(Send{"ops", "01JD-x_y", JsonText{R"({"text":"db failover done"})"},
                          1700000000000, std::string(kTrace), "s-9"},
                     kFromClient);
    check_round_trip(Send{"ops", "a", JsonText{R"([1,"two",{"3":[]}])"}, 0, std::nullopt, std::nullopt},
                     kFromClient);
  }
  SECTION("ping") {
    check_round_trip(Ping{std::nullopt, std::nullopt}, kFromClient);
    check_round_trip(Ping{1700000000000, "p"}, kFromClient);
    check_round_trip(Ping{0, std::nullopt}, kFromClient);
  }
  SECTION("rcpt and typing from a client carry no user") {
    check_round_trip(Rcpt{"ops", 44, ReceiptKind::read, std::nullopt, std::nullopt}, kFromClient);
    check_round_trip(Rcpt{"ops", 1, ReceiptKind::delivered, std::nullopt, "r"}, kFromClient);
    check_round_trip(Typing{"ops", true, std::nullopt, std::nullopt}, kFromClient);
    check_round_trip(Typing{"ops", false, std::nullopt, "t"}, kFromClient);
  }
}

TEST_CASE("codec: edge frames round-trip with optional fields present and absent", "[codec]") {
  SECTION("welcome") {
    check_round_trip(Welcome{"0123abcd", "edge-eu-1", "alice", 1700000000000, 15000, 65536, std::nullopt},
                     kFromEdge);
    check_round_trip(Welcome{"s", "n", "u", 0, 1, 1, "w"}, kFromEdge);
  }
  SECTION("msg") {
    check_round_trip(sample_msg(42), kFromEdge);
    Msg provisional = sample_msg(1);  // a relaying edge's msg: no seq, cts, or trace
    provisional.seq.reset();
    provisional.cts.reset();
    provisional.trace.reset();
    provisional.body = JsonText{"null"};
    check_round_trip(provisional, kFromEdge);
  }
  SECTION("subd") {
    check_round_trip(Subd{"ops", 43, 40, {"bob"}, false, std::nullopt}, kFromEdge);
    check_round_trip(Subd{"ops", 0, 0, {}, true, "s"}, kFromEdge);
    check_round_trip(Subd{"ops", 9, 9, {"alice", "bob", "c.d@e"}, true, std::nullopt}, kFromEdge);
  }
  SECTION("page") {
    check_round_trip(Page{"ops", {}, false, std::nullopt}, kFromEdge);
    check_round_trip(Page{"ops", {sample_msg(1), sample_msg(2), sample_msg(3)}, true, "h1"}, kFromEdge);
  }
  SECTION("ack") {
    check_round_trip(Ack{"ops", "01JD", 44, 1700000000000, std::string(kTrace), false, std::nullopt}, kFromEdge);
    check_round_trip(Ack{"ops", "01JD", 44, 1, std::nullopt, true, "a"}, kFromEdge);
    check_round_trip(Ack{"ops", "01JD", std::nullopt, 5, std::nullopt, false, std::nullopt}, kFromEdge);
  }
  SECTION("nack, with every error code") {
    for (ErrorCode code : {ErrorCode::bad_frame, ErrorCode::unknown_type, ErrorCode::invalid,
                           ErrorCode::too_large, ErrorCode::unauthorized, ErrorCode::forbidden,
                           ErrorCode::rate_limited, ErrorCode::unavailable}) {
      check_round_trip(Nack{"ops", "01JD", code, "why", code == ErrorCode::unavailable, std::nullopt},
                       kFromEdge);
      check_round_trip(Nack{"ops", "01JD", code, "", false, "n"}, kFromEdge);
    }
  }
  SECTION("rcpt and typing from an edge carry the user") {
    check_round_trip(Rcpt{"ops", 44, ReceiptKind::read, "alice", std::nullopt}, kFromEdge);
    check_round_trip(Rcpt{"ops", 2, ReceiptKind::delivered, "bob", std::nullopt}, kFromEdge);
    check_round_trip(Typing{"ops", true, "alice", std::nullopt}, kFromEdge);
    check_round_trip(Typing{"ops", false, "bob", std::nullopt}, kFromEdge);
  }
  SECTION("presence") {
    check_round_trip(Presence{"ops", "bob", false}, kFromEdge);
    check_round_trip(Presence{"ops", "alice", true}, kFromEdge);
    // A relay's, for one of its users: as, no user.
    check_round_trip(Presence{"ops", "", true, "alice"}, kFromClient);
    check_round_trip(Presence{"ops", "", false, "bob"}, kFromClient);
    CHECK(serialize(Presence{"ops", "", true, "alice"}) ==
          R"({"t":"relay_presence","conv":"ops","on":true,"as":"alice"})");
  }
  SECTION("pong") {
    check_round_trip(Pong{1700000000000, std::nullopt}, kFromEdge);
    check_round_trip(Pong{0, "p"}, kFromEdge);
  }
  SECTION("bye") {
    check_round_trip(Bye{"shutdown", 500, 5500}, kFromEdge);
    check_round_trip(Bye{"", 0, 0}, kFromEdge);
  }
  SECTION("err, with every error code") {
    for (ErrorCode code : {ErrorCode::bad_frame, ErrorCode::unknown_type, ErrorCode::invalid,
                           ErrorCode::too_large, ErrorCode::unauthorized, ErrorCode::forbidden,
                           ErrorCode::rate_limited, ErrorCode::unavailable}) {
      check_round_trip(Err{code, "conv: must be ...", std::nullopt}, kFromEdge);
      check_round_trip(Err{code, "", "e-1"}, kFromEdge);
    }
  }
}

TEST_CASE("codec: msg and ack text is what boost::json writes for the same fields", "[codec]") {
  // The codec writes every frame without a DOM (json_write.h); boost::json is the oracle here.
  const std::vector<std::string> names = {
      "ops", "with \"quotes\" and \\ back", std::string("nul\0and\x01\x1f", 9), "tab\tnew\nline\r",
      "del\x7f", "caf\xc3\xa9 \xe2\x9c\x93", ""};
  for (const std::string& name : names) {
    for (bool full : {false, true}) {
      Msg m;
      m.conv = name.empty() ? "c" : name;
      m.id = "id-" + name;
      m.from = name;
      m.ts = full ? -1 : std::numeric_limits<TimeMs>::max();
      m.body = JsonText{R"({"text":"x"})"};
      json::object expected{{"t", "msg"}, {"conv", m.conv}};
      if (full) {
        m.seq = std::numeric_limits<Seq>::max();
        expected["seq"] = *m.seq;
      } else {
        m.provisional = true;
        expected["prov"] = true;
      }
      expected["id"] = m.id;
      expected["from"] = m.from;
      expected["ts"] = m.ts;
      if (full) {
        m.cts = 1700000000000;
        m.trace = "00-" + name;
        expected["cts"] = *m.cts;
        expected["trace"] = *m.trace;
      }
      std::string text = json::serialize(expected);
      text.pop_back();
      text += R"(,"body":{"text":"x"}})";
      CHECK(serialize(Frame{m}) == text);

      Ack a;
      a.conv = m.conv;
      a.id = m.id;
      a.ts = m.ts;
      json::object ack{{"t", "ack"}, {"conv", a.conv}, {"id", a.id}};
      if (full) {
        a.seq = 0;
        ack["seq"] = *a.seq;
      }
      ack["ts"] = a.ts;
      if (full) {
        a.trace = m.trace;
        a.dup = true;
        a.rid = name;
        ack["trace"] = *a.trace;
        ack["dup"] = true;
        ack["rid"] = *a.rid;
      }
      CHECK(serialize(Frame{a}) == json::serialize(ack));
    }
  }
}

TEST_CASE("codec: frame_type names every frame as protocol.md spells it", "[codec]") {
  CHECK(frame_type(Hello{}) == "hello");
  CHECK(frame_type(Sub{}) == "sub");
  CHECK(frame_type(Unsub{}) == "unsub");
  CHECK(frame_type(Hist{}) == "hist");
  CHECK(frame_type(Send{}) == "send");
  CHECK(frame_type(Ping{}) == "ping");
  CHECK(frame_type(Rcpt{}) == "rcpt");
  CHECK(frame_type(Typing{}) == "typing");
  CHECK(frame_type(Welcome{}) == "welcome");
  CHECK(frame_type(Msg{}) == "msg");
  CHECK(frame_type(Subd{}) == "subd");
  CHECK(frame_type(Page{}) == "page");
  CHECK(frame_type(Ack{}) == "ack");
  CHECK(frame_type(Nack{}) == "nack");
  CHECK(frame_type(Presence{}) == "presence");
  CHECK(frame_type(Pong{}) == "pong");
  CHECK(frame_type(Bye{}) == "bye");
  CHECK(frame_type(Err{}) == "err");
}

TEST_CASE("codec: serialize omits absent optional fields", "[codec]") {
  using Keys = std::set<std::string>;
  CHECK(serialize(Ping{}) == R"({"t":"ping"})");
  CHECK(keys_of(serialize(Hello{"dev:a", std::nullopt, {}, std::nullopt})) == Keys{"t", "token"});
  CHECK(keys_of(serialize(Sub{SubRequest{"ops", std::nullopt, std::nullopt}, std::nullopt})) ==
        Keys{"t", "conv"});
  CHECK(keys_of(serialize(Hist{"ops", std::nullopt, std::nullopt, std::nullopt, std::nullopt})) ==
        Keys{"t", "conv"});
  CHECK(keys_of(serialize(Send{"ops", "x", JsonText{"null"}, std::nullopt, std::nullopt, std::nullopt})) ==
        Keys{"t", "conv", "id", "body"});
  CHECK(keys_of(serialize(Ack{"ops", "x", std::nullopt, 5, std::nullopt, false, std::nullopt})) ==
        Keys{"t", "conv", "id", "ts"});
  CHECK(keys_of(serialize(Ack{"ops", "x", 3, 5, std::string(kTrace), true, "r"})) ==
        Keys{"t", "conv", "id", "seq", "ts", "trace", "dup", "rid"});
  Msg bare = sample_msg(1);
  bare.seq.reset();
  bare.cts.reset();
  bare.trace.reset();
  CHECK(keys_of(serialize(bare)) == Keys{"t", "conv", "id", "from", "ts", "body"});
  CHECK(keys_of(serialize(Rcpt{"ops", 1, ReceiptKind::read, std::nullopt, std::nullopt})) ==
        Keys{"t", "conv", "seq", "kind"});
  // bye's window travels as a two-element array.
  CHECK(serialize(Bye{"shutdown", 500, 5500}) == R"({"t":"bye","reason":"shutdown","retry_ms":[500,5500]})");
}

TEST_CASE("codec: the protocol.md examples parse as written", "[codec]") {
  Frame hello = parse_ok(
      R"({"t":"hello","token":"dev:alice","device":"tab-7f3a","subs":[{"conv":"ops","after":41}]})",
      kFromClient);
  CHECK(hello == Frame{Hello{"dev:alice", "tab-7f3a", {SubRequest{"ops", 41, std::nullopt}}, std::nullopt}});

  Frame send = parse_ok(
      R"({"t":"send","conv":"ops","id":"01JD","body":{"text":"db failover done"},"cts":1700000000000})",
      kFromClient);
  CHECK(send == Frame{Send{"ops", "01JD", JsonText{R"({"text":"db failover done"})"}, 1700000000000,
                           std::nullopt, std::nullopt}});

  CHECK(parse_ok(R"({"t":"rcpt","conv":"ops","seq":44,"kind":"read"})", kFromClient) ==
        Frame{Rcpt{"ops", 44, ReceiptKind::read, std::nullopt, std::nullopt}});
  CHECK(parse_ok(R"({"t":"rcpt","conv":"ops","user":"alice","seq":44,"kind":"read"})", kFromEdge) ==
        Frame{Rcpt{"ops", 44, ReceiptKind::read, "alice", std::nullopt}});
  CHECK(parse_ok(R"({"t":"typing","conv":"ops","user":"alice","on":true})", kFromEdge) ==
        Frame{Typing{"ops", true, "alice", std::nullopt}});
  CHECK(parse_ok(R"({"t":"presence","conv":"ops","user":"bob","on":false})", kFromEdge) ==
        Frame{Presence{"ops", "bob", false}});
  CHECK(parse_ok(R"({"t":"bye","reason":"shutdown","retry_ms":[500,5500]})", kFromEdge) ==
        Frame{Bye{"shutdown", 500, 5500}});
  CHECK(parse_ok(R"({"t":"subd","conv":"ops","head":43,"read":40,"present":["bob"],"more":false})",
                 kFromEdge) == Frame{Subd{"ops", 43, 40, {"bob"}, false, std::nullopt}});
  CHECK(parse_ok(R"({"t":"hist","conv":"ops","before":120,"limit":50})", kFromClient) ==
        Frame{Hist{"ops", 120, std::nullopt, 50, std::nullopt}});
  CHECK(parse_ok(R"({"t":"nack","conv":"ops","id":"01JD","code":"rate_limited","msg":"slow down","retry":true})",
                 kFromEdge) == Frame{Nack{"ops", "01JD", ErrorCode::rate_limited, "slow down", true, std::nullopt}});
}

TEST_CASE("codec: a client's rcpt and typing cannot claim a user", "[codec]") {
  // The edge fills in the user from the token; a client-supplied one is not trusted.
  Frame rcpt = parse_ok(R"({"t":"rcpt","conv":"ops","user":"mallory","seq":3,"kind":"delivered"})", kFromClient);
  REQUIRE(std::holds_alternative<Rcpt>(rcpt));
  CHECK_FALSE(std::get<Rcpt>(rcpt).user.has_value());
  CHECK(std::get<Rcpt>(rcpt).kind == ReceiptKind::delivered);
  Frame typing = parse_ok(R"({"t":"typing","conv":"ops","user":"mallory","on":true})", kFromClient);
  REQUIRE(std::holds_alternative<Typing>(typing));
  CHECK_FALSE(std::get<Typing>(typing).user.has_value());
}

// ---- unknown fields and bodies ----------------------------------------------------------

TEST_CASE("codec: unknown fields are ignored, at the top level and inside subs and msgs", "[codec]") {
  CHECK(parse_ok(R"({"t":"ping","ts":5,"x":{"y":[1,2]},"zzz":null,"T":"send"})", kFromClient) ==
        Frame{Ping{5, std::nullopt}});
  CHECK(parse_ok(R"({"extra":1,"t":"hello","token":"dev:a","subs":[{"conv":"ops","future":true}]})",
                 kFromClient) == Frame{Hello{"dev:a", std::nullopt, {SubRequest{"ops", std::nullopt, std::nullopt}},
                                             std::nullopt}});
  CHECK(parse_ok(R"({"t":"unsub","conv":"ops","v":2})", kFromClient) == Frame{Unsub{"ops", std::nullopt}});
  Frame page = parse_ok(
      R"({"t":"page","conv":"ops","msgs":[{"t":"msg","conv":"ops","seq":1,"id":"a","from":"bob","ts":1,"body":null,"edited":false}],"more":false,"next":"x"})",
      kFromEdge);
  REQUIRE(std::holds_alternative<Page>(page));
  REQUIRE(std::get<Page>(page).msgs.size() == 1);
  CHECK(std::get<Page>(page).msgs[0].id == "a");
}

TEST_CASE("codec: body may be any JSON value", "[codec]") {
  const std::vector<std::string> bodies = {
      "null",
      "true",
      "false",
      "0",
      "-5",
      "3.25",
      "-1.5e-7",
      "9007199254740991",
      R"("")",
      R"("plain text")",
      R"("unicode: 日本語 é Ω 😀")",
      R"("escaped: \u00e9 \ud83d\ude00 \n\t\"\\ \/")",
      "[]",
      "{}",
      R"([1,"two",null,true,{"three":[3]}])",
      R"({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":"deep"}}}}}}}}}})",
      R"({"text":"db failover done","mentions":["bob"],"attachments":[{"url":"https://x/y","size":12}]})",
  };
  for (const std::string& body : bodies) {
    INFO("body " << body);
    Frame send = parse_ok(R"({"t":"send","conv":"ops","id":"b1","body":)" + body + "}", kFromClient);
    REQUIRE(std::holds_alternative<Send>(send));
    CHECK(std::get<Send>(send).body == JsonText{body});  // byte for byte
    check_round_trip(send, kFromClient);

    Frame msg = parse_ok(R"({"t":"msg","conv":"ops","seq":1,"id":"b1","from":"a","ts":1,"body":)" + body + "}",
                         kFromEdge);
    REQUIRE(std::holds_alternative<Msg>(msg));
    CHECK(std::get<Msg>(msg).body == JsonText{body});
    check_round_trip(msg, kFromEdge);
  }
}

TEST_CASE("codec: a number too large for a double in body is refused or survives serialization",
          "[codec]") {
  // 1e400 is JSON text but no double: whatever the codec accepts must serialize back to JSON
  // (a stored msg frame that is not JSON would poison every replay of the conversation).
  for (const std::string& body : Strings{"1e400", "-1e400", "[1e999]", R"({"x":-2e308})"}) {
    INFO("body " << body);
    auto parsed = parse_frame(R"({"t":"send","conv":"ops","id":"b1","body":)" + body + "}", kFromClient);
    if (!parsed.ok()) {
      CHECK(to_string(parsed.error().code) == "invalid");
      CHECK(parsed.error().message.rfind("body:", 0) == 0);
      continue;
    }
    std::string text = serialize(parsed.value());
    INFO("serialized " << text);
    json::error_code ec;
    json::parse(text, ec);
    CHECK_FALSE(ec);
  }
}

TEST_CASE("codec: a number in body travels as the sender wrote it", "[codec]") {
  // A body is validated once and never re-serialized: Boost.JSON 1.81 reads some decimals one
  // ulp off (5e29), and a long integer the fuzzer found came back as 9.200739925400005E52.
  for (const std::string& number :
       Strings{"5e29", "5E29", "0.1", "1e23", "499999999999999999999999999999",
               "1.7976931348623157e308", "92007399254000066666666666666666666600000091109243027",
               "-0.0", "1.50", "6666666666666666666666666682e00", "12345678901234567890"}) {
    INFO("body " << number);
    const std::string body = R"({"n":)" + number + "}";
    Frame send = parse_ok(R"({"t":"send","conv":"ops","id":"n","body":)" + body + "}", kFromClient);
    CHECK(std::get<Send>(send).body.text == body);
    std::string hop1 = serialize(send);
    CHECK(hop1.find(body) != std::string::npos);
    CHECK(serialize(parse_ok(hop1, kFromClient)) == hop1);
    Frame msg = parse_ok(R"({"t":"msg","conv":"ops","seq":1,"id":"n","from":"a","ts":1,"body":)" + body + "}",
                         kFromEdge);
    CHECK(std::get<Msg>(msg).body.text == body);
  }
}

TEST_CASE("codec: a body is cut from its frame exactly, whatever surrounds it", "[codec]") {
  struct Case {
    std::string frame;
    std::string body;
  };
  for (const Case& c : std::vector<Case>{
           // spaces and newlines around and inside
           {" {\n \"t\" : \"send\" , \"conv\":\"ops\",\"id\":\"x\", \"body\" :  { \"a\" : [ 1 , 2 ] }  ,\"cts\":1 } ",
            R"({ "a" : [ 1 , 2 ] })"},
           // an escaped key is still "body"
           {R"({"t":"send","conv":"ops","id":"x","b\u006fdy":[true]})", "[true]"},
           // a repeated key: the last one, as boost::json keeps
           {R"({"t":"send","conv":"ops","id":"x","body":1,"body":"second"})", R"("second")"},
           // strings holding braces, quotes, escapes and a "body" of their own
           {R"({"t":"send","body":{"s":"}]\"{[","k\"":"\\"},"conv":"ops","id":"x","x":{"body":2}})",
            R"({"s":"}]\"{[","k\"":"\\"})"},
           // body first, scalar, before other members
           {R"({"body":-1.5e-7,"t":"send","conv":"ops","id":"x"})", "-1.5e-7"},
           {R"({"t":"send","conv":"ops","id":"x","body":null})", "null"},
       }) {
    INFO("frame " << c.frame);
    Frame send = parse_ok(c.frame, kFromClient);
    CHECK(std::get<Send>(send).body.text == c.body);
    CHECK(std::get<Send>(send).body == std::get<Send>(parse_ok(serialize(send), kFromClient)).body);
  }
  // Inside a page, each msg keeps its own body.
  const std::string page_text =
      R"({"t":"page","conv":"ops","msgs":[{"t":"msg","conv":"ops","seq":1,"id":"a","from":"b","ts":1,"body":{"body":"]"}},)"
      R"({"t":"msg","body": [ "x" ] ,"conv":"ops","seq":2,"id":"c","from":"b","ts":1}],"more":false})";
  Frame page = parse_ok(page_text, kFromEdge);
  REQUIRE(std::get<Page>(page).msgs.size() == 2);
  CHECK(std::get<Page>(page).msgs[0].body.text == R"({"body":"]"})");
  CHECK(std::get<Page>(page).msgs[1].body.text == R"([ "x" ])");
}

TEST_CASE("codec: parse_json_text checks an app's body by a frame's rules", "[codec]") {
  CHECK(parse_json_text(R"({"text":"hi"})").value() == JsonText{R"({"text":"hi"})"});
  CHECK(parse_json_text(" [1, 2]\n").value() == JsonText{"[1, 2]"});
  CHECK(parse_json_text("5e29").value() == JsonText{"5e29"});
  for (const std::string& bad : Strings{"", "  ", "{", "undefined", "NaN", "1e400", R"({"x":[-1e999]})",
                                        "[1] [2]", "\"\xff\""}) {
    INFO("body " << bad);
    auto parsed = parse_json_text(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::invalid);
    CHECK(parsed.error().message.rfind("body:", 0) == 0);
  }
  // A body that nests as deep as a frame allows is accepted alone and inside a send frame.
  std::string deep = std::string(31, '[') + std::string(31, ']');
  REQUIRE(parse_json_text(deep).ok());
  CHECK(parse_frame(R"({"t":"send","conv":"ops","id":"x","body":)" + deep + "}", kFromClient).ok());
  CHECK_FALSE(parse_json_text("[" + deep + "]").ok());
}

// ---- bad input: bad_frame, unknown_type, too_large --------------------------------------

TEST_CASE("codec: text that is not a JSON object is bad_frame", "[codec]") {
  for (Direction direction : {kFromClient, kFromEdge}) {
    for (const std::string& text : Strings{"", " ", "not json", "{", "}", R"({"t":"ping")", R"({"t":"ping",})",
                             R"({'t':'ping'})", R"({t:"ping"})", R"({"t":"ping"} trailing)",
                             R"({"t":"ping"}{"t":"ping"})", R"({"t":"ping" /* comment */})",
                             "[1,2]", R"([{"t":"ping"}])", "[]", "42", "-1.5", R"("hello")", "null",
                             "true", "\xff\xfe", "{\"t\":\"ping\",\"rid\":\"\xc3\x28\"}",
                             R"({"t":"send","conv":"ops","id":"x","body":"\ud800"})"}) {
      check_rejected(text, direction, ErrorCode::bad_frame, "frame");
    }
  }
}

TEST_CASE("codec: thousands of nested arrays are bad_frame, not a crash", "[codec]") {
  std::string deep = R"({"t":"send","conv":"ops","id":"x","body":)" + std::string(5000, '[') +
                     std::string(5000, ']') + "}";
  check_rejected(deep, kFromClient, ErrorCode::bad_frame, "frame");
  check_rejected(std::string(20000, '['), kFromEdge, ErrorCode::bad_frame, "frame");
  std::string objects;
  for (int i = 0; i < 3000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(3000, '}');
  check_rejected(objects, kFromClient, ErrorCode::bad_frame, "frame");
}

TEST_CASE("codec: an unknown \"t\" is unknown_type, and so is the other side's frame", "[codec]") {
  for (Direction direction : {kFromClient, kFromEdge}) {
    check_rejected(R"({"t":"nope"})", direction, ErrorCode::unknown_type, "t");
    check_rejected(R"({"t":""})", direction, ErrorCode::unknown_type, "t");
    check_rejected(R"({"t":"HELLO","token":"x"})", direction, ErrorCode::unknown_type, "t");
    check_rejected(R"({"t":"ping ","ts":1})", direction, ErrorCode::unknown_type, "t");
    check_rejected(R"({"t":")" + std::string(1000, 'x') + R"("})", direction, ErrorCode::unknown_type, "t");
  }
  // Frames only an edge may send, from a client.
  check_rejected(serialize(Welcome{"s", "n", "alice", 1, 15000, 65536, std::nullopt}), kFromClient,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(sample_msg(1)), kFromClient, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Subd{"ops", 1, 0, {}, false, std::nullopt}), kFromClient, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Page{"ops", {}, false, std::nullopt}), kFromClient, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Ack{"ops", "x", 1, 1, std::nullopt, false, std::nullopt}), kFromClient,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Nack{"ops", "x", ErrorCode::forbidden, "no", false, std::nullopt}), kFromClient,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Presence{"ops", "bob", true}), kFromClient, ErrorCode::unknown_type, "t");
  // A relay's relay_presence names its user in as (required); an edge never sends it.
  check_rejected(R"({"t":"relay_presence","conv":"ops","on":true})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(serialize(Presence{"ops", "", true, "bob"}), kFromEdge, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Pong{1, std::nullopt}), kFromClient, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Bye{"shutdown", 1, 2}), kFromClient, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Err{ErrorCode::invalid, "x", std::nullopt}), kFromClient, ErrorCode::unknown_type, "t");
  // Frames only a client may send, from an edge.
  check_rejected(serialize(Hello{"dev:alice", std::nullopt, {}, std::nullopt}), kFromEdge,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Sub{SubRequest{"ops", 1, std::nullopt}, std::nullopt}), kFromEdge,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Unsub{"ops", std::nullopt}), kFromEdge, ErrorCode::unknown_type, "t");
  check_rejected(serialize(Hist{"ops", 5, std::nullopt, std::nullopt, std::nullopt}), kFromEdge,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Send{"ops", "x", JsonText{"1"}, std::nullopt, std::nullopt, std::nullopt}), kFromEdge,
                 ErrorCode::unknown_type, "t");
  check_rejected(serialize(Ping{1, std::nullopt}), kFromEdge, ErrorCode::unknown_type, "t");
}

TEST_CASE("codec: text over max_frame is too_large, whatever it holds", "[codec]") {
  ParseLimits limits;
  limits.max_frame = 100;
  std::string frame = R"({"t":"send","conv":"ops","id":"x","body":")";
  frame += std::string(100 - frame.size() - 2, 'a') + "\"}";
  REQUIRE(frame.size() == 100);
  // Exactly max_frame is allowed; one byte more is not.
  CHECK(parse_frame(frame, kFromClient, limits).ok());
  std::string over = frame;
  over.insert(over.size() - 2, "a");
  check_rejected(over, kFromClient, ErrorCode::too_large, "frame", limits);
  // The size is checked before anything else: garbage over the limit is too_large too.
  check_rejected(std::string(101, '['), kFromEdge, ErrorCode::too_large, "frame", limits);
  // The default limit is protocol.md's 65536.
  std::string big = R"({"t":"ping","pad":")" + std::string(65536, 'p') + "\"}";
  check_rejected(big, kFromClient, ErrorCode::too_large, "frame");
}

// ---- bad input: invalid -----------------------------------------------------------------

TEST_CASE("codec: a missing or non-string \"t\" is invalid", "[codec]") {
  for (Direction direction : {kFromClient, kFromEdge}) {
    check_rejected("{}", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"conv":"ops","type":"sub"})", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"t":5})", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"t":null})", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"t":true})", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"t":["hello"]})", direction, ErrorCode::invalid, "t");
    check_rejected(R"({"t":{"t":"ping"}})", direction, ErrorCode::invalid, "t");
  }
}

TEST_CASE("codec: conv must follow the identifier rules", "[codec]") {
  const std::string c128(128, 'c');
  CHECK(parse_frame(R"({"t":"unsub","conv":")" + c128 + R"("})", kFromClient).ok());
  CHECK(parse_frame(R"({"t":"unsub","conv":"A-z.0_9:x"})", kFromClient).ok());
  for (const std::string& conv : Strings{R"("")", "\"" + c128 + "c\"", R"("a b")", R"("a/b")", R"("a*")", R"("a@b")",
                           R"("é")", R"("a\u0000b")", R"("tab\t")", "5", "null", R"(["ops"])", R"({"c":1})"}) {
    INFO("conv " << conv);
    check_rejected(R"({"t":"unsub","conv":)" + conv + "}", kFromClient, ErrorCode::invalid, "conv");
    check_rejected(R"({"t":"sub","conv":)" + conv + "}", kFromClient, ErrorCode::invalid, "conv");
    check_rejected(R"({"t":"send","conv":)" + conv + R"(,"id":"x","body":1})", kFromClient,
                   ErrorCode::invalid, "conv");
    check_rejected(R"({"t":"msg","conv":)" + conv + R"(,"seq":1,"id":"x","from":"a","ts":1,"body":1})",
                   kFromEdge, ErrorCode::invalid, "conv");
  }
  // Missing, in every frame that needs it.
  check_rejected(R"({"t":"sub"})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"unsub"})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"hist","before":5})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"send","id":"x","body":1})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"rcpt","seq":1,"kind":"read"})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"typing","on":true})", kFromClient, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"msg","seq":1,"id":"x","from":"a","ts":1,"body":1})", kFromEdge, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"subd","head":1,"read":0,"present":[],"more":false})", kFromEdge, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"page","msgs":[],"more":false})", kFromEdge, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"ack","id":"x","seq":1,"ts":1})", kFromEdge, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"nack","id":"x","code":"invalid","msg":"","retry":false})", kFromEdge, ErrorCode::invalid, "conv");
  check_rejected(R"({"t":"presence","user":"a","on":true})", kFromEdge, ErrorCode::invalid, "conv");
}

TEST_CASE("codec: a message id must follow the identifier rules", "[codec]") {
  const std::string i64(64, 'i');
  CHECK(parse_frame(R"({"t":"send","conv":"ops","id":")" + i64 + R"(","body":1})", kFromClient).ok());
  CHECK(parse_frame(R"({"t":"send","conv":"ops","id":"Az09_-","body":1})", kFromClient).ok());
  for (const std::string& id : Strings{R"("")", "\"" + i64 + "i\"", R"("a.b")", R"("a:b")", R"("a b")", R"("a/b")",
                         R"("ü")", "7", "null", R"(["x"])"}) {
    INFO("id " << id);
    check_rejected(R"({"t":"send","conv":"ops","id":)" + id + R"(,"body":1})", kFromClient, ErrorCode::invalid, "id");
    check_rejected(R"({"t":"ack","conv":"ops","id":)" + id + R"(,"seq":1,"ts":1})", kFromEdge, ErrorCode::invalid, "id");
    check_rejected(R"({"t":"msg","conv":"ops","seq":1,"id":)" + id + R"(,"from":"a","ts":1,"body":1})",
                   kFromEdge, ErrorCode::invalid, "id");
  }
  check_rejected(R"({"t":"send","conv":"ops","body":1})", kFromClient, ErrorCode::invalid, "id");
  check_rejected(R"({"t":"ack","conv":"ops","seq":1,"ts":1})", kFromEdge, ErrorCode::invalid, "id");
  check_rejected(R"({"t":"nack","conv":"ops","code":"invalid","msg":"","retry":false})", kFromEdge,
                 ErrorCode::invalid, "id");
}

TEST_CASE("codec: rid is a string of at most 64 chars", "[codec]") {
  CHECK(parse_frame(R"({"t":"ping","rid":")" + std::string(64, 'r') + R"("})", kFromClient).ok());
  CHECK(parse_frame(R"({"t":"ping","rid":""})", kFromClient).ok());
  CHECK(parse_frame(R"({"t":"ping","rid":"any chars / é * {}"})", kFromClient).ok());
  const std::string too_long = "\"" + std::string(65, 'r') + "\"";
  for (const std::string& rid : Strings{too_long, "5", "null", "true", R"(["r"])", R"({"r":1})"}) {
    INFO("rid " << rid);
    check_rejected(R"({"t":"ping","rid":)" + rid + "}", kFromClient, ErrorCode::invalid, "rid");
    check_rejected(R"({"t":"sub","conv":"ops","rid":)" + rid + "}", kFromClient, ErrorCode::invalid, "rid");
    check_rejected(R"({"t":"send","conv":"ops","id":"x","body":1,"rid":)" + rid + "}", kFromClient,
                   ErrorCode::invalid, "rid");
    check_rejected(R"({"t":"hello","token":"dev:a","rid":)" + rid + "}", kFromClient, ErrorCode::invalid, "rid");
    check_rejected(R"({"t":"err","code":"invalid","msg":"x","rid":)" + rid + "}", kFromEdge,
                   ErrorCode::invalid, "rid");
  }
}

TEST_CASE("codec: seq, after, before and times must be non-negative integers", "[codec]") {
  for (const std::string& bad : Strings{"-1", "1.5", "1.0", "1e2", R"("3")", "null", "true", "[1]", "-0.5"}) {
    INFO("value " << bad);
    check_rejected(R"({"t":"sub","conv":"ops","after":)" + bad + "}", kFromClient, ErrorCode::invalid, "after");
    check_rejected(R"({"t":"hist","conv":"ops","after":)" + bad + "}", kFromClient, ErrorCode::invalid, "after");
    check_rejected(R"({"t":"hist","conv":"ops","before":)" + bad + "}", kFromClient, ErrorCode::invalid, "before");
    check_rejected(R"({"t":"rcpt","conv":"ops","seq":)" + bad + R"(,"kind":"read"})", kFromClient,
                   ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"send","conv":"ops","id":"x","body":1,"cts":)" + bad + "}", kFromClient,
                   ErrorCode::invalid, "cts");
    check_rejected(R"({"t":"ping","ts":)" + bad + "}", kFromClient, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"msg","conv":"ops","seq":)" + bad + R"(,"id":"x","from":"a","ts":1,"body":1})",
                   kFromEdge, ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"msg","conv":"ops","seq":1,"id":"x","from":"a","ts":)" + bad + R"(,"body":1})",
                   kFromEdge, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":)" + bad + R"(,"ts":1})", kFromEdge, ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"pong","ts":)" + bad + "}", kFromEdge, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"subd","conv":"ops","head":)" + bad + R"(,"read":0,"present":[],"more":false})",
                   kFromEdge, ErrorCode::invalid, "head");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":)" + bad + R"(,"present":[],"more":false})",
                   kFromEdge, ErrorCode::invalid, "read");
    check_rejected(R"({"t":"welcome","session":"s","node":"n","user":"u","ts":)" + bad +
                       R"(,"hb":1,"max_frame":1})",
                   kFromEdge, ErrorCode::invalid, "ts");
  }
  // Seqs start at 1 where a message is named; after 0 means "from the start".
  check_rejected(R"({"t":"rcpt","conv":"ops","seq":0,"kind":"read"})", kFromClient, ErrorCode::invalid, "seq");
  check_rejected(R"({"t":"hist","conv":"ops","before":0})", kFromClient, ErrorCode::invalid, "before");
  check_rejected(R"({"t":"msg","conv":"ops","seq":0,"id":"x","from":"a","ts":1,"body":1})", kFromEdge,
                 ErrorCode::invalid, "seq");
  check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":0,"ts":1})", kFromEdge, ErrorCode::invalid, "seq");
  check_rejected(R"({"t":"welcome","session":"s","node":"n","user":"u","ts":1,"hb":0,"max_frame":1})",
                 kFromEdge, ErrorCode::invalid, "hb");
  check_rejected(R"({"t":"welcome","session":"s","node":"n","user":"u","ts":1,"hb":1,"max_frame":0})",
                 kFromEdge, ErrorCode::invalid, "max_frame");
  CHECK(parse_frame(R"({"t":"sub","conv":"ops","after":0})", kFromClient).ok());
  CHECK(parse_frame(R"({"t":"hist","conv":"ops","after":0})", kFromClient).ok());
}

TEST_CASE("codec: integers above 2^53-1 are refused", "[codec]") {
  // Every integer must be exact in a JavaScript number too.
  const std::string max_safe = "9007199254740991";
  for (const std::string& big : Strings{"9007199254740992", "9223372036854775807", "18446744073709551615",
                          "18446744073709551616", "100000000000000000000000"}) {
    INFO("value " << big);
    check_rejected(R"({"t":"rcpt","conv":"ops","seq":)" + big + R"(,"kind":"read"})", kFromClient,
                   ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"sub","conv":"ops","after":)" + big + "}", kFromClient, ErrorCode::invalid, "after");
    check_rejected(R"({"t":"sub","conv":"ops","limit":)" + big + "}", kFromClient, ErrorCode::invalid, "limit");
    check_rejected(R"({"t":"hist","conv":"ops","before":)" + big + "}", kFromClient, ErrorCode::invalid, "before");
    check_rejected(R"({"t":"send","conv":"ops","id":"x","body":1,"cts":)" + big + "}", kFromClient,
                   ErrorCode::invalid, "cts");
    check_rejected(R"({"t":"ping","ts":)" + big + "}", kFromClient, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":)" + big + R"(,"ts":1})", kFromEdge, ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"msg","conv":"ops","seq":1,"id":"x","from":"a","ts":)" + big + R"(,"body":1})",
                   kFromEdge, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"subd","conv":"ops","head":)" + big + R"(,"read":0,"present":[],"more":false})",
                   kFromEdge, ErrorCode::invalid, "head");
    check_rejected(R"({"t":"pong","ts":)" + big + "}", kFromEdge, ErrorCode::invalid, "ts");
  }
  Frame rcpt = parse_ok(R"({"t":"rcpt","conv":"ops","seq":)" + max_safe + R"(,"kind":"read"})", kFromClient);
  CHECK(std::get<Rcpt>(rcpt).seq == 9007199254740991ULL);
  check_round_trip(rcpt, kFromClient);
  check_round_trip(Ping{9007199254740991LL, std::nullopt}, kFromClient);
}

TEST_CASE("codec: bye's retry window obeys the 2^53-1 integer limit too", "[codec]") {
  check_rejected(R"({"t":"bye","reason":"shutdown","retry_ms":[0,9007199254740992]})", kFromEdge,
                 ErrorCode::invalid, "retry_ms");
  check_rejected(R"({"t":"bye","reason":"shutdown","retry_ms":[9007199254740992,9007199254740993]})",
                 kFromEdge, ErrorCode::invalid, "retry_ms");
}

TEST_CASE("codec: limit must be an integer of at least 1", "[codec]") {
  for (const std::string& bad : Strings{"0", "-1", "2.5", R"("10")", "null"}) {
    INFO("limit " << bad);
    check_rejected(R"({"t":"sub","conv":"ops","limit":)" + bad + "}", kFromClient, ErrorCode::invalid, "limit");
    check_rejected(R"({"t":"hist","conv":"ops","limit":)" + bad + "}", kFromClient, ErrorCode::invalid, "limit");
    check_rejected(R"({"t":"hello","token":"x","subs":[{"conv":"ops","limit":)" + bad + "}]}", kFromClient,
                   ErrorCode::invalid, "subs[0].limit");
  }
  CHECK(parse_ok(R"({"t":"sub","conv":"ops","limit":1})", kFromClient) ==
        Frame{Sub{SubRequest{"ops", std::nullopt, 1}, std::nullopt}});
}

TEST_CASE("codec: hist takes before or after, not both", "[codec]") {
  auto parsed = parse_frame(R"({"t":"hist","conv":"ops","before":10,"after":2})", kFromClient);
  REQUIRE_FALSE(parsed.ok());
  CHECK(to_string(parsed.error().code) == "invalid");
  const std::string& message = parsed.error().message;
  INFO(message);
  CHECK((message.rfind("before:", 0) == 0 || message.rfind("after:", 0) == 0));
}

TEST_CASE("codec: each required field missing or of the wrong type is invalid", "[codec]") {
  SECTION("hello") {
    check_rejected(R"({"t":"hello"})", kFromClient, ErrorCode::invalid, "token");
    check_rejected(R"({"t":"hello","token":5})", kFromClient, ErrorCode::invalid, "token");
    check_rejected(R"({"t":"hello","token":null})", kFromClient, ErrorCode::invalid, "token");
    check_rejected(R"({"t":"hello","token":"x","device":7})", kFromClient, ErrorCode::invalid, "device");
    check_rejected(R"({"t":"hello","token":"x","device":")" + std::string(129, 'd') + R"("})", kFromClient,
                   ErrorCode::invalid, "device");
    check_rejected(R"({"t":"hello","token":"x","subs":{"conv":"ops"}})", kFromClient, ErrorCode::invalid, "subs");
    check_rejected(R"({"t":"hello","token":"x","subs":"ops"})", kFromClient, ErrorCode::invalid, "subs");
    check_rejected(R"({"t":"hello","token":"x","subs":["ops"]})", kFromClient, ErrorCode::invalid, "subs[0]");
    check_rejected(R"({"t":"hello","token":"x","subs":[{"after":1}]})", kFromClient, ErrorCode::invalid,
                   "subs[0].conv");
    check_rejected(R"({"t":"hello","token":"x","subs":[{"conv":"ok"},{"conv":"not ok"}]})", kFromClient,
                   ErrorCode::invalid, "subs[1].conv");
    check_rejected(R"({"t":"hello","token":"x","subs":[{"conv":"ok","after":-1}]})", kFromClient,
                   ErrorCode::invalid, "subs[0].after");
  }
  SECTION("send") {
    check_rejected(R"({"t":"send","conv":"ops","id":"x"})", kFromClient, ErrorCode::invalid, "body");
    check_rejected(R"({"t":"send","conv":"ops","id":"x","body":1,"trace":5})", kFromClient, ErrorCode::invalid, "trace");
  }
  SECTION("trace must be a W3C traceparent") {
    const std::string good(kTrace);
    std::string upper = good;
    upper[10] = 'F';
    for (const std::string& trace : Strings{std::string(""), upper, good.substr(1), good + "0",
                              "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                              "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                              "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                              "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                              "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"}) {
      INFO("trace " << trace);
      check_rejected(R"({"t":"send","conv":"ops","id":"x","body":1,"trace":")" + trace + R"("})", kFromClient,
                     ErrorCode::invalid, "trace");
      check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":1,"ts":1,"trace":")" + trace + R"("})", kFromEdge,
                     ErrorCode::invalid, "trace");
    }
  }
  SECTION("rcpt") {
    check_rejected(R"({"t":"rcpt","conv":"ops","kind":"read"})", kFromClient, ErrorCode::invalid, "seq");
    check_rejected(R"({"t":"rcpt","conv":"ops","seq":1})", kFromClient, ErrorCode::invalid, "kind");
    for (const std::string& kind : Strings{R"("seen")", R"("READ")", R"("")", "1", "null", "true"}) {
      INFO("kind " << kind);
      check_rejected(R"({"t":"rcpt","conv":"ops","seq":1,"kind":)" + kind + "}", kFromClient, ErrorCode::invalid, "kind");
      check_rejected(R"({"t":"rcpt","conv":"ops","user":"a","seq":1,"kind":)" + kind + "}", kFromEdge,
                     ErrorCode::invalid, "kind");
    }
    check_rejected(R"({"t":"rcpt","conv":"ops","seq":1,"kind":"read"})", kFromEdge, ErrorCode::invalid, "user");
    check_rejected(R"({"t":"rcpt","conv":"ops","user":5,"seq":1,"kind":"read"})", kFromEdge, ErrorCode::invalid, "user");
  }
  SECTION("typing") {
    check_rejected(R"({"t":"typing","conv":"ops"})", kFromClient, ErrorCode::invalid, "on");
    check_rejected(R"({"t":"typing","conv":"ops","on":"yes"})", kFromClient, ErrorCode::invalid, "on");
    check_rejected(R"({"t":"typing","conv":"ops","on":1})", kFromClient, ErrorCode::invalid, "on");
    check_rejected(R"({"t":"typing","conv":"ops","on":true})", kFromEdge, ErrorCode::invalid, "user");
  }
  SECTION("welcome") {
    const std::string full = R"("session":"s","node":"n","user":"u","ts":1,"hb":15000,"max_frame":65536)";
    CHECK(parse_frame(R"({"t":"welcome",)" + full + "}", kFromEdge).ok());
    for (const std::string& field : Strings{"session", "node", "user", "ts", "hb", "max_frame"}) {
      json::object o = json::parse("{" + full + "}").as_object();
      o["t"] = "welcome";
      o.erase(field);
      check_rejected(json::serialize(o), kFromEdge, ErrorCode::invalid, field);
      o[field] = json::array{};
      check_rejected(json::serialize(o), kFromEdge, ErrorCode::invalid, field);
    }
  }
  SECTION("msg") {
    const std::string full = R"("conv":"ops","seq":1,"id":"x","from":"bob","ts":5,"body":{})";
    for (const std::string& field : Strings{"conv", "id", "from", "ts", "body"}) {
      json::object o = json::parse("{" + full + "}").as_object();
      o["t"] = "msg";
      o.erase(field);
      check_rejected(json::serialize(o), kFromEdge, ErrorCode::invalid, field);
    }
    check_rejected(R"({"t":"msg","conv":"ops","seq":1,"id":"x","from":5,"ts":5,"body":{}})", kFromEdge,
                   ErrorCode::invalid, "from");
    check_rejected(R"({"t":"msg","conv":"ops","seq":1,"id":"x","from":"b","ts":5,"cts":"x","body":{}})",
                   kFromEdge, ErrorCode::invalid, "cts");
  }
  SECTION("subd") {
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":0,"more":false})", kFromEdge, ErrorCode::invalid, "present");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":0,"present":"bob","more":false})", kFromEdge,
                   ErrorCode::invalid, "present");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":0,"present":[1],"more":false})", kFromEdge,
                   ErrorCode::invalid, "present");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":0,"present":[]})", kFromEdge, ErrorCode::invalid, "more");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"read":0,"present":[],"more":"no"})", kFromEdge,
                   ErrorCode::invalid, "more");
    check_rejected(R"({"t":"subd","conv":"ops","read":0,"present":[],"more":false})", kFromEdge, ErrorCode::invalid, "head");
    check_rejected(R"({"t":"subd","conv":"ops","head":1,"present":[],"more":false})", kFromEdge, ErrorCode::invalid, "read");
  }
  SECTION("page") {
    check_rejected(R"({"t":"page","conv":"ops","more":false})", kFromEdge, ErrorCode::invalid, "msgs");
    check_rejected(R"({"t":"page","conv":"ops","msgs":{},"more":false})", kFromEdge, ErrorCode::invalid, "msgs");
    check_rejected(R"({"t":"page","conv":"ops","msgs":[]})", kFromEdge, ErrorCode::invalid, "more");
    check_rejected(R"({"t":"page","conv":"ops","msgs":[1],"more":false})", kFromEdge, ErrorCode::invalid, "msgs[0]");
    check_rejected(
        R"({"t":"page","conv":"ops","msgs":[{"conv":"ops","seq":1,"id":"a","from":"b","ts":1,"body":1},{"conv":"ops","seq":2,"from":"b","ts":1,"body":1}],"more":false})",
        kFromEdge, ErrorCode::invalid, "msgs[1].id");
  }
  SECTION("ack") {
    check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":1})", kFromEdge, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"ack","conv":"ops","id":"x","seq":1,"ts":1,"dup":"yes"})", kFromEdge, ErrorCode::invalid, "dup");
  }
  SECTION("nack and err") {
    check_rejected(R"({"t":"nack","conv":"ops","id":"x","msg":"","retry":false})", kFromEdge, ErrorCode::invalid, "code");
    check_rejected(R"({"t":"nack","conv":"ops","id":"x","code":"bogus","msg":"","retry":false})", kFromEdge,
                   ErrorCode::invalid, "code");
    check_rejected(R"({"t":"nack","conv":"ops","id":"x","code":"invalid","msg":""})", kFromEdge, ErrorCode::invalid, "retry");
    check_rejected(R"({"t":"nack","conv":"ops","id":"x","code":"invalid","msg":5,"retry":true})", kFromEdge,
                   ErrorCode::invalid, "msg");
    check_rejected(R"({"t":"err","msg":"x"})", kFromEdge, ErrorCode::invalid, "code");
    check_rejected(R"({"t":"err","code":"oops","msg":"x"})", kFromEdge, ErrorCode::invalid, "code");
    check_rejected(R"({"t":"err","code":3,"msg":"x"})", kFromEdge, ErrorCode::invalid, "code");
  }
  SECTION("presence, pong, bye") {
    check_rejected(R"({"t":"presence","conv":"ops","on":true})", kFromEdge, ErrorCode::invalid, "user");
    check_rejected(R"({"t":"presence","conv":"ops","user":"bob"})", kFromEdge, ErrorCode::invalid, "on");
    check_rejected(R"({"t":"pong"})", kFromEdge, ErrorCode::invalid, "ts");
    check_rejected(R"({"t":"bye","reason":"shutdown"})", kFromEdge, ErrorCode::invalid, "retry_ms");
    for (const std::string& window : Strings{"[5,1]", "[-1,2]", "[1]", "[1,2,3]", R"("1-2")", "[1.5,2]", "[]"}) {
      INFO("retry_ms " << window);
      check_rejected(R"({"t":"bye","reason":"shutdown","retry_ms":)" + window + "}", kFromEdge,
                     ErrorCode::invalid, "retry_ms");
    }
  }
}

// ---- what a refusal carries, and serialize_page ---------------------------------------

TEST_CASE("codec: a refused frame's error carries its type and a valid rid", "[codec]") {
  struct Case {
    std::string text;
    std::string type;
    std::optional<std::string> rid;
  };
  const std::string r64(64, 'r');
  for (const Case& c : std::vector<Case>{
           {R"({"t":"send","rid":"r-17","conv":"not ok","id":"x","body":1})", "send", "r-17"},
           {R"({"t":"warp","rid":"r-2"})", "warp", "r-2"},
           {R"({"rid":"r-3"})", "", "r-3"},
           {R"({"t":5,"rid":"r-4"})", "", "r-4"},
           {R"({"t":"sub","conv":"ops","limit":0,"rid":""})", "sub", ""},
           {R"({"t":"sub","rid":")" + r64 + R"("})", "sub", r64},
           {R"({"t":"hello","token":5})", "hello", std::nullopt},
           // no usable rid: the err goes out without one
           {R"({"t":"sub","rid":")" + r64 + R"(r"})", "sub", std::nullopt},
           {R"({"t":"sub","rid":5})", "sub", std::nullopt},
           {R"({"t":"sub"})", "sub", std::nullopt},
           {R"({"t":"sub","rid":"r")", "", std::nullopt},
           {R"(["rid","r"])", "", std::nullopt},
           {"", "", std::nullopt},
       }) {
    INFO("frame " << c.text);
    auto parsed = parse_frame(c.text, kFromClient);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().type == c.type);
    CHECK(parsed.error().rid == c.rid);
  }
}

TEST_CASE("codec: serialize_page of stored msg frames parses as the Page of those msgs", "[codec]") {
  std::vector<Msg> msgs = {sample_msg(7), sample_msg(8), sample_msg(9)};
  msgs[1].body = JsonText{R"(["unicode é 😀",null,{"k":[1.5,-2]}])"};
  msgs[2].cts.reset();
  msgs[2].trace.reset();
  std::vector<std::string> stored;
  for (const Msg& m : msgs) stored.push_back(stored_frame(m));

  Frame page = parse_ok(serialize_page("ops", stored, true, std::string("h-1")), kFromEdge);
  CHECK(page == Frame{Page{"ops", msgs, true, "h-1"}});

  Frame empty = parse_ok(serialize_page("ops", {}, false, std::nullopt), kFromEdge);
  CHECK(empty == Frame{Page{"ops", {}, false, std::nullopt}});

  // A rid that needs escaping stays one JSON string.
  Frame quoted = parse_ok(serialize_page("a.b:c", {stored[0]}, false, std::string("q\"\\\n")), kFromEdge);
  CHECK(quoted == Frame{Page{"a.b:c", {msgs[0]}, false, "q\"\\\n"}});
}

TEST_CASE("codec: json_quote and to_string(ReceiptKind)", "[codec]") {
  CHECK(json_quote("ops") == R"("ops")");
  CHECK(json::parse(json_quote("a\"b\\c\n\x01 é")).as_string() == "a\"b\\c\n\x01 é");
  CHECK(to_string(ReceiptKind::read) == "read");
  CHECK(to_string(ReceiptKind::delivered) == "delivered");
}

// ---- relaying edges (docs/protocol.md "Relays") -------------------------------------------

TEST_CASE("codec: hello.relay, hello.provisional and 'as' round-trip; a v1 hello is unchanged",
          "[codec][relay]") {
  Hello hello;
  hello.token = "dev-node:relay-a";
  hello.relay = RelayHello{"relay-a", "dev"};
  check_round_trip(hello, kFromClient);
  CHECK(keys_of(serialize(hello)).count("relay") == 1);
  Hello user;
  user.token = "dev:alice";
  user.provisional = true;
  check_round_trip(user, kFromClient);
  user.provisional = false;
  CHECK(keys_of(serialize(user)) == std::set<std::string>{"t", "token"});  // no provisional:false

  Send send;
  send.conv = "ops";
  send.id = "01JD00000000000000000000AS";
  send.body = JsonText{R"({"text":"hi"})"};
  send.as = "alice";
  check_round_trip(send, kFromClient);
  Rcpt rcpt{"ops", 4, ReceiptKind::read, std::nullopt, std::nullopt, std::string("alice")};
  check_round_trip(rcpt, kFromClient);
  Typing typing{"ops", true, std::nullopt, std::nullopt, std::string("alice")};
  check_round_trip(typing, kFromClient);
  // Edge -> client, rcpt and typing carry user and never as.
  Frame from_edge = parse_ok(R"({"t":"rcpt","conv":"ops","seq":4,"kind":"read","user":"bob","as":"x"})", kFromEdge);
  CHECK_FALSE(std::get<Rcpt>(from_edge).as);
  from_edge = parse_ok(R"({"t":"typing","conv":"ops","on":true,"user":"bob","as":"x"})", kFromEdge);
  CHECK_FALSE(std::get<Typing>(from_edge).as);
}

TEST_CASE("codec: welcome.path and msg.prov round-trip; absent, they are not written",
          "[codec][relay]") {
  Welcome welcome;
  welcome.session = "0123456789abcdef0123456789abcdef";
  welcome.node = "hub";
  welcome.user = "relay-a";
  welcome.ts = 1700000000000;
  welcome.path = {"hub", "root"};
  check_round_trip(welcome, kFromEdge);
  welcome.path.clear();
  check_round_trip(welcome, kFromEdge);
  CHECK(keys_of(serialize(welcome)).count("path") == 0);

  Msg provisional = sample_msg(1);
  provisional.seq.reset();
  provisional.provisional = true;
  check_round_trip(provisional, kFromEdge);
  CHECK(keys_of(serialize(provisional)).count("prov") == 1);
  CHECK(keys_of(serialize(provisional)).count("seq") == 0);
  CHECK(keys_of(serialize(sample_msg(2))).count("prov") == 0);
  // Inside a page too (a relay's history may not hold staged sends, but the frame allows it).
  Frame page = parse_ok(serialize(Page{"ops", {sample_msg(3)}, false, std::nullopt}), kFromEdge);
  CHECK_FALSE(std::get<Page>(page).msgs.at(0).provisional);
}

TEST_CASE("codec: bad relay fields are refused, naming the field", "[codec][relay]") {
  const std::string hello = R"({"t":"hello","token":"dev-node:relay-a",)";
  check_rejected(hello + R"("relay":"relay-a"})", kFromClient, ErrorCode::invalid, "relay");
  check_rejected(hello + R"("relay":["relay-a","dev"]})", kFromClient, ErrorCode::invalid, "relay");
  check_rejected(hello + R"("relay":{"tenant":"dev"}})", kFromClient, ErrorCode::invalid, "relay.node");
  check_rejected(hello + R"("relay":{"node":"relay-a"}})", kFromClient, ErrorCode::invalid, "relay.tenant");
  check_rejected(hello + R"("relay":{"node":"has space","tenant":"dev"}})", kFromClient, ErrorCode::invalid, "relay.node");
  check_rejected(hello + R"("relay":{"node":"relay-a","tenant":""}})", kFromClient, ErrorCode::invalid, "relay.tenant");
  check_rejected(hello + R"("relay":{"node":7,"tenant":"dev"}})", kFromClient, ErrorCode::invalid, "relay.node");
  check_rejected(hello + R"("relay":{"node":")" + std::string(65, 'n') + R"(","tenant":"dev"}})",
                 kFromClient, ErrorCode::invalid, "relay.node");
  check_rejected(R"({"t":"hello","token":"dev:alice","provisional":"yes"})", kFromClient,
                 ErrorCode::invalid, "provisional");
  check_rejected(R"({"t":"hello","token":"dev:alice","provisional":1})", kFromClient,
                 ErrorCode::invalid, "provisional");

  const std::string send = R"({"t":"send","conv":"ops","id":"01JD00000000000000000000AS","body":{},)";
  check_rejected(send + R"("as":""})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(send + R"("as":"two words"})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(send + R"("as":42})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(send + R"("as":")" + std::string(65, 'a') + "\"}", kFromClient, ErrorCode::invalid, "as");
  check_rejected(R"({"t":"rcpt","conv":"ops","seq":1,"kind":"read","as":"not ok"})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(R"({"t":"rcpt","conv":"ops","seq":1,"kind":"read","as":null})", kFromClient, ErrorCode::invalid, "as");
  check_rejected(R"({"t":"typing","conv":"ops","on":true,"as":["alice"]})", kFromClient, ErrorCode::invalid, "as");

  const std::string welcome =
      R"({"t":"welcome","session":"0123456789abcdef0123456789abcdef","node":"hub","user":"relay-a","ts":1,"hb":15000,"max_frame":65536,)";
  check_rejected(welcome + R"("path":"hub"})", kFromEdge, ErrorCode::invalid, "path");
  check_rejected(welcome + R"("path":["hub",7]})", kFromEdge, ErrorCode::invalid, "path");
  check_rejected(welcome + R"("path":["hub","bad name"]})", kFromEdge, ErrorCode::invalid, "path");
  check_rejected(welcome + R"("path":[""]})", kFromEdge, ErrorCode::invalid, "path");

  const std::string msg = R"({"t":"msg","conv":"ops","id":"01JD00000000000000000000AS","from":"alice","ts":1,"body":{},)";
  check_rejected(msg + R"("seq":3,"prov":true})", kFromEdge, ErrorCode::invalid, "prov");
  check_rejected(msg + R"("prov":"true"})", kFromEdge, ErrorCode::invalid, "prov");
  Frame plain = parse_ok(msg + R"("seq":3,"prov":false})", kFromEdge);
  CHECK_FALSE(std::get<Msg>(plain).provisional);
  Frame prov = parse_ok(msg + R"("prov":true})", kFromEdge);
  CHECK(std::get<Msg>(prov).provisional);
  CHECK_FALSE(std::get<Msg>(prov).seq);
}
