// The installed layout's defaults (install_layout.h).
#include "install_layout.h"

#include <system_error>

namespace waymark::edge {

StaticDirs default_static_dirs(const std::filesystem::path& executable, const std::string& build_web_dir,
                               const std::string& build_sdk_dir) {
  namespace fs = std::filesystem;
  StaticDirs build{build_web_dir, build_sdk_dir};
  if (executable.empty()) return build;
  std::error_code error;
  fs::path absolute = fs::absolute(executable, error);
  if (error) return build;
  fs::path bin = absolute.lexically_normal().parent_path();
  if (bin.filename() != kInstalledBinDir) return build;
  fs::path prefix = bin.parent_path();
  fs::path web = prefix / kInstalledWebDir;
  if (!fs::is_directory(web, error)) return build;  // a bin/ that is not an install of ours
  return StaticDirs{web.string(), (prefix / kInstalledSdkDir).string()};
}

std::filesystem::path executable_path(const char* argv0) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error && !self.empty()) return self;
  if (argv0 == nullptr || *argv0 == '\0') return {};
  fs::path given(argv0);
  // A bare name came from $PATH: without /proc it cannot be told where from.
  if (!given.has_parent_path()) return {};
  fs::path resolved = fs::weakly_canonical(given, error);
  return error ? fs::path{} : resolved;
}

}  // namespace waymark::edge
