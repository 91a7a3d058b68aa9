// codec_fuzz_test: 100,000 seeded mutated frames (10,000 in WebAssembly) against the codec and an
// EdgeNode: no crash, proper errs, exact round trips, other connections and the log untouched.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "codec_internal.h"
#include "waymark/auth.h"
#include "waymark/codec.h"
#include "waymark/stored_record.h"
#include "waymark/edge_node.h"
#include "waymark/identifiers.h"
#include "core/memory_log_store.h"
#include "waymark/write_batch.h"

namespace json = boost::json;
using namespace waymark;

namespace {

constexpr std::uint64_t kSeed = 0x5eedc0de2024ULL;
#ifdef __EMSCRIPTEN__
// Under node this code runs some 20-30x slower than natively; a tenth of the frames keeps the
// WebAssembly suite to seconds. The frames are the native run's first 10,000, in order.
constexpr int kFrames = 10000;
#else
constexpr int kFrames = 100000;
#endif
constexpr std::string_view kTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// ---- the corpus: a valid frame of every type, both directions --------------------------

Msg corpus_msg(Seq seq, JsonText body) {
  return Msg{"ops", seq, "01JD" + std::to_string(seq), "bob", 1700000000000, 1699999999000,
             std::string(kTrace), std::move(body)};
}

std::vector<std::string> make_corpus() {
  std::vector<Frame> frames = {
      Hello{"dev:alice", "tab-7f3a", {SubRequest{"ops", 41, std::nullopt}, SubRequest{"team.eu", std::nullopt, 20}}, "h1"},
      Hello{"dev:bob", std::nullopt, {}, std::nullopt},
      Sub{SubRequest{"ops", 41, 100}, "s1"},
      Sub{SubRequest{"ops", std::nullopt, std::nullopt}, std::nullopt},
      Unsub{"ops", "u1"},
      Hist{"ops", 120, std::nullopt, 50, "h2"},
      Hist{"ops", std::nullopt, 3, std::nullopt, std::nullopt},
      Send{"ops", "01JDA", JsonText{R"({"text":"db failover done","n":[1,2.5,-3],"ok":true,"x":null})"},
           1700000000000, std::string(kTrace), "r1"},
      Send{"fuzz.b", "f-2", JsonText{R"("plain é 😀")"}, std::nullopt, std::nullopt, std::nullopt},
      Send{"fuzz:c", "f_3", JsonText{"42"}, 5, std::nullopt, "r3"},
      Ping{1700000000000, "p1"},
      Ping{std::nullopt, std::nullopt},
      Rcpt{"ops", 44, ReceiptKind::read, std::nullopt, "rc"},
      Rcpt{"ops", 1, ReceiptKind::delivered, std::nullopt, std::nullopt},
      Typing{"ops", true, std::nullopt, std::nullopt},
      Welcome{"0123abcd", "edge-eu-1", "alice", 1700000000000, 15000, 65536, "h1"},
      corpus_msg(42, JsonText{R"({"text":"hi","list":[1,{"a":"b"}]})"}),
      Subd{"ops", 43, 40, {"bob", "carol"}, false, "s1"},
      Page{"ops", {corpus_msg(1, JsonText{"null"}), corpus_msg(2, JsonText{"[1,2]"})}, true, "h2"},
      Ack{"ops", "01JDA", 44, 1700000000001, std::string(kTrace), true, "r1"},
      Ack{"ops", "01JDB", std::nullopt, 1700000000002, std::nullopt, false, std::nullopt},
      Nack{"ops", "01JDA", ErrorCode::rate_limited, "slow down", true, "r1"},
      Rcpt{"ops", 44, ReceiptKind::read, "alice", std::nullopt},
      Typing{"ops", false, "alice", std::nullopt},
      Presence{"ops", "bob", true},
      Pong{1700000000000, "p1"},
      Bye{"shutdown", 500, 5500},
      Err{ErrorCode::invalid, "conv: must be 1-128 chars", "r9"},
  };
  std::vector<std::string> corpus;
  for (const Frame& frame : frames) corpus.push_back(serialize(frame));
  // Hand-written spellings the serializer never produces.
  corpus.push_back(" { \"t\" : \"send\" ,\n \"conv\":\"ops\", \"id\":\"w\", \"body\" : { } , \"extra\":[1,2] } ");
  corpus.push_back(R"({"body":{"t":"ping"},"id":"x","conv":"a","t":"send","cts":0})");
  corpus.push_back(R"({"t":"hello","token":"dev:alice","subs":[{"conv":"a","after":0,"limit":1}]})");
  return corpus;
}

// ---- the mutator --------------------------------------------------------------------------

const std::vector<std::string> kNumbers = {
    "9007199254740991", "9007199254740992", "18446744073709551615", "18446744073709551616",
    "-1", "-9223372036854775809", "1.5", "-0.5", "1e400", "-1e400", "1e-400", "0", "-0", "0.0",
    "1E2", "4294967295", "4294967296", "99999999999999999999999999999", "2", "1"};
const std::vector<std::string> kStrings = {
    "", "a b", "\\u0000", "\xc3\xa9", "\\ud800", "\\\\", "hello", "welcome", "msg", "send", "sub",
    "err", "read", "delivered", "seen", "dev:alice", "dev:", "*", std::string(kTrace),
    std::string(65, 'r'), std::string(129, 'c'), "ops", "calm", "\xff"};
const std::vector<std::string> kTypes = {"hello", "sub", "unsub", "hist", "send", "ping", "rcpt",
                                         "typing", "welcome", "msg", "subd", "page", "ack", "nack",
                                         "presence", "pong", "bye", "err", "nope"};
const std::vector<std::string> kKeys = {"t", "conv", "id", "body", "rid", "seq", "after", "before",
                                        "limit", "kind", "on", "user", "ts", "cts", "trace", "subs",
                                        "msgs", "more", "code", "retry", "present", "dup", "token",
                                        "head", "read", "retry_ms", "from", "zz_unknown"};
const std::string kPunctuation = "{}[]\":,\\-.e0 ";

class Mutator {
 public:
  Mutator(std::uint64_t seed, std::vector<std::string> corpus)
      : random_(seed), corpus_(std::move(corpus)) {}

