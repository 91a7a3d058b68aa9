// Who a connection is, and what it may touch. The one place the access rule lives.
// Authenticators are called on the edge's lws thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waymark/error.h"
#include "waymark/frames.h"

namespace waymark {

struct Identity {
  std::string tenant;
  std::string user;
  bool all_convs = false;           // dev tokens
  std::vector<std::string> convs;   // names, or prefixes ending in '*'
  std::optional<TimeMs> expires_at;

  bool may_access(std::string_view conv) const;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // unauthorized with a reason, or the identity.
  virtual Result<Identity> authenticate(std::string_view token, TimeMs now) = 0;
};

// Dev mode: "dev:<user>" is user <user> of tenant "dev" with access to every conversation.
// user: 1-64 chars of [A-Za-z0-9._@-].
class DevAuthenticator final : public Authenticator {
 public:
  Result<Identity> authenticate(std::string_view token, TimeMs now) override;
};

bool is_valid_user_name(std::string_view user);

}  // namespace waymark
