// JwtAuthenticator: HS256 tokens made with libjwt itself, checked against a secrets file:
// every line verifies, other algorithms and unknown secrets are refused, reload() swaps the
// set only for a good file.
#include <catch2/catch.hpp>

#include <jwt.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "edge/edge_process.h"
#include "jwt_authenticator.h"

using namespace waymark;
using waymark::edge::JwtAuthenticator;
using waymark::edge::load_secrets;
using waymark::testing::TempDir;

namespace {

constexpr TimeMs kNow = 1'800'000'000'000;
const std::string kSecretA(40, 'a');
const std::string kSecretB = "0123456789abcdef0123456789abcdef";

// A token signed with `secret` under `alg`; claims as JSON.
std::string make_token(const std::string& secret, const std::string& claims,
                       jwt_alg_t alg = JWT_ALG_HS256) {
  jwt_t* raw = nullptr;
  REQUIRE(jwt_new(&raw) == 0);
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt(raw, &jwt_free);
  REQUIRE(jwt_add_grants_json(jwt.get(), claims.c_str()) == 0);
  REQUIRE(jwt_set_alg(jwt.get(), alg, reinterpret_cast<const unsigned char*>(secret.data()),
                      static_cast<int>(secret.size())) == 0);
  std::unique_ptr<char, decltype(&std::free)> token(jwt_encode_str(jwt.get()), &std::free);
  REQUIRE(token);
  return token.get();
}

std::string claims_for(const std::string& user) {
  return R"({"sub":")" + user + R"(","tnt":"acme","exp":)" + std::to_string(kNow / 1000 + 600) +
         R"(,"convs":["ops"]})";
}

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  std::string path = dir.path() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string refusal(JwtAuthenticator& auth, const std::string& token) {
  auto result = auth.authenticate(token, kNow);
  REQUIRE(!result.ok());
  CHECK(result.error().code == ErrorCode::unauthorized);
  return result.error().message;
}

}  // namespace

TEST_CASE("jwt: every secret of the file verifies; claims become the identity", "[jwt]") {
  TempDir dir;
  auto path = write_file(dir, "secrets", "# rotation in progress\n" + kSecretA + "  \r\n\n" + kSecretB + "\n");
  auto opened = JwtAuthenticator::Open(path);
  REQUIRE(opened.ok());
  JwtAuthenticator& auth = *opened.value();
  CHECK(auth.secret_count() == 2);
  for (const std::string& secret : {kSecretA, kSecretB}) {
    auto identity = auth.authenticate(make_token(secret, claims_for("alice")), kNow);
    REQUIRE(identity.ok());
    CHECK(identity.value().user == "alice");
    CHECK(identity.value().tenant == "acme");
    CHECK(identity.value().expires_at == std::optional<TimeMs>((kNow / 1000 + 600) * 1000));
    CHECK(identity.value().may_access("ops"));
    CHECK(!identity.value().may_access("payroll"));
  }
}

TEST_CASE("jwt: wrong secret, other algorithms, alg none, garbage and bad claims are refused",
          "[jwt]") {
  TempDir dir;
  auto opened = JwtAuthenticator::Open(write_file(dir, "secrets", kSecretA + "\n"));
  REQUIRE(opened.ok());
  JwtAuthenticator& auth = *opened.value();

  CHECK(refusal(auth, make_token(kSecretB, claims_for("alice"))) == "token: bad signature");
  CHECK(refusal(auth, make_token(kSecretA, claims_for("alice"), JWT_ALG_HS384)) ==
        "token: algorithm must be HS256");
  CHECK(refusal(auth, make_token(kSecretA, claims_for("alice"), JWT_ALG_HS512)) ==
        "token: algorithm must be HS256");
  // alg none: a valid HS256 token's payload under a header saying none, signature dropped.
  std::string good = make_token(kSecretA, claims_for("alice"));
  std::string payload = good.substr(good.find('.') + 1);
  payload = payload.substr(0, payload.find('.'));
  const std::string none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";  // {"alg":"none","typ":"JWT"}
  CHECK(refusal(auth, none_header + "." + payload + ".") == "token: algorithm must be HS256");
  // The signature of one token on another's payload.
  std::string other = make_token(kSecretA, claims_for("mallory"));
  std::string forged = other.substr(0, other.rfind('.')) + good.substr(good.rfind('.'));
  CHECK(refusal(auth, forged) == "token: bad signature");
  CHECK(refusal(auth, "") == "token: not a JWT (header.payload.signature)");
  CHECK(refusal(auth, "dev:alice") == "token: not a JWT (header.payload.signature)");
  CHECK(refusal(auth, "a.b.c") == "token: not a JWT (header.payload.signature)");
  // Verified but the claims are wrong: the core's claims rule names the claim.
  CHECK(refusal(auth, make_token(kSecretA, R"({"sub":"alice","tnt":"acme","convs":[]})")) ==
        "token: claim exp is missing");
  CHECK(refusal(auth, make_token(kSecretA, R"({"sub":"alice","tnt":"acme","exp":1,"convs":[]})")) ==
        "token: expired");
}

TEST_CASE("jwt: a secrets file with no secret or a short one is refused; reload keeps the old set",
          "[jwt]") {
  TempDir dir;
  CHECK(!load_secrets(dir.path() + "/missing").ok());
  CHECK(!load_secrets(write_file(dir, "empty", "# nothing\n\n")).ok());
  auto short_one = load_secrets(write_file(dir, "short", kSecretA + "\nshort-secret\n"));
  REQUIRE(!short_one.ok());
  CHECK(short_one.error().message.find("line 2") != std::string::npos);

  auto path = write_file(dir, "secrets", kSecretA + "\n");
  auto opened = JwtAuthenticator::Open(path);
  REQUIRE(opened.ok());
  JwtAuthenticator& auth = *opened.value();
  std::string token_a = make_token(kSecretA, claims_for("alice"));
  std::string token_b = make_token(kSecretB, claims_for("bob"));
  CHECK(!auth.authenticate(token_b, kNow).ok());

  write_file(dir, "secrets", kSecretB + "\n");  // A rotated out, B in
  auto reloaded = auth.reload();
  REQUIRE(reloaded);
  REQUIRE(reloaded->ok());
  CHECK(auth.authenticate(token_b, kNow).ok());
  CHECK(!auth.authenticate(token_a, kNow).ok());

  write_file(dir, "secrets", "too-short\n");  // a bad file: B stays in force
  auto failed = auth.reload();
  REQUIRE(failed);
  CHECK(!failed->ok());
  CHECK(auth.authenticate(token_b, kNow).ok());
  CHECK(auth.secret_count() == 1);
}