  std::string next() {
    std::string text = pick(corpus_);
    int rounds = 1 + static_cast<int>(random_.below(3));
    for (int i = 0; i < rounds; ++i) mutate(text);
    if (random_.below(4) == 0) freshen_id(text);
    if (text.size() > kMaxText) text.resize(kMaxText);
    return text;
  }

 private:
  static constexpr std::size_t kMaxText = 150000;

  std::size_t below(std::size_t bound) { return static_cast<std::size_t>(random_.below(bound)); }
  template <typename T>
  const T& pick(const std::vector<T>& from) { return from[below(from.size())]; }
  std::size_t position(const std::string& text) { return below(text.size() + 1); }

  void mutate(std::string& text) {
    switch (random_.below(15)) {
      case 0:  // flip a bit
        if (!text.empty()) {
          std::size_t at = below(text.size());
          text[at] = static_cast<char>(text[at] ^ (1u << below(8)));
        }
        break;
      case 1: {  // insert a byte: JSON punctuation, or any byte at all
        // Each draw in its own statement: argument order differs between g++ and em++, and
        // the sequence of frames must be the same natively and in WebAssembly.
        std::size_t at = position(text);
        char byte = random_.below(2) ? kPunctuation[below(kPunctuation.size())]
                                     : static_cast<char>(random_.below(256));
        text.insert(at, 1, byte);
        break;
      }
      case 2: {  // delete a few bytes
        std::size_t at = position(text);
        text.erase(at, 1 + below(8));
        break;
      }
      case 3:  // truncate
        text.resize(position(text));
        break;
      case 4: {  // duplicate a segment somewhere
        std::size_t from = position(text);
        std::string segment = text.substr(from, 1 + below(64));
        text.insert(position(text), segment);
        break;
      }
      case 5: {  // splice: this frame's head, another's tail
        const std::string& other = pick(corpus_);
        std::size_t head = position(text);
        std::size_t tail = below(other.size() + 1);
        text = text.substr(0, head) + other.substr(tail);
        break;
      }
      case 6:
      case 7:
        replace_number(text);
        break;
      case 8:
        replace_string(text);
        break;
      case 9:
        nest_deeply(text);
        break;
      case 10:
        if (random_.below(100) == 0) {  // rarely: push it over max_frame
          text.insert(position(text), std::string(65536, ' '));
          break;
        }
        [[fallthrough]];
      default:
        mutate_structure(text);
        break;
    }
  }

