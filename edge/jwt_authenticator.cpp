// HS256 JWTs with libjwt; the secrets file and its reload.
#include "jwt_authenticator.h"

#include <jwt.h>

#include <cstdlib>
#include <fstream>
#include <memory>

namespace waymark::edge {
namespace {

struct JwtFree {
  void operator()(jwt_t* jwt) const { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

JwtPtr decode(const std::string& token, const std::string* secret) {
  jwt_t* jwt = nullptr;
  int rc = secret ? jwt_decode(&jwt, token.c_str(),
                               reinterpret_cast<const unsigned char*>(secret->data()),
                               static_cast<int>(secret->size()))
                  : jwt_decode(&jwt, token.c_str(), nullptr, 0);
  if (rc != 0) {
    jwt_free(jwt);
    return nullptr;
  }
  return JwtPtr(jwt);
}

// Why no secret verified the token: it is no JWT, it names another algorithm, or the signature
// is wrong. Decoding without a key checks the structure only.
Error refusal(const std::string& token) {
  JwtPtr unverified = decode(token, nullptr);
  if (!unverified) return make_error(ErrorCode::unauthorized, "token: not a JWT (header.payload.signature)");
  const char* alg = jwt_get_header(unverified.get(), "alg");
  if (!alg || std::string_view(alg) != "HS256")
    return make_error(ErrorCode::unauthorized, "token: algorithm must be HS256");
  return make_error(ErrorCode::unauthorized, "token: bad signature");
}

}  // namespace

Result<std::vector<std::string>> load_secrets(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::unavailable, "secrets: cannot read " + path);
  std::vector<std::string> secrets;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    if (line.empty() || line.front() == '#') continue;
    if (line.size() < kMinSecretBytes)
      return make_error(ErrorCode::invalid, "secrets: " + path + " line " + std::to_string(number) +
                                                ": a secret needs at least " +
                                                std::to_string(kMinSecretBytes) + " bytes");
    secrets.push_back(line);
  }
  if (in.bad()) return make_error(ErrorCode::unavailable, "secrets: cannot read " + path);
  if (secrets.empty()) return make_error(ErrorCode::invalid, "secrets: " + path + " holds no secret");
  return secrets;
}

Result<std::unique_ptr<JwtAuthenticator>> JwtAuthenticator::Open(std::string path) {
  auto secrets = load_secrets(path);
  if (!secrets.ok()) return secrets.error();
  return std::unique_ptr<JwtAuthenticator>(
      new JwtAuthenticator(std::move(path), std::move(secrets).value()));
}

Result<Identity> JwtAuthenticator::authenticate(std::string_view token_view, TimeMs now) {
  const std::string token(token_view);
  for (const std::string& secret : secrets_) {
    JwtPtr jwt = decode(token, &secret);
    if (!jwt) continue;
    // libjwt verifies with whatever HMAC the header names: only HS256 is ours.
    if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256)
      return make_error(ErrorCode::unauthorized, "token: algorithm must be HS256");
    std::unique_ptr<char, decltype(&std::free)> claims(jwt_get_grants_json(jwt.get(), nullptr),
                                                        &std::free);
    if (!claims) return make_error(ErrorCode::unauthorized, "token: no claims");
    return identity_from_claims(claims.get(), now);
  }
  return refusal(token);
}

std::optional<Result<std::string>> JwtAuthenticator::reload() {
  auto secrets = load_secrets(path_);
  if (!secrets.ok()) return Result<std::string>(secrets.error());
  secrets_ = std::move(secrets).value();
  return Result<std::string>(std::to_string(secrets_.size()) + " secret(s) from " + path_);
}

}  // namespace waymark::edge
