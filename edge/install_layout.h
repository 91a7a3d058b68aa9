// Where an edge finds the files it serves (the web app at /, the browser SDK at /sdk/) when no
// --web/--sdk is given: in its install prefix, or else the build's defaults. Called once by
// main() before the command line is parsed; pure apart from reading the file system.
#pragma once

#include <filesystem>
#include <string>

namespace waymark::edge {

// The default --web and --sdk directories. sdk_dir may name a directory that does not exist
// (an install without the SDK); main() then serves no /sdk/, as before.
struct StaticDirs {
  std::string web_dir;
  std::string sdk_dir;
};

// The layout `cmake --install` makes (edge/CMakeLists.txt), relative to the prefix P:
// P/bin/waymark-edge, P/share/waymark/web, P/share/waymark/sdk.
inline constexpr const char* kInstalledBinDir = "bin";
inline constexpr const char* kInstalledWebDir = "share/waymark/web";
inline constexpr const char* kInstalledSdkDir = "share/waymark/sdk";

// If `executable` lives in P/bin and P/share/waymark/web is a directory, the installed
// layout: {P/share/waymark/web, P/share/waymark/sdk}. Otherwise {build_web_dir, build_sdk_dir}
// unchanged (the demo runs from the source tree and the build dir). `executable` should be
// absolute (see executable_path); a relative one is taken against the current directory.
StaticDirs default_static_dirs(const std::filesystem::path& executable, const std::string& build_web_dir,
                               const std::string& build_sdk_dir);

// This process's executable, symlinks resolved: /proc/self/exe, else argv0 made absolute
// against the current directory, else "" (no installed layout is then found).
std::filesystem::path executable_path(const char* argv0);

}  // namespace waymark::edge
