// JwtAuthenticator: hello.token as an HS256 JWT, verified by libjwt against every secret of a
// secrets file (one per line, so a secret can be rotated); the claims rule is the core's
// identity_from_claims. reload() re-reads the file (SIGHUP); a bad file keeps the old secrets.
// Called on the lws thread only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "waymark/auth.h"

namespace waymark::edge {

inline constexpr std::size_t kMinSecretBytes = 32;  // HS256: a 256-bit key

// The secrets of a file: one per line, trailing whitespace and \r stripped, empty lines and
// lines starting with '#' skipped. An error names the file and the line at fault: unreadable,
// no secret at all, or a secret shorter than kMinSecretBytes.
Result<std::vector<std::string>> load_secrets(const std::string& path);

class JwtAuthenticator final : public Authenticator {
 public:
  // Reads the file; an error says why the edge can not start.
  static Result<std::unique_ptr<JwtAuthenticator>> Open(std::string path);

  Result<Identity> authenticate(std::string_view token, TimeMs now) override;
  std::optional<Result<std::string>> reload() override;

  std::size_t secret_count() const { return secrets_.size(); }

 private:
  JwtAuthenticator(std::string path, std::vector<std::string> secrets)
      : path_(std::move(path)), secrets_(std::move(secrets)) {}

  std::string path_;
  std::vector<std::string> secrets_;
};

}  // namespace waymark::edge
