// JSON text <-> Frame. All per-frame validation of protocol.md lives in this file.
#include "waymark/codec.h"

#include <boost/json/basic_parser_impl.hpp>

#include <charconv>
#include <cmath>
#include <limits>

#include "codec_internal.h"
#include "json_read.h"
#include "json_write.h"
#include "waymark/auth.h"
#include "waymark/identifiers.h"

namespace json = boost::json;

namespace waymark {
namespace {

// Integers must be exact in a JavaScript number too: |n| <= 2^53 - 1.
constexpr std::int64_t kMaxSafeInteger = (std::int64_t{1} << 53) - 1;
// Nesting allowed in a frame from a client (boost::json's default). A body nests one level
// below its frame, so a body handed over alone (parse_json_text) may nest one level less.
constexpr std::size_t kMaxClientFrameDepth = 32;
// An edge's page nests a body three levels down (page, msgs, msg): a client accepts what an
// edge accepted from the sender.
constexpr std::size_t kMaxEdgeFrameDepth = kMaxClientFrameDepth + 8;

// Reads the fields of one JSON object, keeping the first error. Each getter returns a
// default value after an error; the caller checks `error` once at the end.
class FieldReader {
 public:
  // object: a JSON object inside text check_json accepted; non_finite: whether that check met
  // a number too large for a double somewhere in the text (a body is then checked alone).
  FieldReader(JsonView object, bool non_finite, std::string prefix = {})
      : members_(object.members()), non_finite_(non_finite), prefix_(std::move(prefix)) {}

  std::optional<Error> error;

  bool fail(std::string_view field, std::string_view rule) {
    if (!error) error = make_error(ErrorCode::invalid, prefix_ + std::string(field) + ": " + std::string(rule));
    return false;
  }

  // The member `key` (the last one when it repeats), or nullptr.
  const JsonView* find(std::string_view key) const {
    for (auto it = members_.rbegin(); it != members_.rend(); ++it)
      if (it->key_is(key)) return &it->value;
    return nullptr;
  }

  bool non_finite() const { return non_finite_; }

  std::optional<std::string> opt_string(std::string_view key) {
    const JsonView* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) {
      fail(key, "must be a string");
      return std::nullopt;
    }
    return v->get_string();
  }

  std::string string(std::string_view key) {
    if (!find(key)) {
      fail(key, "missing");
      return {};
    }
    return opt_string(key).value_or(std::string{});
  }

  std::string conv(std::string_view key = "conv") {
    std::string value = string(key);
    if (!error && !is_valid_conv(value)) fail(key, kConvRule);
    return value;
  }

  std::string message_id(std::string_view key = "id") {
    std::string value = string(key);
    if (!error && !is_valid_message_id(value)) fail(key, kMessageIdRule);
    return value;
  }

  std::optional<std::string> rid() {
    std::optional<std::string> value = opt_string("rid");
    if (value && !is_valid_rid(*value)) fail("rid", kRidRule);
    return value;
  }

  std::optional<std::string> trace() {
    std::optional<std::string> value = opt_string("trace");
    if (value && !is_valid_traceparent(*value)) fail("trace", kTraceRule);
    return value;
  }

  std::optional<std::int64_t> opt_integer(std::string_view key, std::int64_t min) {
    const JsonView* v = find(key);
    if (!v) return std::nullopt;
    std::int64_t n = 0;
    if (v->is_int64()) {
      n = v->get_int64();
    } else if (v->is_uint64()) {
      fail(key, "too large");
      return std::nullopt;
    } else {
      fail(key, "must be an integer");
      return std::nullopt;
    }
    if (n > kMaxSafeInteger) {
      fail(key, "too large");
      return std::nullopt;
    }
    if (n < min) {
      fail(key, min == 0 ? "must not be negative" : "must be at least " + std::to_string(min));
      return std::nullopt;
    }
    return n;
  }

  std::int64_t integer(std::string_view key, std::int64_t min) {
    if (!find(key)) {
      fail(key, "missing");
      return 0;
    }
    return opt_integer(key, min).value_or(0);
  }

  std::optional<Seq> opt_seq(std::string_view key, std::int64_t min) {
    auto n = opt_integer(key, min);
    if (!n) return std::nullopt;
    return static_cast<Seq>(*n);
  }
  Seq seq(std::string_view key, std::int64_t min) { return static_cast<Seq>(integer(key, min)); }

