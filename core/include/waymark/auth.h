// Who a connection is, and what it may touch. The one place the access rule and the token
// claims rule live; the JWT signature check itself is the edge's (libjwt), since the core
// carries no crypto. Authenticators are called on the edge's lws thread.
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
  std::vector<std::string> convs;   // names, or prefixes ending in '*': read and write
  // The "read" claim: conversations this user may read (sub, hist, rcpt) but not write (send,
  // typing): a broadcast channel's readers. Same patterns as convs.
  std::vector<std::string> read_convs;
  std::optional<TimeMs> expires_at;
  // A node token: a relaying edge's upstream link (docs/protocol.md "Relays"). `user` is the
  // node's name; it may relay for the tenants in relay_tenants only, and names the user each
  // relayed frame speaks for with "as". Never set for a user's token.
  bool node = false;
  std::vector<std::string> relay_tenants;

  bool may_access(std::string_view conv) const;  // read and write
  bool may_read(std::string_view conv) const;    // may_access, or read-only
  bool may_relay_for(std::string_view tenant) const;
};

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // unauthorized with a reason, or the identity.
  virtual Result<Identity> authenticate(std::string_view token, TimeMs now) = 0;
  // Re-reads whatever the authenticator verifies with (SIGHUP): a short description of what is
  // in force now, or why the old set was kept. nullopt: nothing to reload.
  virtual std::optional<Result<std::string>> reload() { return std::nullopt; }
};

// Dev mode: "dev:<user>" is user <user> of tenant "dev" with access to every conversation;
// "dev-node:<node>" is a node token for relay <node>, relaying for tenant "dev".
class DevAuthenticator final : public Authenticator {
 public:
  Result<Identity> authenticate(std::string_view token, TimeMs now) override;
};

// user: 1-64 chars of [A-Za-z0-9._@-]
bool is_valid_user_name(std::string_view user);
// What is wrong with a user name, as a sentence for the person who typed it (the web app's
// sign-in, whose token is dev:<name>), or nullopt when is_valid_user_name(user): the rule
// DevAuthenticator and a JWT's sub meet. Characters are checked before length.
std::optional<std::string> user_name_problem(std::string_view user);
// tenant: 1-64 chars of [A-Za-z0-9._-]
bool is_valid_tenant_name(std::string_view tenant);
// node (an edge's --node name): the tenant rule.
bool is_valid_node_name(std::string_view node);
inline constexpr std::string_view kNodeNameRule = "must be 1-64 chars of [A-Za-z0-9._-]";

// The sub and tnt claims of a token shaped like a JWT (three dot-separated parts, the middle
// one base64url JSON with a string "sub"), read WITHOUT checking the signature: a client has
// no secret. For keying a client's local data by user only, never for access. nullopt: not
// such a token. `tenant` is "" when tnt is missing or not a string.
struct TokenSubject {
  std::string tenant;
  std::string user;
};
std::optional<TokenSubject> unverified_token_subject(std::string_view token);

// The key a client keeps a user's local data (outbox, cursors) under, known before any
// welcome: "jwt:<tnt>/<sub>" for a JWT, so a rotated token keeps its user's data; any other
// token (dev:<user>) is its own key.
std::string local_identity_key(std::string_view token);

// The identity a verified token's claims (a JSON object) grant at `now`, or unauthorized
// naming the claim at fault: sub (user name), tnt (tenant name), exp (NumericDate in seconds;
// above 1e11 read as milliseconds; not past), convs (array of names or '*'-prefixes), and nbf
// if present (not in the future). Other claims are ignored.
// A node token has "node": true, sub = the node's name (is_valid_node_name) and tnts = the
// tenants it may relay for (an array of tenant names); tnt and convs are then not read.
Result<Identity> identity_from_claims(std::string_view claims_json, TimeMs now);

}  // namespace waymark
