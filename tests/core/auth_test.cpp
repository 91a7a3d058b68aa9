// auth_test: dev-mode tokens (DevAuthenticator) and the access rule (Identity::may_access),
// the one place that decides whether a connection may touch a conversation.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "waymark/auth.h"
#include "waymark/error.h"

using namespace waymark;

namespace {

constexpr TimeMs kNow = 1700000000000;

Identity identity_with(std::vector<std::string> convs) {
  Identity identity;
  identity.tenant = "acme";
  identity.user = "alice";
  identity.convs = std::move(convs);
  return identity;
}

}  // namespace

TEST_CASE("auth: dev:<user> is that user of tenant dev, with every conversation", "[auth]") {
  DevAuthenticator auth;
  for (const std::string& user : std::vector<std::string>{"alice", "b", "Bob.Smith_2@example-corp", std::string(64, 'u')}) {
    INFO("user " << user);
    auto result = auth.authenticate("dev:" + user, kNow);
    REQUIRE(result.ok());
    const Identity& identity = result.value();
    CHECK(identity.user == user);
    CHECK(identity.tenant == "dev");
    CHECK(identity.all_convs);
    CHECK(identity.may_access("ops"));
    CHECK(identity.may_access("any.conv:at-all_1"));
    CHECK(identity.may_access(std::string(128, 'c')));
    CHECK_FALSE(identity.expires_at.has_value());  // dev tokens never expire
  }
  // Time does not matter to a dev token.
  CHECK(auth.authenticate("dev:alice", 0).ok());
  CHECK(auth.authenticate("dev:alice", 4102444800000).ok());
}

TEST_CASE("auth: anything else is unauthorized", "[auth]") {
  DevAuthenticator auth;
  const std::vector<std::string> bad_tokens = {
      "",                                  // nothing
      "alice",                             // no prefix
      "dev",                               // prefix without the colon
      "dev:",                              // empty user
      "Dev:alice",                         // the prefix is case-sensitive
      " dev:alice",                        // leading space
      "devalice",
      "dev;alice",
      "dev:" + std::string(65, 'u'),       // user too long
      "dev:al ice",                        // bad chars
      "dev:alice/admin",
      "dev:alice:admin",
      "dev:*",
      "dev:é",
      "dev:alice\n",
      std::string("dev:ali\0ce", 10),
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl",  // a JWT is not a dev token
  };
  for (const std::string& token : bad_tokens) {
    INFO("token \"" << token << "\"");
    auto result = auth.authenticate(token, kNow);
    REQUIRE_FALSE(result.ok());
    CHECK(to_string(result.error().code) == "unauthorized");
    CHECK_FALSE(result.error().message.empty());
    CHECK(result.error().message.rfind("token:", 0) == 0);
  }
}

TEST_CASE("auth: user names are 1-64 chars of [A-Za-z0-9._@-]", "[auth]") {
  CHECK(is_valid_user_name("a"));
  CHECK(is_valid_user_name("A.z_0@9-x"));
  CHECK(is_valid_user_name(std::string(64, 'u')));
  CHECK_FALSE(is_valid_user_name(""));
  CHECK_FALSE(is_valid_user_name(std::string(65, 'u')));
  CHECK_FALSE(is_valid_user_name("a b"));
  CHECK_FALSE(is_valid_user_name("a:b"));
  CHECK_FALSE(is_valid_user_name("a*"));
  CHECK_FALSE(is_valid_user_name("ü"));
}