  // Replaces a run of digits (with its sign, fraction, exponent) by a hostile number.
  void replace_number(std::string& text) {
    std::size_t start = text.find_first_of("0123456789", position(text));
    if (start == std::string::npos) start = text.find_first_of("0123456789");
    if (start == std::string::npos) return;
    if (start > 0 && text[start - 1] == '-') --start;
    std::size_t end = text.find_first_not_of("0123456789.eE+-", start + 1);
    if (end == std::string::npos) end = text.size();
    text.replace(start, end - start, pick(kNumbers));
  }

  // Replaces the contents of a string literal by an awkward one.
  void replace_string(std::string& text) {
    std::size_t open = text.find('"', position(text));
    if (open == std::string::npos) open = text.find('"');
    if (open == std::string::npos) return;
    std::size_t close = text.find('"', open + 1);
    if (close == std::string::npos) return;
    // A fresh name half the time, so that sends are new messages and not dups of the corpus'.
    std::string replacement = random_.below(2) ? pick(kStrings) : "f" + std::to_string(random_.below(1000000));
    text.replace(open + 1, close - open - 1, replacement);
  }

  // Gives the message id a new value, so a valid send is a new message rather than a dup of
  // one the corpus stored long ago: hostile bodies then reach the log.
  void freshen_id(std::string& text) {
    constexpr std::string_view kId = "\"id\":\"";
    std::size_t at = text.find(kId);
    if (at == std::string::npos) return;
    std::size_t start = at + kId.size();
    std::size_t end = text.find('"', start);
    if (end == std::string::npos) return;
    text.replace(start, end - start, "n" + std::to_string(random_.below(1ULL << 40)));
  }

  // [[[[...]]]] or {"a":{"a":...}} thousands deep where a value was, balanced or not.
  void nest_deeply(std::string& text) {
    std::size_t depth = 500 + below(4500);
    bool arrays = random_.below(2);
    std::string open = arrays ? "[" : R"({"a":)";
    std::string close = arrays ? "]" : "}";
    std::string nested;
    nested.reserve(depth * (open.size() + 1) + 1);
    for (std::size_t i = 0; i < depth; ++i) nested += open;
    nested += "1";
    std::size_t closing = random_.below(4) ? depth : below(depth);
    for (std::size_t i = 0; i < closing; ++i) nested += close;
    std::size_t colon = text.find(':', position(text));
    if (colon == std::string::npos) colon = text.find(':');
    if (colon == std::string::npos) {
      text.insert(position(text), nested);
      return;
    }
    std::size_t end = text.find_first_of(",}", colon + 1);
    if (end == std::string::npos) end = text.size();
    text.replace(colon + 1, end - colon - 1, nested);
  }

  json::value hostile_value() {
    switch (random_.below(12)) {
      case 0: return nullptr;
      case 1: return true;
      case 2: return json::array{};
      case 3: return json::object{};
      case 4: return json::string(pick(kStrings));
      case 5: return -1;
      case 6: return 1.5;
      case 7: return 0;
      case 8: return static_cast<std::int64_t>(random_.below(100));
      case 9: return json::string(pick(kTypes));
      case 10: return json::array{1, 2};
      default: return std::uint64_t{18446744073709551615ULL};
    }
  }