  std::optional<std::uint32_t> opt_limit(std::string_view key = "limit") {
    auto n = opt_integer(key, 1);
    if (!n) return std::nullopt;
    return static_cast<std::uint32_t>(std::min<std::int64_t>(*n, std::numeric_limits<std::uint32_t>::max()));
  }

  std::optional<bool> opt_bool(std::string_view key) {
    const JsonView* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) {
      fail(key, "must be true or false");
      return std::nullopt;
    }
    return v->get_bool();
  }

  bool boolean(std::string_view key) {
    if (!find(key)) return fail(key, "missing");
    return opt_bool(key).value_or(false);
  }

  ReceiptKind receipt_kind() {
    std::string kind = string("kind");
    if (error) return ReceiptKind::read;
    if (kind == "read") return ReceiptKind::read;
    if (kind == "delivered") return ReceiptKind::delivered;
    fail("kind", "must be \"delivered\" or \"read\"");
    return ReceiptKind::read;
  }

  std::string user(std::string_view key = "user") { return string(key); }

  // A relay link's "as": the user name it speaks for (auth.h's rule).
  std::optional<std::string> as_user() {
    std::optional<std::string> value = opt_string("as");
    if (value && !error && !is_valid_user_name(*value)) fail("as", "must be 1-64 chars of [A-Za-z0-9._@-]");
    return value;
  }

  // A message body: any JSON value with finite numbers, kept as the text it was sent as.
  // JSON has no Infinity or NaN; a number too large for a double (1e400) parses to one, and
  // the text of such a body would reach JavaScript readers as Infinity.
  JsonText body() {
    const JsonView* v = find("body");
    if (!v) {
      fail("body", "missing");
      return {};
    }
    if (non_finite_ && check_json(v->text(), std::size_t(-1)).non_finite) {
      fail("body", "numbers must be finite");
      return {};
    }
    return JsonText{std::string(v->text())};
  }

 private:
  std::vector<JsonMember> members_;
  bool non_finite_ = false;
  std::string prefix_;
};

template <typename T>
Result<Frame> finish(FieldReader& reader, T&& frame) {
  if (reader.error) return *reader.error;
  return Frame{std::forward<T>(frame)};
}

// ---- client -> edge ----

std::optional<SubRequest> read_sub_request(FieldReader& r) {
  SubRequest request;
  request.conv = r.conv();
  request.after = r.opt_seq("after", 0);
  request.limit = r.opt_limit();
  if (r.error) return std::nullopt;
  return request;
}

Result<Frame> parse_hello(FieldReader& r) {
  Hello f;
  f.rid = r.rid();
  f.token = r.string("token");
  f.device = r.opt_string("device");
  if (f.device && f.device->size() > 128) r.fail("device", "must be at most 128 chars");
  if (const JsonView* subs = r.find("subs"); subs && !r.error) {
    if (!subs->is_array()) {
      r.fail("subs", "must be an array");
    } else {
      std::size_t index = 0;
      for (const JsonView& entry : subs->elements()) {
        std::string prefix = "subs[" + std::to_string(index++) + "].";
        if (!entry.is_object()) {
          r.fail(prefix.substr(0, prefix.size() - 1), "must be an object");
          break;
        }
        FieldReader sub_reader(entry, false, prefix);  // no body in a sub
        auto request = read_sub_request(sub_reader);
        if (!request) {
          r.error = sub_reader.error;
          break;
        }
        f.subs.push_back(std::move(*request));
      }
    }
  }
  if (!r.error) f.provisional = r.opt_bool("provisional").value_or(false);
  if (const JsonView* relay = r.find("relay"); relay && !r.error) {
    if (!relay->is_object()) {
      r.fail("relay", "must be an object with node and tenant");
    } else {
      FieldReader relay_reader(*relay, false, "relay.");
      RelayHello hello;
      hello.node = relay_reader.string("node");
      if (!relay_reader.error && !is_valid_node_name(hello.node))
        relay_reader.fail("node", kNodeNameRule);
      hello.tenant = relay_reader.string("tenant");
      if (!relay_reader.error && !is_valid_tenant_name(hello.tenant))
        relay_reader.fail("tenant", kNodeNameRule);
      if (relay_reader.error)
        r.error = relay_reader.error;
      else
        f.relay = std::move(hello);
    }
  }
  return finish(r, std::move(f));
}

Result<Frame> parse_sub(FieldReader& r) {
  Sub f;
  f.rid = r.rid();
  if (auto request = read_sub_request(r)) f.request = std::move(*request);
  return finish(r, std::move(f));
}

