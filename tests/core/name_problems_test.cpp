// name_problems_test: the sentences conv_name_problem and user_name_problem give a person who
// typed a bad name, and that they agree exactly with is_valid_conv / is_valid_user_name (and so
// with what DevAuthenticator accepts after "dev:").
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "waymark/auth.h"
#include "waymark/identifiers.h"

using namespace waymark;

namespace {
using Strings = std::vector<std::string>;
}  // namespace

TEST_CASE("names: a conversation name's problem, or none", "[identifiers]") {
  CHECK(conv_name_problem("") == "Enter a conversation name.");
  CHECK(conv_name_problem("a b") == "Use only letters, digits and . _ : -");
  CHECK(conv_name_problem(std::string(129, 'x')) == "Too long: 129 characters, at most 128.");
  // Characters first: a long name with a bad character is told about the character.
  CHECK(conv_name_problem(std::string(200, 'x') + "é") == "Use only letters, digits and . _ : -");
  CHECK_FALSE(conv_name_problem("Team.Ops:eu-1_x"));
  CHECK_FALSE(conv_name_problem(std::string(128, 'x')));
}

TEST_CASE("names: a user name's problem, or none", "[auth]") {
  CHECK(user_name_problem("") == "Enter a user name.");
  CHECK(user_name_problem("bad name") == "Use only letters, digits and . _ @ -");
  CHECK(user_name_problem("a:b") == "Use only letters, digits and . _ @ -");
  CHECK(user_name_problem(std::string(65, 'u')) == "Too long: 65 characters, at most 64.");
  CHECK_FALSE(user_name_problem("Bob.Smith_2@example-corp"));
  CHECK_FALSE(user_name_problem(std::string(64, 'u')));
}

TEST_CASE("names: a problem exactly when the rule (and the dev authenticator) says no", "[auth]") {
  DevAuthenticator dev;
  for (const std::string& name :
       Strings{"", "a", "a b", "a:b", "a.b", "a@b", "a/b", "é", "x*", std::string(64, 'z'),
               std::string(65, 'z'), std::string(128, 'z'), std::string(129, 'z'), "a\tb"}) {
    INFO("name " << name);
    CHECK(conv_name_problem(name).has_value() == !is_valid_conv(name));
    CHECK(user_name_problem(name).has_value() == !is_valid_user_name(name));
    CHECK(user_name_problem(name).has_value() == !dev.authenticate("dev:" + name, 0).ok());
  }
}