TEST_CASE("auth: may_access matches exact names and '*' prefixes only", "[auth]") {
  SECTION("exact names") {
    Identity identity = identity_with({"ops", "team.eu:1"});
    CHECK(identity.may_access("ops"));
    CHECK(identity.may_access("team.eu:1"));
    CHECK_FALSE(identity.may_access("ops2"));    // a name is not a prefix
    CHECK_FALSE(identity.may_access("op"));
    CHECK_FALSE(identity.may_access("OPS"));
    CHECK_FALSE(identity.may_access("team.eu:10"));
    CHECK_FALSE(identity.may_access(""));
  }
  SECTION("prefixes ending in '*'") {
    Identity identity = identity_with({"team-*", "eu.ops:*"});
    CHECK(identity.may_access("team-a"));
    CHECK(identity.may_access("team-"));
    CHECK(identity.may_access("team-a.b:c"));
    CHECK(identity.may_access("eu.ops:db"));
    CHECK_FALSE(identity.may_access("team"));
    CHECK_FALSE(identity.may_access("teams"));
    CHECK_FALSE(identity.may_access("xteam-a"));   // a prefix, not a substring
    CHECK_FALSE(identity.may_access("eu.ops"));
    CHECK_FALSE(identity.may_access("us.ops:db"));
  }
  SECTION("'*' alone is every conversation") {
    Identity identity = identity_with({"*"});
    CHECK(identity.may_access("ops"));
    CHECK(identity.may_access("x"));
  }
  SECTION("'*' only counts at the end") {
    Identity identity = identity_with({"a*b"});
    CHECK(identity.may_access("a*b"));   // the literal name
    CHECK_FALSE(identity.may_access("axb"));
    CHECK_FALSE(identity.may_access("ab"));
  }
  SECTION("no convs means none, unless all_convs") {
    Identity identity = identity_with({});
    CHECK_FALSE(identity.may_access("ops"));
    identity.all_convs = true;
    CHECK(identity.may_access("ops"));
  }
  SECTION("names and prefixes together") {
    Identity identity = identity_with({"ops", "team-*"});
    CHECK(identity.may_access("ops"));
    CHECK(identity.may_access("team-x"));
    CHECK_FALSE(identity.may_access("ops-x"));
  }
}

TEST_CASE("auth: claims give the identity: sub, tnt, exp in seconds, convs", "[auth][jwt]") {
  const std::string exp = std::to_string(kNow / 1000 + 60);
  auto identity = identity_from_claims(
      R"({"sub":"alice","tnt":"acme","exp":)" + exp + R"(,"convs":["ops","team-*"],"extra":1})", kNow);
  REQUIRE(identity.ok());
  CHECK(identity.value().user == "alice");
  CHECK(identity.value().tenant == "acme");
  CHECK(identity.value().expires_at == std::optional<TimeMs>((kNow / 1000 + 60) * 1000));
  CHECK(!identity.value().all_convs);
  CHECK(identity.value().may_access("ops"));
  CHECK(identity.value().may_access("team-red"));
  CHECK(!identity.value().may_access("payroll"));

  // "*" alone is every conversation; an empty list is none; exp above 1e11 is milliseconds.
  auto everything = identity_from_claims(
      R"({"sub":"a","tnt":"t","exp":)" + std::to_string(kNow + 5) + R"(,"convs":["*"]})", kNow);
  REQUIRE(everything.ok());
  CHECK(everything.value().expires_at == std::optional<TimeMs>(kNow + 5));
  CHECK(everything.value().may_access("anything.at:all"));
  auto nothing = identity_from_claims(R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":[]})", kNow);
  REQUIRE(nothing.ok());
  CHECK(!nothing.value().may_access("ops"));
}

TEST_CASE("auth: the read claim gives read-only conversations; convs read and write", "[auth][jwt]") {
  const std::string exp = std::to_string(kNow / 1000 + 60);
  auto reader = identity_from_claims(R"({"sub":"a","tnt":"t","exp":)" + exp +
                                         R"(,"convs":["team"],"read":["news-*","all-hands"]})",
                                     kNow);
  REQUIRE(reader.ok());
  const Identity& identity = reader.value();
  CHECK(identity.may_read("news-eu"));
  CHECK(identity.may_read("all-hands"));
  CHECK_FALSE(identity.may_access("news-eu"));    // not writable
  CHECK_FALSE(identity.may_access("all-hands"));
  CHECK(identity.may_read("team"));               // convs implies read
  CHECK(identity.may_access("team"));
  CHECK_FALSE(identity.may_read("payroll"));
  // Without the claim nothing is read-only; dev tokens read and write everything.
  auto plain = identity_from_claims(R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":["team"]})", kNow);
  REQUIRE(plain.ok());
  CHECK(plain.value().read_convs.empty());
  CHECK_FALSE(plain.value().may_read("news-eu"));
}