Result<Frame> parse_unsub(FieldReader& r) {
  Unsub f;
  f.rid = r.rid();
  f.conv = r.conv();
  return finish(r, std::move(f));
}

Result<Frame> parse_hist(FieldReader& r) {
  Hist f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.before = r.opt_seq("before", 1);
  f.after = r.opt_seq("after", 0);
  f.limit = r.opt_limit();
  if (!r.error && f.before && f.after) r.fail("before", "give before or after, not both");
  return finish(r, std::move(f));
}

Result<Frame> parse_send(FieldReader& r) {
  Send f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.id = r.message_id();
  f.body = r.body();
  f.cts = r.opt_integer("cts", 0);
  f.trace = r.trace();
  f.as = r.as_user();
  return finish(r, std::move(f));
}

Result<Frame> parse_ping(FieldReader& r) {
  Ping f;
  f.rid = r.rid();
  f.ts = r.opt_integer("ts", 0);
  return finish(r, std::move(f));
}

Result<Frame> parse_rcpt(FieldReader& r, Direction direction) {
  Rcpt f;
  if (direction == Direction::from_client) f.rid = r.rid();
  f.conv = r.conv();
  f.seq = r.seq("seq", 1);
  f.kind = r.receipt_kind();
  if (direction == Direction::from_edge) f.user = r.user();
  if (direction == Direction::from_client) f.as = r.as_user();
  return finish(r, std::move(f));
}

Result<Frame> parse_typing(FieldReader& r, Direction direction) {
  Typing f;
  if (direction == Direction::from_client) f.rid = r.rid();
  f.conv = r.conv();
  f.on = r.boolean("on");
  if (direction == Direction::from_edge) f.user = r.user();
  if (direction == Direction::from_client) f.as = r.as_user();
  return finish(r, std::move(f));
}

// ---- edge -> client ----

Result<Frame> parse_welcome(FieldReader& r) {
  Welcome f;
  f.rid = r.rid();
  f.session = r.string("session");
  f.node = r.string("node");
  f.user = r.user();
  f.ts = r.integer("ts", 0);
  f.hb = r.integer("hb", 1);
  f.max_frame = r.integer("max_frame", 1);
  if (const JsonView* path = r.find("path"); path && !r.error) {
    if (!path->is_array()) {
      r.fail("path", "must be an array of node names");
    } else {
      for (const JsonView& node : path->elements()) {
        std::string name = node.is_string() ? node.get_string() : std::string();
        if (!node.is_string() || !is_valid_node_name(name)) {
          r.fail("path", "must be an array of node names");
          break;
        }
        f.path.push_back(std::move(name));
      }
    }
  }
  return finish(r, std::move(f));
}

std::optional<Msg> read_msg(FieldReader& r) {
  Msg m;
  m.conv = r.conv();
  m.seq = r.opt_seq("seq", 1);
  m.provisional = r.opt_bool("prov").value_or(false);
  if (!r.error && m.provisional && m.seq) r.fail("prov", "a provisional msg has no seq");
  m.id = r.message_id();
  m.from = r.user("from");
  m.ts = r.integer("ts", 0);
  m.cts = r.opt_integer("cts", 0);
  m.trace = r.trace();
  m.body = r.body();
  if (r.error) return std::nullopt;
  return m;
}

Result<Frame> parse_msg(FieldReader& r) {
  auto m = read_msg(r);
  if (!m) return *r.error;
  return Frame{std::move(*m)};
}

Result<Frame> parse_subd(FieldReader& r) {
  Subd f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.head = r.seq("head", 0);
  f.read = r.seq("read", 0);
  f.more = r.boolean("more");
  if (const JsonView* present = r.find("present"); present && !r.error) {
    if (!present->is_array()) {
      r.fail("present", "must be an array of user names");
    } else {
      for (const JsonView& user : present->elements()) {
        if (!user.is_string()) {
          r.fail("present", "must be an array of user names");
          break;
        }
        f.present.emplace_back(user.get_string());
      }
    }
  } else if (!present) {
    r.fail("present", "missing");
  }
  return finish(r, std::move(f));
}

