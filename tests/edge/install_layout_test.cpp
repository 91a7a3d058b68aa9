// default_static_dirs: an installed edge (P/bin next to P/share/waymark/web) serves the prefix's
// web app and SDK; anything else keeps the build's defaults.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "install_layout.h"

namespace fs = std::filesystem;
using waymark::edge::default_static_dirs;
using waymark::edge::executable_path;

namespace {

struct TempPrefix {
  fs::path root;
  TempPrefix() {
    std::random_device seed;
    root = fs::temp_directory_path() / ("waymark-layout-" + std::to_string(seed()));
    fs::create_directories(root);
  }
  ~TempPrefix() {
    std::error_code ignored;
    fs::remove_all(root, ignored);
  }
  void make(const fs::path& relative) const { fs::create_directories(root / relative); }
};

}  // namespace

TEST_CASE("an executable in P/bin with P/share/waymark/web uses the prefix's dirs") {
  TempPrefix prefix;
  prefix.make("bin");
  prefix.make("share/waymark/web");
  prefix.make("share/waymark/sdk");
  auto dirs = default_static_dirs(prefix.root / "bin/waymark-edge", "/src/web", "/src/build/wasm/wasm/dist");
  CHECK(dirs.web_dir == (prefix.root / "share/waymark/web").string());
  CHECK(dirs.sdk_dir == (prefix.root / "share/waymark/sdk").string());
}

TEST_CASE("an install without the SDK still names P/share/waymark/sdk, never the build's") {
  TempPrefix prefix;
  prefix.make("bin");
  prefix.make("share/waymark/web");
  auto dirs = default_static_dirs(prefix.root / "bin/waymark-edge", "/src/web", "/src/build/wasm/wasm/dist");
  CHECK(dirs.web_dir == (prefix.root / "share/waymark/web").string());
  CHECK(dirs.sdk_dir == (prefix.root / "share/waymark/sdk").string());
}

TEST_CASE("a build tree's executable keeps the build defaults") {
  TempPrefix build;
  build.make("edge");
  build.make("share/waymark/web");  // not next to a bin/: no install
  auto dirs = default_static_dirs(build.root / "edge/waymark-edge", "/src/web", "/src/dist");
  CHECK(dirs.web_dir == "/src/web");
  CHECK(dirs.sdk_dir == "/src/dist");
}

TEST_CASE("a bin/ without share/waymark/web next to it keeps the build defaults") {
  TempPrefix prefix;
  prefix.make("bin");
  prefix.make("share/other/web");
  auto dirs = default_static_dirs(prefix.root / "bin/waymark-edge", "web", "");
  CHECK(dirs.web_dir == "web");
  CHECK(dirs.sdk_dir.empty());
}

TEST_CASE("a P/share/waymark/web that is a file is no install") {
  TempPrefix prefix;
  prefix.make("bin");
  prefix.make("share/waymark");
  std::ofstream(prefix.root / "share/waymark/web") << "not a dir";
  auto dirs = default_static_dirs(prefix.root / "bin/waymark-edge", "web", "");
  CHECK(dirs.web_dir == "web");
}

TEST_CASE("a path with . and .. segments is normalised before looking for bin/") {
  TempPrefix prefix;
  prefix.make("bin");
  prefix.make("lib");
  prefix.make("share/waymark/web");
  auto dirs = default_static_dirs(prefix.root / "lib/../bin/./waymark-edge", "web", "");
  CHECK(dirs.web_dir == (prefix.root / "share/waymark/web").string());
}

TEST_CASE("no executable path keeps the build defaults") {
  auto dirs = default_static_dirs(fs::path{}, "web", "dist");
  CHECK(dirs.web_dir == "web");
  CHECK(dirs.sdk_dir == "dist");
}

TEST_CASE("executable_path names this test binary") {
  fs::path self = executable_path("ignored");
  REQUIRE(!self.empty());
  CHECK(self.is_absolute());
  CHECK(self.filename() == "waymark_edge_tests");
}