  // Structure-aware: parse, then remove, retype or add a field (at the top or one level
  // down, in subs/msgs/present), or change "t"; the result is near-valid far more often.
  void mutate_structure(std::string& text) {
    json::error_code ec;
    json::value value = json::parse(text, ec);
    if (ec || !value.is_object()) {
      mutate_bytes_fallback(text);
      return;
    }
    json::object* target = &value.as_object();
    for (std::string_view nested : {"subs", "msgs"}) {
      auto it = target->find(nested);
      if (it != target->end() && it->value().is_array() && !it->value().as_array().empty() &&
          random_.below(2)) {
        json::array& entries = it->value().as_array();
        json::value& entry = entries[below(entries.size())];
        if (entry.is_object()) target = &entry.as_object();
        break;
      }
    }
    switch (random_.below(5)) {
      case 0:
        if (!target->empty()) {
          auto it = target->begin() + static_cast<std::ptrdiff_t>(below(target->size()));
          target->erase(it);
        }
        break;
      case 1:
        if (!target->empty()) {
          auto it = target->begin() + static_cast<std::ptrdiff_t>(below(target->size()));
          it->value() = hostile_value();
        }
        break;
      case 2: {
        const std::string& key = pick(kKeys);
        (*target)[key] = hostile_value();
        break;
      }
      case 3:
        value.as_object()["t"] = pick(kTypes);
        break;
      default:
        if (!target->empty()) {  // keep the value, rename the key
          auto it = target->begin() + static_cast<std::ptrdiff_t>(below(target->size()));
          json::value moved = it->value();
          target->erase(it);
          const std::string& key = pick(kKeys);
          (*target)[key] = std::move(moved);
        }
        break;
    }
    text = json::serialize(value);
  }

  void mutate_bytes_fallback(std::string& text) {
    if (text.empty()) {
      text = pick(corpus_);
      return;
    }
    std::size_t at = below(text.size());
    text[at] = kPunctuation[below(kPunctuation.size())];
  }

  SeededRandom random_;
  std::vector<std::string> corpus_;
};

bool is_client_frame(const Frame& frame) {
  return std::holds_alternative<Hello>(frame) || std::holds_alternative<Sub>(frame) ||
         std::holds_alternative<Unsub>(frame) || std::holds_alternative<Hist>(frame) ||
         std::holds_alternative<Send>(frame) || std::holds_alternative<Ping>(frame) ||
         std::holds_alternative<Rcpt>(frame) || std::holds_alternative<Typing>(frame) ||
         std::holds_alternative<Presence>(frame);  // a relay's, with as
}

bool is_edge_frame(const Frame& frame) {
  return !is_client_frame(frame) || std::holds_alternative<Rcpt>(frame) ||
         std::holds_alternative<Typing>(frame) || std::holds_alternative<Presence>(frame);
}

std::string excerpt(std::string_view text, std::size_t limit = 300) {
  return text.size() <= limit ? std::string(text) : std::string(text.substr(0, limit)) + "...";
}

// Collects property violations without stopping, so one run reports them all at once.
struct Failures {
  std::size_t count = 0;
  std::vector<std::string> examples;
  void add(std::string what) {
    ++count;
    if (examples.size() < 20) examples.push_back(std::move(what));
  }
};

std::string describe(const Failures& failures) {
  std::string out = std::to_string(failures.count) + " violation(s)";
  for (const auto& e : failures.examples) out += "\n  - " + e;
  return out;
}

}  // namespace

// ---- the codec ----------------------------------------------------------------------------