Result<Frame> parse_page(FieldReader& r) {
  Page f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.more = r.boolean("more");
  const JsonView* msgs = r.find("msgs");
  if (!msgs && !r.error) r.fail("msgs", "missing");
  if (msgs && !r.error) {
    if (!msgs->is_array()) {
      r.fail("msgs", "must be an array");
    } else {
      std::size_t index = 0;
      for (const JsonView& entry : msgs->elements()) {
        std::string prefix = "msgs[" + std::to_string(index) + "].";
        if (!entry.is_object()) {
          r.fail(prefix.substr(0, prefix.size() - 1), "must be an object");
          break;
        }
        FieldReader msg_reader(entry, r.non_finite(), prefix);
        ++index;
        auto m = read_msg(msg_reader);
        if (!m) {
          r.error = msg_reader.error;
          break;
        }
        f.msgs.push_back(std::move(*m));
      }
    }
  }
  return finish(r, std::move(f));
}

Result<Frame> parse_ack(FieldReader& r) {
  Ack f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.id = r.message_id();
  f.seq = r.opt_seq("seq", 1);
  f.ts = r.integer("ts", 0);
  f.trace = r.trace();
  f.dup = r.opt_bool("dup").value_or(false);
  return finish(r, std::move(f));
}

ErrorCode read_error_code(FieldReader& r) {
  std::string code = r.string("code");
  if (r.error) return ErrorCode::invalid;
  auto parsed = error_code_from_string(code);
  if (!parsed) {
    r.fail("code", "unknown error code");
    return ErrorCode::invalid;
  }
  return *parsed;
}

Result<Frame> parse_nack(FieldReader& r) {
  Nack f;
  f.rid = r.rid();
  f.conv = r.conv();
  f.id = r.message_id();
  f.code = read_error_code(r);
  f.msg = r.opt_string("msg").value_or("");
  f.retry = r.boolean("retry");
  return finish(r, std::move(f));
}

Result<Frame> parse_presence(FieldReader& r, Direction direction) {
  Presence f;
  f.conv = r.conv();
  if (direction == Direction::from_edge) f.user = r.user();
  f.on = r.boolean("on");
  if (direction == Direction::from_client) {
    f.as = r.as_user();
    if (!f.as && !r.error) r.fail("as", "is required: relay_presence names the relay's user");
  }
  return finish(r, std::move(f));
}

Result<Frame> parse_pong(FieldReader& r) {
  Pong f;
  f.rid = r.rid();
  f.ts = r.integer("ts", 0);
  return finish(r, std::move(f));
}

Result<Frame> parse_bye(FieldReader& r) {
  Bye f;
  f.reason = r.opt_string("reason").value_or("");
  const JsonView* window = r.find("retry_ms");
  std::vector<JsonView> bounds = window ? window->elements() : std::vector<JsonView>{};
  if (!window) {
    r.fail("retry_ms", "missing");
  } else if (!window->is_array() || bounds.size() != 2 || !bounds[0].is_int64() ||
             !bounds[1].is_int64() || bounds[0].get_int64() < 0 ||
             bounds[1].get_int64() > kMaxSafeInteger ||
             bounds[1].get_int64() < bounds[0].get_int64()) {
    r.fail("retry_ms", "must be [min, max] with 0 <= min <= max");
  } else {
    f.retry_min_ms = bounds[0].get_int64();
    f.retry_max_ms = bounds[1].get_int64();
  }
  return finish(r, std::move(f));
}

Result<Frame> parse_err(FieldReader& r) {
  Err f;
  f.rid = r.rid();
  f.code = read_error_code(r);
  f.msg = r.opt_string("msg").value_or("");
  return finish(r, std::move(f));
}

std::string shorten(std::string_view text) {
  constexpr std::size_t kMax = 32;
  return text.size() <= kMax ? std::string(text) : std::string(text.substr(0, kMax)) + "...";
}

// ---- serialization ----
// Every frame is written by JsonObject (json_write.h), member by member, in protocol.md's order.

void put_rid(JsonObject& o, const std::optional<std::string>& rid) {
  if (rid) o.str("rid", *rid);
}

std::string serialize_msg(const Msg& m) {
  return serialize_msg_fields(MsgFields{m.conv, m.seq, m.provisional, m.id, m.from, m.ts, m.cts,
                                        m.trace ? std::optional<std::string_view>(*m.trace)
                                                : std::nullopt,
                                        m.body.text});
}

void put_sub_fields(JsonObject& o, const SubRequest& s) {
  o.str("conv", s.conv);
  if (s.after) o.num("after", *s.after);
  if (s.limit) o.num("limit", *s.limit);
}