TEST_CASE("auth: claims that are missing, malformed, expired or not yet valid are refused",
          "[auth][jwt]") {
  const std::string exp = std::to_string(kNow / 1000 + 60);
  const std::string past = std::to_string(kNow / 1000 - 1);
  const std::string future = std::to_string(kNow / 1000 + 30);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"tnt":"t","exp":)" + exp + R"(,"convs":[]})", "sub"},
      {R"({"sub":"a","exp":)" + exp + R"(,"convs":[]})", "tnt"},
      {R"({"sub":"a","tnt":"t","convs":[]})", "exp"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + "}", "convs"},
      {R"({"sub":"a b","tnt":"t","exp":)" + exp + R"(,"convs":[]})", "sub"},
      {R"({"sub":7,"tnt":"t","exp":)" + exp + R"(,"convs":[]})", "sub"},
      {R"({"sub":"a","tnt":"t/u","exp":)" + exp + R"(,"convs":[]})", "tnt"},
      {R"({"sub":"a","tnt":"","exp":)" + exp + R"(,"convs":[]})", "tnt"},
      {R"({"sub":"a","tnt":"t","exp":"soon","convs":[]})", "exp"},
      {R"({"sub":"a","tnt":"t","exp":1.5,"convs":[]})", "exp"},
      {R"({"sub":"a","tnt":"t","exp":)" + past + R"(,"convs":[]})", "expired"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"nbf":)" + future + R"(,"convs":[]})", "nbf"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":"ops"})", "convs"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":[1]})", "convs"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":["no spaces"]})", "convs"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":["a*b"]})", "convs"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":[],"read":"news"})", "read"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":[],"read":[7]})", "read"},
      {R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"convs":[],"read":["x y"]})", "read"},
      {R"(["not","an","object"])", "object"},
  };
  for (const auto& [claims, named] : cases) {
    INFO("claims " << claims);
    auto identity = identity_from_claims(claims, kNow);
    REQUIRE(!identity.ok());
    CHECK(identity.error().code == ErrorCode::unauthorized);
    CHECK(identity.error().message.find(named) != std::string::npos);
  }
  // nbf in the past is fine.
  CHECK(identity_from_claims(R"({"sub":"a","tnt":"t","exp":)" + exp + R"(,"nbf":)" + past +
                                 R"(,"convs":[]})",
                             kNow)
            .ok());
}

TEST_CASE("auth: tenant names are 1-64 chars of [A-Za-z0-9._-]", "[auth]") {
  CHECK(is_valid_tenant_name("acme"));
  CHECK(is_valid_tenant_name("Acme-Corp_2.eu"));
  CHECK(is_valid_tenant_name(std::string(64, 't')));
  CHECK(!is_valid_tenant_name(""));
  CHECK(!is_valid_tenant_name(std::string(65, 't')));
  CHECK(!is_valid_tenant_name("a@b"));
  CHECK(!is_valid_tenant_name(std::string("a\0b", 3)));
}

// ---- node tokens (a relaying edge's upstream link) ----------------------------------------

TEST_CASE("auth: a JWT with node:true names the node in sub and the tenants it relays for in tnts",
          "[auth][jwt][relay]") {
  const std::string exp = std::to_string(kNow / 1000 + 60);
  auto node = identity_from_claims(
      R"({"node":true,"sub":"relay-eu.1","tnts":["acme","globex"],"exp":)" + exp + "}", kNow);
  REQUIRE(node.ok());
  CHECK(node.value().node);
  CHECK(node.value().user == "relay-eu.1");
  CHECK(node.value().relay_tenants == std::vector<std::string>{"acme", "globex"});
  CHECK(node.value().may_relay_for("acme"));
  CHECK(node.value().may_relay_for("globex"));
  CHECK_FALSE(node.value().may_relay_for("initech"));
  CHECK_FALSE(node.value().may_relay_for(""));
  CHECK(node.value().expires_at == std::optional<TimeMs>((kNow / 1000 + 60) * 1000));
  // tnt and convs are not read for a node token.
  auto with_user_claims = identity_from_claims(
      R"({"node":true,"sub":"hub","tnts":["acme"],"tnt":"bad/name","convs":"x","exp":)" + exp + "}", kNow);
  REQUIRE(with_user_claims.ok());
  CHECK(with_user_claims.value().may_relay_for("acme"));

  // A user token never relays, whatever it says about tenants; node:false is a user token.
  auto user = identity_from_claims(
      R"({"node":false,"sub":"alice","tnt":"acme","tnts":["acme"],"exp":)" + exp + R"(,"convs":["*"]})", kNow);
  REQUIRE(user.ok());
  CHECK_FALSE(user.value().node);
  CHECK_FALSE(user.value().may_relay_for("acme"));
  auto plain = identity_from_claims(R"({"sub":"alice","tnt":"acme","exp":)" + exp + R"(,"convs":["*"]})", kNow);
  REQUIRE(plain.ok());
  CHECK_FALSE(plain.value().may_relay_for("acme"));
}

