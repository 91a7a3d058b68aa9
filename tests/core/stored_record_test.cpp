// stored_record: the log's compact form of a msg gives back the very frame that was fanned out,
// for every shape of msg, and bytes that are not a record are refused, never read past.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "waymark/codec.h"
#include "waymark/stored_record.h"

namespace waymark {
namespace {

Msg sample(Seq seq) {
  Msg msg;
  msg.conv = "ops";
  msg.seq = seq;
  msg.id = "01JD0000000000000000000042";
  msg.from = "alice";
  msg.ts = 1764700000123;
  msg.cts = 1764700000100;
  msg.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  msg.body = JsonText{R"({"text":"db failover done"})"};
  return msg;
}

}  // namespace

TEST_CASE("stored record: every shape of msg comes back as the frame serialize wrote", "[record]") {
  std::vector<Msg> msgs;
  msgs.push_back(sample(44));
  Msg bare = sample(1);  // no cts, no trace, a body that is not an object
  bare.cts.reset();
  bare.trace.reset();
  bare.body = JsonText{"null"};
  msgs.push_back(bare);
  Msg odd_trace = sample(2);  // a trace the edge did not check (upper case): kept as text
  odd_trace.trace = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
  msgs.push_back(odd_trace);
  Msg hard = sample(std::numeric_limits<Seq>::max());  // strings that need escaping, extremes
  hard.id = "id \"quoted\" \\ \x01";
  hard.from = std::string("nul\0inside", 10) + "\xe2\x82\xac";
  hard.ts = std::numeric_limits<TimeMs>::min();
  hard.cts = std::numeric_limits<TimeMs>::max();
  hard.body = JsonText{R"([1.5e300,"\u0000",{"a":[]}])"};
  msgs.push_back(hard);
  Msg zeros = sample(3);  // times of 0 (negative ones are in `hard`)
  zeros.ts = 0;
  zeros.cts = 0;
  zeros.from = "b";
  msgs.push_back(zeros);
  Msg big = sample(4);
  big.body = JsonText{"\"" + std::string(100000, 'x') + "\""};
  msgs.push_back(big);

  for (const Msg& msg : msgs) {
    const std::string record = encode_record(msg);
    CAPTURE(msg.id, record.size());
    CHECK(record.front() != '{');
    auto frame = record_frame(record, msg.conv, *msg.seq);
    REQUIRE(frame.ok());
    CHECK(frame.value() == serialize(msg));
    auto decoded = decode_record(record, msg.conv, *msg.seq);
    REQUIRE(decoded.ok());
    CHECK(decoded.value() == msg);
    auto id = record_id(record);
    REQUIRE(id.ok());
    CHECK(id.value() == msg.id);
    // As a frame an older edge stored. The frames no edge stores (a trace in upper case, an id
    // or a sender outside the name rules, both refused at the door) are refused here too.
    auto again = record_from_frame(serialize(msg));
    if (&msg == &msgs[2] || &msg == &msgs[3]) {
      CHECK_FALSE(again.ok());
    } else {
      REQUIRE(again.ok());
      CHECK(again.value() == record);
    }
  }
}

TEST_CASE("stored record: a 128-byte message's record is its fields once, the trace in 26 bytes",
          "[record]") {
  Msg msg = sample(7);
  msg.body = JsonText{"\"" + std::string(126, 'b') + "\""};
  const std::string record = encode_record(msg);
  // version + flags, ts and cts (6 bytes each), trace 26, id 1 + 26, from 1 + 5, body 128
  CHECK(record.size() == 2 + 6 + 6 + 26 + 27 + 6 + 128);
  CHECK(record.size() < serialize(msg).size() - 100);
}

TEST_CASE("stored record: cut or foreign bytes are refused as invalid", "[record]") {
  const std::string record = encode_record(sample(9));
  const std::size_t body_at = record.size() - sample(9).body.text.size();
  // Every cut before the body leaves a field short (a cut inside the body is the log's to
  // catch: a write-ahead log record has a CRC, an LMDB value is never torn).
  for (std::size_t size = 0; size <= body_at; ++size) {
    CAPTURE(size);
    auto frame = record_frame(std::string_view(record).substr(0, size), "ops", 9);
    REQUIRE_FALSE(frame.ok());
    CHECK(frame.error().code == ErrorCode::invalid);
    CHECK_FALSE(record_id(std::string_view(record).substr(0, size)).ok());
  }
  std::string unknown_flags = record;
  unknown_flags[1] = static_cast<char>(0x40);
  CHECK_FALSE(record_frame(unknown_flags, "ops", 9).ok());
  std::string both_traces = record;
  both_traces[1] = static_cast<char>(0x07);
  CHECK_FALSE(record_frame(both_traces, "ops", 9).ok());
  CHECK_FALSE(record_frame("{\"t\":\"msg\"}", "ops", 9).ok());
  std::string endless_varint = record.substr(0, 2) + std::string(20, '\xff');
  CHECK_FALSE(record_frame(endless_varint, "ops", 9).ok());
  std::string huge_length = record.substr(0, 2) + std::string("\x01\xff\xff\xff\xff\x0f", 6);
  CHECK_FALSE(record_frame(huge_length, "ops", 9).ok());

  CHECK_FALSE(record_from_frame("not json").ok());
  CHECK_FALSE(record_from_frame(R"({"t":"ack","conv":"ops","id":"a","seq":1,"ts":1})").ok());
  Msg provisional = sample(1);
  provisional.seq.reset();
  provisional.provisional = true;
  CHECK_FALSE(record_from_frame(serialize(provisional)).ok());
}

}  // namespace waymark