// Frames without a body; Msg and Page are written by serialize itself.
struct ToJson {
  std::string operator()(const Hello& f) const {
    JsonObject o;
    o.str("t", "hello").str("token", f.token);
    if (f.device) o.str("device", *f.device);
    if (!f.subs.empty()) {
      JsonArray subs;
      for (const auto& s : f.subs) {
        JsonObject sub;
        put_sub_fields(sub, s);
        subs.raw(sub.done());
      }
      o.raw("subs", subs.done());
    }
    if (f.provisional) o.boolean("provisional", true);
    if (f.relay)
      o.raw("relay", JsonObject().str("node", f.relay->node).str("tenant", f.relay->tenant).done());
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Sub& f) const {
    JsonObject o;
    o.str("t", "sub");
    put_sub_fields(o, f.request);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Unsub& f) const {
    JsonObject o;
    o.str("t", "unsub").str("conv", f.conv);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Hist& f) const {
    JsonObject o;
    o.str("t", "hist").str("conv", f.conv);
    if (f.before) o.num("before", *f.before);
    if (f.after) o.num("after", *f.after);
    if (f.limit) o.num("limit", *f.limit);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Send& f) const {
    JsonObject o(96 + f.conv.size() + f.id.size() + f.body.text.size());
    o.str("t", "send").str("conv", f.conv).str("id", f.id);
    if (f.cts) o.num("cts", *f.cts);
    if (f.trace) o.str("trace", *f.trace);
    if (f.as) o.str("as", *f.as);
    put_rid(o, f.rid);
    return o.raw("body", f.body.text).done();
  }
  std::string operator()(const Ping& f) const {
    JsonObject o;
    o.str("t", "ping");
    if (f.ts) o.num("ts", *f.ts);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Rcpt& f) const {
    JsonObject o;
    o.str("t", "rcpt").str("conv", f.conv);
    if (f.user) o.str("user", *f.user);
    o.num("seq", f.seq).str("kind", to_string(f.kind));
    if (f.as) o.str("as", *f.as);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Typing& f) const {
    JsonObject o;
    o.str("t", "typing").str("conv", f.conv);
    if (f.user) o.str("user", *f.user);
    o.boolean("on", f.on);
    if (f.as) o.str("as", *f.as);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Welcome& f) const {
    JsonObject o(160);
    o.str("t", "welcome").str("session", f.session).str("node", f.node).str("user", f.user);
    o.num("ts", f.ts).num("hb", f.hb).num("max_frame", f.max_frame);
    if (!f.path.empty()) {
      JsonArray path;
      for (const auto& node : f.path) path.str(node);
      o.raw("path", path.done());
    }
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Subd& f) const {
    JsonArray present;
    for (const auto& user : f.present) present.str(user);
    JsonObject o;
    o.str("t", "subd").str("conv", f.conv).num("head", f.head).num("read", f.read);
    o.raw("present", present.done()).boolean("more", f.more);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Ack& f) const {
    JsonObject o(96 + f.conv.size() + f.id.size());
    o.str("t", "ack").str("conv", f.conv).str("id", f.id);
    if (f.seq) o.num("seq", *f.seq);
    o.num("ts", f.ts);
    if (f.trace) o.str("trace", *f.trace);
    if (f.dup) o.boolean("dup", true);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Nack& f) const {
    JsonObject o;
    o.str("t", "nack").str("conv", f.conv).str("id", f.id).str("code", to_string(f.code));
    o.str("msg", f.msg).boolean("retry", f.retry);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Presence& f) const {
    JsonObject o;
    o.str("t", f.as ? "relay_presence" : "presence").str("conv", f.conv);
    if (!f.as) o.str("user", f.user);
    o.boolean("on", f.on);
    if (f.as) o.str("as", *f.as);
    return o.done();
  }
  std::string operator()(const Pong& f) const {
    JsonObject o;
    o.str("t", "pong").num("ts", f.ts);
    put_rid(o, f.rid);
    return o.done();
  }
  std::string operator()(const Bye& f) const {
    JsonObject o;
    o.str("t", "bye").str("reason", f.reason);
    return o.raw("retry_ms", JsonArray().num(f.retry_min_ms).num(f.retry_max_ms).done()).done();
  }
  std::string operator()(const Err& f) const {
    JsonObject o;
    o.str("t", "err").str("code", to_string(f.code)).str("msg", f.msg);
    put_rid(o, f.rid);
    return o.done();
  }
};