TEST_CASE("codec fuzz: mutated frames are refused cleanly or round-trip", "[fuzz]") {
  CAPTURE(kSeed);
  Mutator mutator(kSeed, make_corpus());
  Failures failures;
  std::map<std::string, std::size_t> refused_by_code;
  std::size_t ok_from_client = 0, ok_from_edge = 0, fast_path_candidates = 0;
  const ParseLimits roomy{1 << 22};  // a re-serialized frame may be a little longer

  for (int i = 0; i < kFrames; ++i) {
    const std::string text = mutator.next();
    for (Direction direction : {Direction::from_client, Direction::from_edge}) {
      const char* side = direction == Direction::from_client ? "from_client" : "from_edge";
      auto parsed = parse_frame(text, direction);
      // The send fast path and the general path agree on every text, accepted or refused.
      auto general = parse_frame_general(text, direction);
      if (parsed.ok() != general.ok() ||
          (parsed.ok() && !(parsed.value() == general.value())) ||
          (!parsed.ok() && (parsed.error().code != general.error().code || parsed.error().message != general.error().message ||
                            parsed.error().type != general.error().type || parsed.error().rid != general.error().rid)))
        failures.add("#" + std::to_string(i) + " " + side + ": fast path and general path differ on " + excerpt(text));
      if (parsed.ok() && std::holds_alternative<Send>(parsed.value()) && text.rfind(R"({"t":"send",)", 0) == 0)
        ++fast_path_candidates;
      if (!parsed.ok()) {
        const Error& error = parsed.error();
        ++refused_by_code[std::string(to_string(error.code))];
        bool parse_code = error.code == ErrorCode::bad_frame || error.code == ErrorCode::unknown_type ||
                          error.code == ErrorCode::invalid || error.code == ErrorCode::too_large;
        if (error.message.empty() || !parse_code)
          failures.add("#" + std::to_string(i) + " " + side + ": bad error (" +
                       std::string(to_string(error.code)) + ", \"" + error.message + "\") for " + excerpt(text));
        if (text.size() > ParseLimits{}.max_frame && error.code != ErrorCode::too_large)
          failures.add("#" + std::to_string(i) + " " + side + ": oversized text not too_large");
        if (parsed.error().rid && !is_valid_rid(*parsed.error().rid))
          failures.add("#" + std::to_string(i) + " " + side + ": a refusal carried an invalid rid");
        continue;
      }
      (direction == Direction::from_client ? ok_from_client : ok_from_edge)++;
      const Frame& frame = parsed.value();
      if (direction == Direction::from_client ? !is_client_frame(frame) : !is_edge_frame(frame))
        failures.add("#" + std::to_string(i) + " " + side + ": accepted the other side's " +
                     std::string(frame_type(frame)));
      std::string again = serialize(frame);
      auto reparsed = parse_frame(again, direction, roomy);
      if (!reparsed.ok()) {
        failures.add("#" + std::to_string(i) + " " + side + ": re-serialized frame refused (" +
                     reparsed.error().message + "): " + excerpt(again) + " from " + excerpt(text));
      } else if (!(reparsed.value() == frame)) {
        failures.add("#" + std::to_string(i) + " " + side + ": round trip changed the frame: " +
                     excerpt(again) + " vs " + excerpt(serialize(reparsed.value())));
      } else if (serialize(reparsed.value()) != again) {
        failures.add("#" + std::to_string(i) + " " + side + ": serialization not stable: " + excerpt(again));
      }
    }
  }

  INFO(describe(failures));
  CHECK(failures.count == 0);
  // The mutator must reach every path, or the run proves little.
  INFO("ok from_client " << ok_from_client << ", ok from_edge " << ok_from_edge << ", bad_frame "
                         << refused_by_code["bad_frame"] << ", unknown_type " << refused_by_code["unknown_type"]
                         << ", invalid " << refused_by_code["invalid"] << ", too_large "
                         << refused_by_code["too_large"]);
  CHECK(ok_from_client > kFrames / 50);
  CHECK(ok_from_edge > kFrames / 50);
  CHECK(fast_path_candidates > kFrames / 100);  // sends the fast path read (and the general path agreed)
  CHECK(refused_by_code["bad_frame"] > kFrames / 20);
  CHECK(refused_by_code["unknown_type"] > kFrames / 50);
  CHECK(refused_by_code["invalid"] > kFrames / 20);
  CHECK(refused_by_code["too_large"] > 0);
}

// ---- the edge -----------------------------------------------------------------------------

namespace {

constexpr ConnId kFuzzConn = 1;  // alice: sends the garbage
constexpr ConnId kCalmConn = 2;  // bob: behaves, and must not notice

// An EdgeNode over a MemoryLogStore, with the writer played inline: every EdgePersist is
// committed and reported back before the next event.
struct EdgeHarness {
  MemoryLogStore store;
  DevAuthenticator auth;
  SeededRandom random{kSeed ^ 0xed9eULL};
  EdgeConfig config;
  EdgeNode node{config, store, auth, random};
  TimeMs now = 1700000000000;

  struct Step {
    std::vector<EdgeWrite> writes;
    std::vector<EdgeClose> closes;
    std::vector<WriteRequest> persisted;
  };

