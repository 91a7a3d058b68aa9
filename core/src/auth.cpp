// The access rule (Identity::may_access), token claims, and dev-mode tokens.
#include "waymark/auth.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cmath>

#include "waymark/identifiers.h"

namespace waymark {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// A NumericDate claim as milliseconds: seconds per RFC 7519, a value above 1e11 (the year 5138
// in seconds) taken as milliseconds already. nullopt: not an integral number.
std::optional<TimeMs> numeric_date_ms(const boost::json::value& value) {
  double number = 0;
  if (value.is_int64()) number = static_cast<double>(value.get_int64());
  else if (value.is_uint64()) number = static_cast<double>(value.get_uint64());
  else if (value.is_double()) number = value.get_double();
  else return std::nullopt;
  if (!std::isfinite(number) || number < 0 || number > 9.0e15 || std::floor(number) != number)
    return std::nullopt;
  return number > 1e11 ? static_cast<TimeMs>(number) : static_cast<TimeMs>(number) * 1000;
}

Error claim_error(std::string_view claim, std::string_view what) {
  return make_error(ErrorCode::unauthorized,
                    "token: claim " + std::string(claim) + " " + std::string(what));
}

}  // namespace

bool Identity::may_access(std::string_view conv) const {
  if (all_convs) return true;
  for (const std::string& pattern : convs) {
    if (!pattern.empty() && pattern.back() == '*') {
      std::string_view prefix(pattern.data(), pattern.size() - 1);
      if (conv.substr(0, prefix.size()) == prefix) return true;
    } else if (pattern == conv) {
      return true;
    }
  }
  return false;
}

bool is_valid_user_name(std::string_view user) {
  if (user.empty() || user.size() > 64) return false;
  for (char c : user)
    if (!is_name_char(c) && c != '@') return false;
  return true;
}

bool is_valid_tenant_name(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  for (char c : tenant)
    if (!is_name_char(c)) return false;
  return true;
}

Result<Identity> identity_from_claims(std::string_view claims_json, TimeMs now) {
  boost::json::error_code ec;
  boost::json::value parsed = boost::json::parse(claims_json, ec);
  if (ec || !parsed.is_object()) return make_error(ErrorCode::unauthorized, "token: claims are not a JSON object");
  const boost::json::object& claims = parsed.get_object();
  Identity identity;

  const boost::json::value* sub = claims.if_contains("sub");
  if (!sub) return claim_error("sub", "is missing");
  if (!sub->is_string() || !is_valid_user_name(sub->get_string()))
    return claim_error("sub", "must be 1-64 chars of [A-Za-z0-9._@-]");
  identity.user = std::string(sub->get_string());

  const boost::json::value* tnt = claims.if_contains("tnt");
  if (!tnt) return claim_error("tnt", "is missing");
  if (!tnt->is_string() || !is_valid_tenant_name(tnt->get_string()))
    return claim_error("tnt", "must be 1-64 chars of [A-Za-z0-9._-]");
  identity.tenant = std::string(tnt->get_string());

  const boost::json::value* exp = claims.if_contains("exp");
  if (!exp) return claim_error("exp", "is missing");
  auto expires_at = numeric_date_ms(*exp);
  if (!expires_at) return claim_error("exp", "must be an integer NumericDate (seconds)");
  if (*expires_at <= now) return make_error(ErrorCode::unauthorized, "token: expired");
  identity.expires_at = expires_at;

  if (const boost::json::value* nbf = claims.if_contains("nbf")) {
    auto not_before = numeric_date_ms(*nbf);
    if (!not_before) return claim_error("nbf", "must be an integer NumericDate (seconds)");
    if (*not_before > now) return make_error(ErrorCode::unauthorized, "token: not valid yet (nbf)");
  }

  const boost::json::value* convs = claims.if_contains("convs");
  if (!convs) return claim_error("convs", "is missing");
  if (!convs->is_array()) return claim_error("convs", "must be an array of conversation names or prefixes ending in *");
  for (const boost::json::value& entry : convs->get_array()) {
    if (!entry.is_string()) return claim_error("convs", "must hold strings only");
    std::string_view pattern = entry.get_string();
    std::string_view name = pattern;
    if (!name.empty() && name.back() == '*') name.remove_suffix(1);
    // A prefix may be empty ("*": every conversation); a name follows the conv rule.
    if (!(name.empty() && pattern == "*") && !is_valid_conv(name) )
      return claim_error("convs", "entries must be conversation names or prefixes ending in *");
    identity.convs.emplace_back(pattern);
  }
  return identity;
}

Result<Identity> DevAuthenticator::authenticate(std::string_view token, TimeMs) {
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