struct TypeName {
  std::string_view operator()(const Hello&) const { return "hello"; }
  std::string_view operator()(const Sub&) const { return "sub"; }
  std::string_view operator()(const Unsub&) const { return "unsub"; }
  std::string_view operator()(const Hist&) const { return "hist"; }
  std::string_view operator()(const Send&) const { return "send"; }
  std::string_view operator()(const Ping&) const { return "ping"; }
  std::string_view operator()(const Rcpt&) const { return "rcpt"; }
  std::string_view operator()(const Typing&) const { return "typing"; }
  std::string_view operator()(const Welcome&) const { return "welcome"; }
  std::string_view operator()(const Msg&) const { return "msg"; }
  std::string_view operator()(const Subd&) const { return "subd"; }
  std::string_view operator()(const Page&) const { return "page"; }
  std::string_view operator()(const Ack&) const { return "ack"; }
  std::string_view operator()(const Nack&) const { return "nack"; }
  std::string_view operator()(const Presence& f) const { return f.as ? "relay_presence" : "presence"; }
  std::string_view operator()(const Pong&) const { return "pong"; }
  std::string_view operator()(const Bye&) const { return "bye"; }
  std::string_view operator()(const Err&) const { return "err"; }
};

}  // namespace

std::string_view to_string(ReceiptKind kind) {
  return kind == ReceiptKind::read ? "read" : "delivered";
}

std::string json_quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  append_json_string(out, text);
  return out;
}

std::string_view frame_type(const Frame& frame) { return std::visit(TypeName{}, frame); }

// The msg frame, its body last as sent.
std::string serialize_msg_fields(const MsgFields& m) {
  JsonObject o(128 + m.conv.size() + m.id.size() + m.from.size() + m.body.size());
  o.str("t", "msg").str("conv", m.conv);
  if (m.seq) o.num("seq", *m.seq);
  if (m.provisional) o.boolean("prov", true);
  o.str("id", m.id).str("from", m.from).num("ts", m.ts);
  if (m.cts) o.num("cts", *m.cts);
  if (m.trace) o.str("trace", *m.trace);
  return o.raw("body", m.body).done();
}

std::string serialize(const Msg& msg) { return serialize_msg(msg); }

std::string serialize(const Frame& frame) {
  if (const Msg* m = std::get_if<Msg>(&frame)) return serialize_msg(*m);
  if (const Page* page = std::get_if<Page>(&frame)) {
    std::vector<std::string> msgs;
    msgs.reserve(page->msgs.size());
    for (const Msg& m : page->msgs) msgs.push_back(serialize_msg(m));
    return serialize_page(page->conv, msgs, page->more, page->rid);
  }
  return std::visit(
      [](const auto& f) -> std::string {
        if constexpr (requires { ToJson{}(f); })
          return ToJson{}(f);
        else
          return {};  // unreachable: Msg and Page are written above
      },
      frame);
}

void append_raw_member(std::string& object_json, std::string_view key, std::string_view raw_value) {
  // REQUIRES: object_json ends in '}'. "{}" gets no comma.
  object_json.pop_back();
  if (object_json.size() > 1) object_json += ',';
  append_json_string(object_json, key);
  object_json += ':';
  object_json += raw_value;
  object_json += '}';
}

std::optional<Error> check_frame_size(std::size_t size, std::size_t max_frame) {
  if (size <= max_frame) return std::nullopt;
  return make_error(ErrorCode::too_large, "frame: " + std::to_string(size) +
                                              " bytes exceeds max_frame " +
                                              std::to_string(max_frame));
}

Result<JsonText> parse_json_text(std::string_view text) {
  JsonChecked checked = check_json(text, kMaxClientFrameDepth - 1);
  if (checked.error) return make_error(ErrorCode::invalid, "body: not JSON (" + *checked.error + ")");
  if (checked.non_finite) return make_error(ErrorCode::invalid, "body: numbers must be finite");
  return JsonText{std::string(checked.value.text())};
}

std::string serialize_page(std::string_view conv, const std::vector<std::string>& stored_msgs,
                           bool more, const std::optional<std::string>& rid) {
  std::size_t size = 64 + conv.size();
  for (const auto& m : stored_msgs) size += m.size() + 1;
  std::string out;
  out.reserve(size);
  out += R"({"t":"page","conv":)";
  out += json_quote(conv);
  out += R"(,"msgs":[)";
  for (std::size_t i = 0; i < stored_msgs.size(); ++i) {
    if (i) out += ',';
    out += stored_msgs[i];
  }
  out += R"(],"more":)";
  out += more ? "true" : "false";
  if (rid) {
    out += R"(,"rid":)";
    out += json_quote(*rid);
  }
  out += '}';
  return out;
}