  // Runs the writer until quiet; returns everything the node asked for.
  Step drain() {
    Step step;
    std::vector<EdgeOutput> outputs = node.take_outputs();
    while (!outputs.empty()) {
      std::vector<WriteRequest> batch;
      for (EdgeOutput& output : outputs) {
        if (auto* write = std::get_if<EdgeWrite>(&output)) step.writes.push_back(std::move(*write));
        else if (auto* fanout = std::get_if<EdgeFanout>(&output))
          for (ConnId conn : fanout->conns) step.writes.push_back(EdgeWrite{conn, fanout->text, fanout->type});
        else if (auto* close = std::get_if<EdgeClose>(&output)) step.closes.push_back(std::move(*close));
        else batch.push_back(std::get<EdgePersist>(output).request);
      }
      if (!batch.empty()) {
        step.persisted.insert(step.persisted.end(), batch.begin(), batch.end());
        auto committed = commit_batch(store, batch);
        if (committed.ok()) node.on_committed(committed.value(), now);
        else node.on_commit_failed(batch, committed.error(), now);
      }
      outputs = node.take_outputs();
    }
    return step;
  }

  Step text(ConnId conn, std::string_view frame) {
    ++now;
    node.on_text(conn, frame, now);
    return drain();
  }

  // Connects and says hello; REQUIREs the welcome.
  void join(ConnId conn, const std::string& hello) {
    node.on_connect(conn, now);
    Step step = text(conn, hello);
    REQUIRE(step.closes.empty());
    const EdgeWrite* first = nullptr;
    for (const EdgeWrite& write : step.writes)
      if (write.conn == conn && !first) first = &write;
    REQUIRE(first);
    INFO("first frame to conn " << conn << ": " << *first->text);
    auto welcome = parse_frame(*first->text, Direction::from_edge);
    REQUIRE(welcome.ok());
    REQUIRE(std::holds_alternative<Welcome>(welcome.value()));
  }
};

std::vector<Frame> frames_to(const EdgeHarness::Step& step, ConnId conn, Failures& failures) {
  std::vector<Frame> frames;
  for (const EdgeWrite& write : step.writes) {
    if (write.conn != conn) continue;
    auto parsed = parse_frame(*write.text, Direction::from_edge, ParseLimits{1 << 22});
    if (!parsed.ok()) {
      failures.add("conn " + std::to_string(conn) + " was sent a frame that does not parse (" +
                   parsed.error().message + "): " + excerpt(*write.text, 2000));
      continue;
    }
    frames.push_back(std::move(parsed).value());
  }
  return frames;
}

}  // namespace

