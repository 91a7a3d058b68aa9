// The access rule (Identity::may_access), token claims, and dev-mode tokens.
#include "waymark/auth.h"

#include <algorithm>

#include <cmath>
#include <cstdint>
#include <string>

#include "json_read.h"
#include "waymark/identifiers.h"

namespace waymark {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// A NumericDate claim as milliseconds: seconds per RFC 7519, a value above 1e11 (the year 5138
// in seconds) taken as milliseconds already. nullopt: not an integral number.
std::optional<TimeMs> numeric_date_ms(const JsonView& value) {
  double number = 0;
  if (value.is_int64()) number = static_cast<double>(value.get_int64());
  else if (value.is_uint64() || value.is_double()) number = value.get_double();
  else return std::nullopt;
  if (!std::isfinite(number) || number < 0 || number > 9.0e15 || std::floor(number) != number)
    return std::nullopt;
  return number > 1e11 ? static_cast<TimeMs>(number) : static_cast<TimeMs>(number) * 1000;
}

// Decodes base64url (or standard base64), padding optional, as a browser's forgiving atob does
// after swapping the alphabet. nullopt on any other character or an impossible length.
std::optional<std::string> decode_base64url(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    int value;
    if (c >= 'A' && c <= 'Z') value = c - 'A';
    else if (c >= 'a' && c <= 'z') value = c - 'a' + 26;
    else if (c >= '0' && c <= '9') value = c - '0' + 52;
    else if (c == '-' || c == '+') value = 62;
    else if (c == '_' || c == '/') value = 63;
    else return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

Error claim_error(std::string_view claim, std::string_view what) {
  return make_error(ErrorCode::unauthorized,
                    "token: claim " + std::string(claim) + " " + std::string(what));
}

// convs and read: arrays of conversation names or prefixes ending in '*' ("*": all).
std::optional<Error> read_conv_patterns(const JsonView& value, std::string_view claim,
                                        std::vector<std::string>& out) {
  if (!value.is_array())
    return claim_error(claim, "must be an array of conversation names or prefixes ending in *");
  for (const JsonView& entry : value.elements()) {
    if (!entry.is_string()) return claim_error(claim, "must hold strings only");
    std::string decoded = entry.get_string();
    std::string_view pattern = decoded;
    std::string_view name = pattern;
    if (!name.empty() && name.back() == '*') name.remove_suffix(1);
    // A prefix may be empty ("*": every conversation); a name follows the conv rule.
    if (!(name.empty() && pattern == "*") && !is_valid_conv(name))
      return claim_error(claim, "entries must be conversation names or prefixes ending in *");
    out.emplace_back(pattern);
  }
  return std::nullopt;
}

}  // namespace

namespace {
bool matches_any(const std::vector<std::string>& patterns, std::string_view conv) {
  for (const std::string& pattern : patterns) {
    if (!pattern.empty() && pattern.back() == '*') {
      std::string_view prefix(pattern.data(), pattern.size() - 1);
      if (conv.substr(0, prefix.size()) == prefix) return true;
    } else if (pattern == conv) {
      return true;
    }
  }
  return false;
}
}  // namespace

bool Identity::may_access(std::string_view conv) const {
  return all_convs || matches_any(convs, conv);
}

bool Identity::may_read(std::string_view conv) const {
  return may_access(conv) || matches_any(read_convs, conv);
}

bool is_valid_user_name(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  for (char c : user)
    if (!is_name_char(c) && c != '@') return false;
  return true;
}

std::optional<std::string> user_name_problem(std::string_view user) {
  if (user.empty()) return "Enter a user name.";
  for (char c : user)
    if (!is_name_char(c) && c != '@') return "Use only letters, digits and . _ @ -";
  if (user.size() > 64)
    return "Too long: " + std::to_string(user.size()) + " characters, at most 64.";
  return std::nullopt;
}

std::optional<TokenSubject> unverified_token_subject(std::string_view token) {
  auto first = token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return std::nullopt;
  auto payload = decode_base64url(token.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  JsonChecked claims = check_json(*payload, 32);
  if (claims.error || !claims.value.is_object()) return std::nullopt;
  auto sub = claims.value.find("sub");
  if (!sub || !sub->is_string()) return std::nullopt;
  TokenSubject subject;
  subject.user = sub->get_string();
  auto tnt = claims.value.find("tnt");
  if (tnt && tnt->is_string()) subject.tenant = tnt->get_string();
  return subject;
}

std::string local_identity_key(std::string_view token) {
  if (auto subject = unverified_token_subject(token))
    return "jwt:" + subject->tenant + "/" + subject->user;
  return std::string(token);
}

bool is_valid_tenant_name(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  for (char c : tenant)
    if (!is_name_char(c)) return false;
  return true;
}

bool is_valid_node_name(std::string_view node) { return is_valid_tenant_name(node); }

bool Identity::may_relay_for(std::string_view tenant) const {
  if (!node) return false;
  return std::find(relay_tenants.begin(), relay_tenants.end(), tenant) != relay_tenants.end();
}

// exp (required, not past) and nbf (optional, not in the future), into identity.expires_at.
static std::optional<Error> read_validity(const JsonView& claims, TimeMs now, Identity& identity) {
  auto exp = claims.find("exp");
  if (!exp) return claim_error("exp", "is missing");
  auto expires_at = numeric_date_ms(*exp);
  if (!expires_at) return claim_error("exp", "must be an integer NumericDate (seconds)");
  if (*expires_at <= now) return make_error(ErrorCode::unauthorized, "token: expired");
  identity.expires_at = expires_at;
  if (auto nbf = claims.find("nbf")) {
    auto not_before = numeric_date_ms(*nbf);
    if (!not_before) return claim_error("nbf", "must be an integer NumericDate (seconds)");
    if (*not_before > now) return make_error(ErrorCode::unauthorized, "token: not valid yet (nbf)");
  }
  return std::nullopt;
}

Result<Identity> identity_from_claims(std::string_view claims_json, TimeMs now) {
  JsonChecked parsed = check_json(claims_json, 32);
  if (parsed.error || !parsed.value.is_object())
    return make_error(ErrorCode::unauthorized, "token: claims are not a JSON object");
  const JsonView& claims = parsed.value;
  Identity identity;

  if (auto node = claims.find("node")) {
    if (!node->is_bool()) return claim_error("node", "must be true or false");
    identity.node = node->get_bool();
  }
  auto sub = claims.find("sub");
  if (!sub) return claim_error("sub", "is missing");
  if (identity.node) {
    if (!sub->is_string() || !is_valid_node_name(sub->get_string()))
      return claim_error("sub", "of a node token must be 1-64 chars of [A-Za-z0-9._-]");
    identity.user = sub->get_string();
    auto tnts = claims.find("tnts");
    if (!tnts) return claim_error("tnts", "is missing (a node token names the tenants it relays for)");
    std::vector<JsonView> tenants = tnts->elements();
    if (!tnts->is_array() || tenants.empty())
      return claim_error("tnts", "must be a non-empty array of tenant names");
    for (const JsonView& entry : tenants) {
      if (!entry.is_string() || !is_valid_tenant_name(entry.get_string()))
        return claim_error("tnts", "must be a non-empty array of tenant names");
      identity.relay_tenants.push_back(entry.get_string());
    }
  }
  if (identity.node) {
    if (auto problem = read_validity(claims, now, identity)) return *problem;
    identity.all_convs = true;  // within the tenant of each link; the relay checked its users
    return identity;
  }
  if (!sub->is_string() || !is_valid_user_name(sub->get_string()))
    return claim_error("sub", "must be 1-64 chars of [A-Za-z0-9._@-]");
  identity.user = sub->get_string();

  auto tnt = claims.find("tnt");
  if (!tnt) return claim_error("tnt", "is missing");
  if (!tnt->is_string() || !is_valid_tenant_name(tnt->get_string()))
    return claim_error("tnt", "must be 1-64 chars of [A-Za-z0-9._-]");
  identity.tenant = tnt->get_string();

  if (auto problem = read_validity(claims, now, identity)) return *problem;

  auto convs = claims.find("convs");
  if (!convs) return claim_error("convs", "is missing");
  if (auto problem = read_conv_patterns(*convs, "convs", identity.convs)) return *problem;
  if (auto read = claims.find("read"))
    if (auto problem = read_conv_patterns(*read, "read", identity.read_convs)) return *problem;
  return identity;
}

Result<Identity> DevAuthenticator::authenticate(std::string_view token, TimeMs) {
  constexpr std::string_view kNodePrefix = "dev-node:";
  if (token.substr(0, kNodePrefix.size()) == kNodePrefix) {
    std::string_view node = token.substr(kNodePrefix.size());
    if (!is_valid_node_name(node))
      return make_error(ErrorCode::unauthorized, "token: node must be 1-64 chars of [A-Za-z0-9._-]");
    Identity identity;
    identity.tenant = "dev";
    identity.user = std::string(node);
    identity.all_convs = true;
    identity.node = true;
    identity.relay_tenants = {"dev"};
    return identity;
  }
  constexpr std::string_view kPrefix = "dev:";
  if (token.substr(0, kPrefix.size()) != kPrefix)
    return make_error(ErrorCode::unauthorized, "token: dev mode expects dev:<user>");
  std::string_view user = token.substr(kPrefix.size());
  if (!is_valid_user_name(user))
    return make_error(ErrorCode::unauthorized, "token: user must be 1-64 chars of [A-Za-z0-9._@-]");
  Identity identity;
  identity.tenant = "dev";
  identity.user = std::string(user);
  identity.all_convs = true;
  return identity;
}

}  // namespace waymark