TEST_CASE("auth: node tokens with missing or empty tnts, a bad sub or a bad node claim are refused",
          "[auth][jwt][relay]") {
  const std::string exp = std::to_string(kNow / 1000 + 60);
  const std::string past = std::to_string(kNow / 1000 - 1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"node":true,"sub":"hub","exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"sub":"hub","tnts":[],"exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"sub":"hub","tnts":"acme","exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"sub":"hub","tnts":["acme",7],"exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"sub":"hub","tnts":[""],"exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"sub":"hub","tnts":["a/b"],"exp":)" + exp + "}", "tnts"},
      {R"({"node":true,"tnts":["acme"],"exp":)" + exp + "}", "sub"},
      {R"({"node":true,"sub":"","tnts":["acme"],"exp":)" + exp + "}", "sub"},
      {R"({"node":true,"sub":"alice@acme","tnts":["acme"],"exp":)" + exp + "}", "sub"},  // a user name
      {R"({"node":true,"sub":"two words","tnts":["acme"],"exp":)" + exp + "}", "sub"},
      {R"({"node":true,"sub":7,"tnts":["acme"],"exp":)" + exp + "}", "sub"},
      {R"({"node":true,"sub":")" + std::string(65, 'n') + R"(","tnts":["acme"],"exp":)" + exp + "}", "sub"},
      {R"({"node":"yes","sub":"hub","tnts":["acme"],"exp":)" + exp + "}", "node"},
      {R"({"node":1,"sub":"hub","tnts":["acme"],"exp":)" + exp + "}", "node"},
      {R"({"node":true,"sub":"hub","tnts":["acme"]})", "exp"},
      {R"({"node":true,"sub":"hub","tnts":["acme"],"exp":)" + past + "}", "expired"},
  };
  for (const auto& [claims, named] : cases) {
    INFO("claims " << claims);
    auto identity = identity_from_claims(claims, kNow);
    REQUIRE(!identity.ok());
    CHECK(identity.error().code == ErrorCode::unauthorized);
    CHECK(identity.error().message.find(named) != std::string::npos);
  }
}

TEST_CASE("auth: dev-node:<node> is a node token for tenant dev; a bad node name is refused",
          "[auth][relay]") {
  DevAuthenticator auth;
  for (const std::string& node : std::vector<std::string>{"relay-a", "r", "hub.eu_1", std::string(64, 'n')}) {
    INFO("node " << node);
    auto result = auth.authenticate("dev-node:" + node, kNow);
    REQUIRE(result.ok());
    CHECK(result.value().node);
    CHECK(result.value().user == node);
    CHECK(result.value().may_relay_for("dev"));
    CHECK_FALSE(result.value().may_relay_for("acme"));
    CHECK_FALSE(result.value().expires_at.has_value());
  }
  for (const std::string& bad : std::vector<std::string>{"dev-node:", "dev-node:" + std::string(65, 'n'),
                                                          "dev-node:two words", "dev-node:alice@x",
                                                          "dev-node:a/b", "Dev-node:relay-a", "devnode:relay-a"}) {
    INFO("token " << bad);
    auto result = auth.authenticate(bad, kNow);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == ErrorCode::unauthorized);
  }
  // A dev user token is never a node, even one named like a node.
  auto user = auth.authenticate("dev:relay-a", kNow);
  REQUIRE(user.ok());
  CHECK_FALSE(user.value().node);
  CHECK_FALSE(user.value().may_relay_for("dev"));
}