TEST_CASE("codec fuzz: an edge answers garbage with err, and nobody else notices", "[fuzz]") {
  CAPTURE(kSeed);
  EdgeHarness edge;
  Failures failures;

  // History that the garbage must leave alone.
  std::vector<WriteRequest> seed_history;
  for (int i = 1; i <= 5; ++i) {
    AppendRequest request;
    request.tenant = "dev";
    request.msg = Msg{"ops", std::nullopt, "seed-" + std::to_string(i), "carol", 1600000000000 + i,
                      std::nullopt, std::string(kTrace), JsonText{R"({"seed":)" + std::to_string(i) + "}"}};
    seed_history.push_back(WriteRequest{static_cast<std::uint64_t>(1000 + i), request});
  }
  REQUIRE(commit_batch(edge.store, seed_history).ok());
  std::vector<std::string> seeded_frames;
  auto seeded = edge.store.read_after("dev", "ops", 0, 100);
  REQUIRE(seeded.ok());
  for (const auto& m : seeded.value()) seeded_frames.push_back(m.frame);
  REQUIRE(seeded_frames.size() == 5);

  edge.join(kCalmConn, R"({"t":"hello","token":"dev:bob","subs":[{"conv":"calm"}]})");
  ConnId fuzz_conn = kFuzzConn;
  ConnId next_conn = 10;
  edge.join(fuzz_conn, R"({"t":"hello","token":"dev:alice"})");

  Mutator mutator(kSeed, make_corpus());
  std::map<std::pair<std::string, std::string>, JsonText> valid_sends;  // first body per (conv, id)
  std::size_t bad_frames = 0, valid_frames = 0, reconnects = 0, calm_sends = 0;
  const ParseLimits limits{edge.config.max_frame};

  for (int i = 0; i < kFrames; ++i) {
    const std::string text = mutator.next();
    const std::string where = "#" + std::to_string(i) + " " + excerpt(text);
    auto expected = parse_frame(text, Direction::from_client, limits);
    EdgeHarness::Step step = edge.text(fuzz_conn, text);

    for (const EdgeWrite& write : step.writes)
      if (write.conn != fuzz_conn) {
        // Only a valid frame (a typing or presence in some conv) may reach anyone else.
        if (!expected.ok()) failures.add(where + ": a bad frame reached conn " + std::to_string(write.conn));
        if (write.conn == kCalmConn) {
          auto parsed = parse_frame(*write.text, Direction::from_edge, ParseLimits{1 << 22});
          if (!parsed.ok() || std::holds_alternative<Err>(parsed.value()) ||
              std::holds_alternative<Bye>(parsed.value()))
            failures.add(where + ": the calm connection got " + excerpt(*write.text));
        }
      }
    std::vector<Frame> answers = frames_to(step, fuzz_conn, failures);

    if (!expected.ok()) {
      ++bad_frames;
      const FrameError& error = expected.error();
      const Err* err = answers.size() == 1 ? std::get_if<Err>(&answers[0]) : nullptr;
      if (!err) {
        failures.add(where + ": expected exactly one err, got " + std::to_string(answers.size()) + " frame(s)");
      } else if (err->code != error.code) {
        failures.add(where + ": err code " + std::string(to_string(err->code)) + ", expected " +
                     std::string(to_string(error.code)));
      } else if (error.code != ErrorCode::too_large &&
                 (err->msg != error.message || err->rid != error.rid)) {
        failures.add(where + ": err msg/rid \"" + err->msg + "\" differ from the codec's \"" + error.message + "\"");
      }
      if (!step.persisted.empty()) failures.add(where + ": a bad frame was persisted");
      if (error.code == ErrorCode::too_large) {
        if (step.closes.size() != 1 || step.closes[0].code != 1009)
          failures.add(where + ": an oversized frame did not close with 1009");
        // The client reconnects, as a real one would.
        edge.node.on_disconnect(fuzz_conn, edge.now);
        EdgeHarness::Step left = edge.drain();  // presence "off" to whoever shared a conv
        for (const EdgeWrite& write : left.writes)
          if (write.conn == fuzz_conn) failures.add(where + ": wrote to a closed connection");
        fuzz_conn = next_conn++;
        ++reconnects;
        edge.join(fuzz_conn, R"({"t":"hello","token":"dev:alice"})");
      } else if (!step.closes.empty()) {
        failures.add(where + ": a bad frame closed a socket");
      }
    } else {
      ++valid_frames;
      if (!step.closes.empty()) failures.add(where + ": a valid frame closed a socket");
      if (const auto* send = std::get_if<Send>(&expected.value())) {
        valid_sends.emplace(std::make_pair(send->conv, send->id), send->body);
        bool acked = false;
        for (const Frame& answer : answers)
          if (const auto* ack = std::get_if<Ack>(&answer))
            acked = acked || (ack->conv == send->conv && ack->id == send->id && ack->seq.has_value());
        if (step.persisted.size() != 1 || !acked) failures.add(where + ": a valid send was not persisted and acked");
      }
    }

    // Every so often the calm connection checks that the node still works for it.
    if (i % 500 == 499) {
      ++calm_sends;
      const std::string id = "calm-" + std::to_string(calm_sends);
      const std::string rid = "c" + std::to_string(calm_sends);
      // Valid fuzz sends may also land in "calm" (it is in the mutator's strings on purpose).
      const Seq expected_seq = edge.store.head("dev", "calm").value() + 1;
      EdgeHarness::Step calm = edge.text(
          kCalmConn, R"({"t":"send","conv":"calm","id":")" + id + R"(","body":{"k":)" +
                         std::to_string(calm_sends) + R"(},"rid":")" + rid + R"("})");
      std::vector<Frame> got = frames_to(calm, kCalmConn, failures);
      bool acked = false, delivered = false;
      for (const Frame& frame : got) {
        if (const auto* ack = std::get_if<Ack>(&frame))
          acked = acked || (ack->id == id && ack->rid == rid && ack->seq == std::optional<Seq>(expected_seq) &&
                            !ack->dup);
        if (const auto* msg = std::get_if<Msg>(&frame))
          delivered = delivered || (msg->id == id && msg->seq == std::optional<Seq>(expected_seq) &&
                                    msg->from == "bob");
      }
      if (calm.persisted.size() != 1 || !acked || !delivered || !calm.closes.empty())
        failures.add("calm send " + id + " after #" + std::to_string(i) + ": persisted " +
                     std::to_string(calm.persisted.size()) + ", acked " + std::to_string(acked) +
                     ", delivered " + std::to_string(delivered));
      EdgeHarness::Step ping = edge.text(kCalmConn, R"({"t":"ping","ts":)" + std::to_string(i) + "}");
      std::vector<Frame> pong = frames_to(ping, kCalmConn, failures);
      if (pong.size() != 1 || !std::holds_alternative<Pong>(pong[0]) ||
          std::get<Pong>(pong[0]).ts != static_cast<TimeMs>(i))
        failures.add("calm ping after #" + std::to_string(i) + " got no pong");
    }
  }

  // ---- the stored data ----
  const MemoryLogStore::Data& data = edge.store.data();
  std::size_t from_fuzz = 0, from_calm = 0;
  for (const auto& [key, record] : data.log) {
    const auto& [tenant, conv, seq] = key;
    auto made = record_frame(record, conv, seq);
    if (!made.ok()) {
      failures.add("stored " + conv + "#" + std::to_string(seq) + ": not a record (" +
                   made.error().message + ")");
      continue;
    }
    const std::string& frame = made.value();
    const std::string where = "stored " + conv + "#" + std::to_string(seq) + " " + excerpt(frame, 600);
    if (tenant != "dev") failures.add(where + ": tenant " + tenant);
    if (conv == "ops" && seq <= 5) {
      if (frame != seeded_frames[seq - 1]) failures.add(where + ": seeded history changed");
      continue;
    }
    auto parsed = parse_frame(frame, Direction::from_edge, ParseLimits{1 << 22});
    const Msg* msg = parsed.ok() ? std::get_if<Msg>(&parsed.value()) : nullptr;
    if (!msg) {
      ++from_fuzz;  // only a send can have put it there
      failures.add(where + ": not a msg frame (" + (parsed.ok() ? std::string("a ") + std::string(frame_type(parsed.value()))
                                                              : parsed.error().message) + ")");
      continue;
    }
    if (msg->seq != std::optional<Seq>(seq)) failures.add(where + ": seq differs from its key");
    if (conv == "calm" && msg->from == "bob") {
      ++from_calm;
      if (msg->id != "calm-" + std::to_string(from_calm) || !(msg->body == JsonText{R"({"k":)" + std::to_string(from_calm) + "}"}))
        failures.add(where + ": not the calm connection's next message");
      continue;
    }
    ++from_fuzz;
    auto sent = valid_sends.find({msg->conv, msg->id});
    if (msg->from != "alice" || sent == valid_sends.end()) {
      failures.add(where + ": stored, but no valid send asked for it");
    } else if (!(sent->second == msg->body)) {
      failures.add(where + ": body differs from the send's");
    }
  }
  if (from_fuzz != valid_sends.size())
    failures.add(std::to_string(valid_sends.size()) + " distinct valid sends but " +
                 std::to_string(from_fuzz) + " stored messages from them");
  if (data.ids.size() != data.log.size()) failures.add("the id index and the log differ in size");
  for (const auto& [key, cursors] : data.receipts) {
    const auto& [tenant, user, conv] = key;
    if (tenant != "dev" || user != "alice") failures.add("a receipt for " + tenant + "/" + user + " in " + conv);
  }
  CHECK(from_calm == calm_sends);

  INFO(describe(failures));
  INFO("bad frames " << bad_frames << ", valid frames " << valid_frames << " (" << valid_sends.size()
                     << " distinct sends), reconnects " << reconnects << ", calm sends " << calm_sends);
  CHECK(failures.count == 0);
  CHECK(bad_frames > kFrames / 2);
  CHECK(valid_frames > kFrames / 100);
  CHECK_FALSE(valid_sends.empty());
  CHECK(reconnects > 0);
  CHECK(edge.node.connection_count() == 2);
}
