// The access rule (Identity::may_access) and dev-mode tokens.
#include "waymark/auth.h"

namespace waymark {

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
  for (char c : user) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
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