namespace {

Result<Frame> parse_typed(FieldReader& r, std::string_view type, Direction direction) {
  if (direction == Direction::from_client) {
    if (type == "hello") return parse_hello(r);
    if (type == "sub") return parse_sub(r);
    if (type == "unsub") return parse_unsub(r);
    if (type == "hist") return parse_hist(r);
    if (type == "send") return parse_send(r);
    if (type == "ping") return parse_ping(r);
    if (type == "rcpt") return parse_rcpt(r, direction);
    if (type == "typing") return parse_typing(r, direction);
    if (type == "relay_presence") return parse_presence(r, direction);
  } else {
    if (type == "welcome") return parse_welcome(r);
    if (type == "msg") return parse_msg(r);
    if (type == "subd") return parse_subd(r);
    if (type == "page") return parse_page(r);
    if (type == "ack") return parse_ack(r);
    if (type == "nack") return parse_nack(r);
    if (type == "rcpt") return parse_rcpt(r, direction);
    if (type == "typing") return parse_typing(r, direction);
    if (type == "presence") return parse_presence(r, direction);
    if (type == "pong") return parse_pong(r);
    if (type == "bye") return parse_bye(r);
    if (type == "err") return parse_err(r);
  }
  return make_error(ErrorCode::unknown_type,
                    "t: unknown frame type \"" + shorten(type) + "\"" +
                        (direction == Direction::from_client ? " for a client" : " for an edge"));
}

// ---- the send fast path ----
// A client's send is most of what an edge parses. This reads one in a single pass: boost::json's
// basic_parser validates the whole text exactly as check_json does (syntax, UTF-8, depth, one
// value and nothing after it) and calls back with the top-level members, which are kept as
// they come. A frame it reads whole and finds valid by every rule parse_send applies becomes
// the Send here; anything else (an error to report, a duplicate or unusual member) returns
// nullopt and goes the general way, which says exactly what is wrong.
class SendScan {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  // What the top level held, for the fields parse_send reads.
  enum Field : unsigned { kT, kConv, kId, kBody, kCts, kTrace, kRid, kAs, kFields, kOther };
  std::string strings[kFields];
  std::int64_t cts = 0;
  unsigned seen = 0;          // bit per Field
  bool unusual = false;       // a duplicate, a wrong kind, a non-finite number, an escape in a key
  bool top_is_object = false;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (depth_++ == 0) top_is_object = true;
    else if (depth_ == 2) value_begins(Kind::nested);
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_array_begin(json::error_code&) {
    if (depth_++ == 1) value_begins(Kind::nested);
    return true;
  }
  bool on_array_end(std::size_t, json::error_code&) {
    --depth_;
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ == 1) key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ != 1) return true;
    key_.append(s.data(), s.size());
    field_ = field_of(key_);
    key_.clear();
    if (field_ != kOther) {
      if (seen & (1u << field_)) unusual = true;  // duplicate: boost::json keeps one, say which way
      seen |= 1u << field_;
    }
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ == 1 && field_ < kFields) strings[field_].append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    if (depth_ != 1) return true;
    if (field_ < kFields) strings[field_].append(s.data(), s.size());
    return value_begins(Kind::string);
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    if (depth_ == 1 && field_ == kCts) cts = i;
    return depth_ == 1 ? value_begins(Kind::int64) : true;
  }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) {
    return depth_ == 1 ? value_begins(Kind::other) : true;
  }
  bool on_double(double d, json::string_view, json::error_code&) {
    if (!std::isfinite(d)) unusual = true;
    return depth_ == 1 ? value_begins(Kind::other) : true;
  }
  bool on_bool(bool, json::error_code&) { return depth_ == 1 ? value_begins(Kind::other) : true; }
  bool on_null(json::error_code&) { return depth_ == 1 ? value_begins(Kind::other) : true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  enum class Kind { string, int64, nested, other };

  static Field field_of(std::string_view key) {
    static constexpr std::string_view kNames[kFields] = {"t", "conv", "id", "body", "cts", "trace", "rid", "as"};
    for (unsigned f = 0; f < kFields; ++f)
      if (key == kNames[f]) return static_cast<Field>(f);
    return kOther;
  }
  // The top-level value of the member just keyed is of this kind: right for its field or not.
  bool value_begins(Kind kind) {
    switch (field_) {
      case kBody: break;  // any value
      case kCts: if (kind != Kind::int64) unusual = true; break;
      case kOther: break;
      default: if (kind != Kind::string) unusual = true; break;
    }
    return true;
  }

  std::size_t depth_ = 0;
  std::string key_;
  Field field_ = kOther;
};

