// token_subject_test: the unverified sub/tnt of a JWT-shaped token and the local key a client
// keeps a user's data under (local_identity_key).
#include <catch2/catch.hpp>

#include <string>

#include "waymark/auth.h"

using namespace waymark;

namespace {

// base64url without padding, as JWTs carry their parts.
std::string base64url(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out += kAlphabet[(bits >> count) & 63];
    }
  }
  if (count > 0) out += kAlphabet[(bits << (6 - count)) & 63];
  return out;
}

std::string jwt(const std::string& claims) {
  return base64url(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url(claims) + ".c2lnbmF0dXJl";
}

}  // namespace

TEST_CASE("token subject: a JWT's sub and tnt, its signature unchecked", "[auth]") {
  auto subject = unverified_token_subject(jwt(R"({"sub":"alice","tnt":"acme","exp":1})"));
  REQUIRE(subject);
  CHECK(subject->user == "alice");
  CHECK(subject->tenant == "acme");
  // Every padding length of the payload decodes (1, 2 and 3 trailing bytes).
  for (const std::string user : {"b", "bo", "bob", "bobb"}) {
    INFO("user " << user);
    auto s = unverified_token_subject(jwt(R"({"sub":")" + user + R"("})"));
    REQUIRE(s);
    CHECK(s->user == user);
    CHECK(s->tenant.empty());
  }
  // Padding and the standard alphabet are accepted too (a browser's atob reads them).
  auto padded = unverified_token_subject("x." + base64url(R"({"sub":"al"})") + "==.y");
  REQUIRE(padded);
  CHECK(padded->user == "al");
}

TEST_CASE("token subject: not a JWT", "[auth]") {
  for (const std::string& token :
       {std::string("dev:alice"), std::string("a.b"), std::string("a.b.c.d"), std::string("a.!!!.c"),
        jwt("not json"), jwt(R"(["sub"])"), jwt(R"({"tnt":"acme"})"), jwt(R"({"sub":7})"),
        std::string("a.") + base64url(R"({"sub":"x"})").substr(0, 1) + ".c"}) {
    INFO("token " << token);
    CHECK_FALSE(unverified_token_subject(token));
  }
}

TEST_CASE("token subject: the local identity key", "[auth]") {
  CHECK(local_identity_key("dev:alice") == "dev:alice");
  CHECK(local_identity_key(jwt(R"({"sub":"alice","tnt":"acme"})")) == "jwt:acme/alice");
  CHECK(local_identity_key(jwt(R"({"sub":"alice","tnt":5})")) == "jwt:/alice");
  // A rotated token of the same user keeps the key.
  CHECK(local_identity_key(jwt(R"({"sub":"alice","tnt":"acme","exp":1})")) ==
        local_identity_key(jwt(R"({"sub":"alice","tnt":"acme","exp":2})")));
}