std::optional<Send> fast_send(std::string_view text) {
  json::parse_options options;
  options.max_depth = kMaxClientFrameDepth;
  json::basic_parser<SendScan> parser(options);
  json::error_code ec;
  std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (ec || used != text.size()) return std::nullopt;
  SendScan& scan = parser.handler();
  using F = SendScan::Field;
  const auto has = [&](F f) { return (scan.seen & (1u << f)) != 0; };
  if (!scan.top_is_object || scan.unusual || !has(F::kT) || !has(F::kConv) || !has(F::kId) || !has(F::kBody) ||
      scan.strings[F::kT] != "send")
    return std::nullopt;
  Send f;
  if (has(F::kRid)) {
    if (!is_valid_rid(scan.strings[F::kRid])) return std::nullopt;
    f.rid = std::move(scan.strings[F::kRid]);
  }
  if (!is_valid_conv(scan.strings[F::kConv]) || !is_valid_message_id(scan.strings[F::kId])) return std::nullopt;
  if (has(F::kCts) && (scan.cts < 0 || scan.cts > kMaxSafeInteger)) return std::nullopt;
  if (has(F::kTrace) && !is_valid_traceparent(scan.strings[F::kTrace])) return std::nullopt;
  if (has(F::kAs) && !is_valid_user_name(scan.strings[F::kAs])) return std::nullopt;
  std::optional<JsonView> raw = JsonView(text).find("body");
  if (!raw) return std::nullopt;
  f.conv = std::move(scan.strings[F::kConv]);
  f.id = std::move(scan.strings[F::kId]);
  f.body = JsonText{std::string(raw->text())};
  if (has(F::kCts)) f.cts = scan.cts;
  if (has(F::kTrace)) f.trace = std::move(scan.strings[F::kTrace]);
  if (has(F::kAs)) f.as = std::move(scan.strings[F::kAs]);
  return f;
}

FrameError frame_error(Error error, std::string type = {}, std::optional<std::string> rid = {}) {
  FrameError out;
  out.code = error.code;
  out.message = std::move(error.message);
  out.type = std::move(type);
  out.rid = std::move(rid);
  return out;
}

}  // namespace

Result<Frame, FrameError> parse_frame(std::string_view text, Direction direction,
                                      const ParseLimits& limits) {
  static constexpr std::string_view kSendStart = R"({"t":"send",)";  // how clients write it
  if (direction == Direction::from_client && text.size() <= limits.max_frame &&
      text.substr(0, kSendStart.size()) == kSendStart)
    if (std::optional<Send> send = fast_send(text)) return Frame{std::move(*send)};
  return parse_frame_general(text, direction, limits);
}

Result<Frame, FrameError> parse_frame_general(std::string_view text, Direction direction,
                                          const ParseLimits& limits) {
  if (auto too_large = check_frame_size(text.size(), limits.max_frame))
    return frame_error(std::move(*too_large));
  JsonChecked checked = check_json(
      text, direction == Direction::from_client ? kMaxClientFrameDepth : kMaxEdgeFrameDepth);
  if (checked.error)
    return frame_error(make_error(ErrorCode::bad_frame, "frame: not JSON (" + *checked.error + ")"));
  if (!checked.value.is_object())
    return frame_error(make_error(ErrorCode::bad_frame, "frame: not a JSON object"));
  FieldReader r(checked.value, checked.non_finite);

  // The rid is read first, so that any refusal of this frame can echo it.
  std::optional<std::string> rid;
  if (const JsonView* value = r.find("rid"); value && value->is_string()) {
    std::string candidate = value->get_string();
    if (is_valid_rid(candidate)) rid = std::move(candidate);
  }
  const JsonView* t = r.find("t");
  if (!t) return frame_error(make_error(ErrorCode::invalid, "t: missing"), {}, rid);
  if (!t->is_string()) return frame_error(make_error(ErrorCode::invalid, "t: must be a string"), {}, rid);
  std::string type = t->get_string();

  Result<Frame> frame = parse_typed(r, type, direction);
  if (!frame.ok()) return frame_error(frame.error(), std::string(type), std::move(rid));
  return std::move(frame).value();
}

}  // namespace waymark
