#!/usr/bin/env bash
# waymark.sh: Waymark's commands. `test` installs, builds native Release, ASan+UBSan, WASM and
# the fuzzers and runs every test; `demo` builds the edge and serves the web app on
# http://127.0.0.1:8080; `bench` reruns the benchmarks and rewrites the table in
# docs/benchmarks.md; `fuzz` fuzzes from fresh seeds and keeps what crashes as reproducers.
# Each installs only the Debian packages it needs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
# Build directories live under here; overridable so a developer can test this script without
# clobbering a build/ someone else is using.
BUILD_ROOT="${WAYMARK_BUILD_ROOT:-build}"
readonly BUILD_ROOT
readonly JOBS=2  # the machines have 2 cores
# What each command installs from Debian. The core's build needs:
readonly CORE_BUILD_PACKAGES=(
  build-essential cmake ninja-build pkg-config libboost1.81-dev libboost-json1.81-dev
)
# The edge's (the Release build, on libev's loop; the load harness, which runs its clients on libuv's loop,
# builds without its Redis and NATS peers when hiredis and libnats are missing):
readonly EDGE_BUILD_PACKAGES=(
  "${CORE_BUILD_PACKAGES[@]}"
  liblmdb-dev libwebsockets-dev libcli11-dev libspdlog-dev libssl-dev prometheus-cpp-dev libjwt-dev
  libjemalloc-dev zlib1g-dev libev-dev libuv1-dev
)
# demo: the edge and the browser SDK it serves (emscripten, which runs on node).
readonly DEMO_PACKAGES=("${EDGE_BUILD_PACKAGES[@]}" emscripten nodejs)
# fuzz: the core and its libFuzzer targets (clang).
readonly FUZZ_PACKAGES=("${CORE_BUILD_PACKAGES[@]}" clang-14 libclang-rt-14-dev)
# test: the four builds and what the suites use (Catch2; pytest and its WebSocket and JWT
# clients, openssl for the TLS tests; iproute2 and iptables for the partition test's network
# namespaces; chromium for the browser tests, npm for playwright-core).
readonly TEST_PACKAGES=(
  "${DEMO_PACKAGES[@]}" catch2 clang-14 libclang-rt-14-dev
  python3 python3-websockets python3-pytest python3-jwt openssl iproute2 iptables chromium
)
# bench: the edge, the harness with both peers, and the servers it compares against.
readonly BENCH_PACKAGES=(
  "${EDGE_BUILD_PACKAGES[@]}" libhiredis-dev libnats-dev redis-server nats-server python3
  emscripten nodejs chromium  # the browser SDK's cold start
)

# Debian's emscripten loads node modules (acorn, ...) from /usr/share/nodejs; a Node build not
# from Debian (nodesource) does not look there by itself.
export NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}"
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# --- installing ---------------------------------------------------------------------------------

# missing_debian_packages PACKAGE...: those of the packages that are not installed.
missing_debian_packages() {
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      echo "$package"
    fi
  done
}

# install_debian_packages PACKAGE...: installs the missing ones with apt-get.
install_debian_packages() {
  local missing
  mapfile -t missing < <(missing_debian_packages "$@")
  if [[ ${#missing[@]} -eq 0 ]]; then
    return
  fi
  step "apt-get install ${missing[*]}"
  as_root apt-get update
  as_root apt-get install -y "${missing[@]}"
}

install_npm_packages() {
  [[ -f "$ROOT/package-lock.json" ]] || return 0
  # npm writes node_modules/.package-lock.json on every install: older than the lock means stale.
  if [[ -f "$ROOT/node_modules/.package-lock.json" &&
        ! "$ROOT/package-lock.json" -nt "$ROOT/node_modules/.package-lock.json" ]]; then
    return
  fi
  step "npm ci"
  (cd "$ROOT" && npm ci --no-audit --no-fund)
}

# install_dependencies demo|test|bench|fuzz: what that command needs.
install_dependencies() {
  case "$1" in
    demo) install_debian_packages "${DEMO_PACKAGES[@]}" ;;
    fuzz) install_debian_packages "${FUZZ_PACKAGES[@]}" ;;
    bench) install_debian_packages "${BENCH_PACKAGES[@]}" ;;
    test)
      # A nodesource nodejs bundles npm, and Debian's npm package conflicts with it: ask for npm
      # only when there is no npm at all.
      if command -v npm >/dev/null 2>&1; then
        install_debian_packages "${TEST_PACKAGES[@]}"
      else
        install_debian_packages "${TEST_PACKAGES[@]}" npm
      fi
      install_npm_packages  # playwright-core, for the browser tests
      ;;
  esac
}

# --- building -----------------------------------------------------------------------------------

# True when build dir $1 has no Ninja build yet, or its cache disagrees with one of the
# -DNAME=VALUE settings that follow.
needs_configure() {
  local dir="$1" setting name value
  shift
  [[ -f "$dir/build.ninja" && -f "$dir/CMakeCache.txt" ]] || return 0
  for setting in "$@"; do
    setting="${setting#-D}"
    name="${setting%%=*}"
    value="${setting#*=}"
    grep -qxF -e "$name:BOOL=$value" -e "$name:STRING=$value" -e "$name:UNINITIALIZED=$value" \
      "$dir/CMakeCache.txt" || return 0
  done
  return 1
}

# configure NAME [emcmake] -DNAME=VALUE...: configures $BUILD_ROOT/NAME only when stale (ninja
# re-runs cmake by itself when a CMakeLists.txt changes). Errors are returned explicitly here
# and in build: callers run them under `if`, where bash ignores `set -e`.
configure() {
  local dir="$BUILD_ROOT/$1" wrapper=()
  shift
  if [[ "${1:-}" == emcmake ]]; then
    wrapper=(emcmake)
    shift
  fi
  needs_configure "$dir" "$@" || return 0
  # A cache made by another generator cannot be reused with Ninja.
  if [[ -f "$dir/CMakeCache.txt" ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt"; then
    rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
  fi
  "${wrapper[@]}" cmake -S "$ROOT" -B "$dir" -G Ninja "$@"
}

# build NAME [TARGET...]: lets ninja rebuild what is out of date (everything, or the targets).
build() {
  local dir="$BUILD_ROOT/$1"
  shift
  ninja -C "$dir" -j "$JOBS" "$@"
}

build_release() {
  configure release -DCMAKE_BUILD_TYPE=Release -DWAYMARK_SANITIZE=OFF -DWAYMARK_TESTS=ON || return
  build release "$@"
}
build_asan() {
  configure asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWAYMARK_SANITIZE=ON -DWAYMARK_TESTS=ON || return
  build asan "$@"
}
build_wasm() {
  configure wasm emcmake -DCMAKE_BUILD_TYPE=Release -DWAYMARK_EDGE=OFF || return
  build wasm "$@"
}
# The libFuzzer targets (tests/fuzz): clang, only the core and them; ctest replays every
# checked-in input and fuzzes each target with a fixed seed and count (deterministic).
build_fuzz() {
  CC=clang-14 CXX=clang++-14 configure fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWAYMARK_FUZZ=ON \
    -DWAYMARK_EDGE=OFF -DWAYMARK_TESTS=OFF || return
  build fuzz "$@"
}

# --- testing ------------------------------------------------------------------------------------

passed_total=0
failed_total=0
problems=()

# run_ctest NAME: runs the suite in $BUILD_ROOT/NAME and adds its counts to the totals, taken
# from ctest's own closing line ("..., N tests failed out of T").
run_ctest() {
  local name="$1" log status=0 summary failed total
  log="$(mktemp)"
  # -j: a tree's tests run side by side, one per core (the partition test mostly waits out its
  # partition; the core suite is CPU-bound), each test's output still in one piece.
  (cd "$BUILD_ROOT/$name" && ctest --output-on-failure --no-tests=error -j "$(nproc)") 2>&1 | tee "$log" ||
    status=$?
  summary="$(grep -E 'tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
  rm -f "$log"
  if [[ -z "$summary" ]]; then
    # ctest ran nothing it could count (no tests, or it could not start): one failure.
    failed_total=$((failed_total + 1))
    problems+=("$name: ctest reported no results")
    return
  fi
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
  passed_total=$((passed_total + total - failed))
  failed_total=$((failed_total + failed))
  if [[ $status -ne 0 || $failed -ne 0 ]]; then
    problems+=("$name: $failed of $total tests failed")
  fi
}

# timed LABEL COMMAND...: runs COMMAND and prints how long it took, keeping its exit status.
timed() {
  local label="$1" start status=0
  shift
  start=$SECONDS
  "$@" || status=$?
  printf '==> %s: %ds\n' "$label" $((SECONDS - start))
  return $status
}

# test_config NAME: builds one configuration and runs its suite. A build that fails counts as
# one failed test, so the summary can never read as green when a suite could not even run.
test_config() {
  local name="$1"
  step "build $BUILD_ROOT/$name"
  if ! timed "build $name" "build_$name"; then
    failed_total=$((failed_total + 1))
    problems+=("$name: build failed, its tests did not run")
    return
  fi
  step "ctest $BUILD_ROOT/$name"
  if [[ $name == asan ]]; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 timed "ctest $name" run_ctest "$name"
  else
    timed "ctest $name" run_ctest "$name"
  fi
}

# run_node_tests NAME DIR: node's test runner over DIR, counted from its own closing
# "# pass N" / "# fail N" lines; no result line at all counts as one failure.
run_node_tests() {
  local name="$1" dir="$2" log status=0 pass fail
  log="$(mktemp)"
  node --test "$dir" 2>&1 | tee "$log" || status=$?
  pass="$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$log" | tail -n 1)"
  fail="$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$log" | tail -n 1)"
  rm -f "$log"
  if [[ -z "$pass" || -z "$fail" ]]; then
    failed_total=$((failed_total + 1))
    problems+=("$name: node --test reported no results")
    return
  fi
  passed_total=$((passed_total + pass))
  failed_total=$((failed_total + fail))
  if [[ $status -ne 0 || $fail -ne 0 ]]; then
    problems+=("$name: $fail of $((pass + fail)) tests failed")
  fi
}

# The web app's pure modules (tests/web): no build, no browser.
run_web_tests() { run_node_tests web tests/web/; }

# The browser suites (tests/browser, node:test + playwright-core + Debian's chromium) need the
# Release edge and the WASM SDK, so they run after both are built.
run_browser_tests() {
  WAYMARK_EDGE="$ROOT/$BUILD_ROOT/release/edge/waymark-edge" \
  WAYMARK_SDK_DIR="$ROOT/$BUILD_ROOT/wasm/wasm/dist" \
    run_node_tests browser tests/browser/
}

command_test() {
  install_dependencies test
  local name
  step "web app unit tests (node)"
  timed "web tests" run_web_tests
  for name in release asan wasm fuzz; do
    test_config "$name"
  done
  step "browser tests (chromium)"
  timed "browser tests" run_browser_tests
  echo
  for name in "${problems[@]+"${problems[@]}"}"; do
    echo "FAILED: $name"
  done
  echo "$passed_total passed, $failed_total failed"
  [[ $failed_total -eq 0 && ${#problems[@]} -eq 0 ]]
}

# --- demo ---------------------------------------------------------------------------------------

command_demo() {
  install_dependencies demo
  local edge="$BUILD_ROOT/release/edge/waymark-edge"
  step "build $BUILD_ROOT/release (the edge)"
  if ! build_release waymark-edge || [[ ! -x "$edge" ]]; then
    echo "the edge is not built yet ($edge; see above)" >&2
    exit 1
  fi
  # The edge serves the browser SDK from build/wasm/wasm/dist (its default SDK dir).
  step "build $BUILD_ROOT/wasm (the browser SDK)"
  build_wasm waymark_sdk
  step "Waymark is on http://127.0.0.1:8080 (Ctrl-C stops it)"
  exec "$edge" --dev --listen 127.0.0.1:8080 --data "${WAYMARK_DATA:-./waymark-data}" --web web
}

# --- bench --------------------------------------------------------------------------------------

# Reruns every benchmark (tests/bench/run_bench.py: the disk and lws limits, Waymark, Redis 7
# Streams, NATS JetStream, all on loopback) and rewrites the table in docs/benchmarks.md.
# Arguments go to the runner: its knobs (--duration, --idle-clients, ...) scale the run up.
command_bench() {
  install_dependencies bench
  install_npm_packages  # playwright-core, for the SDK's cold start in Chromium
  step "build $BUILD_ROOT/release (the edge and the load harness)"
  build_release waymark-edge waymark-bench waymark-bench-echo waymark-fsync-probe
  step "build $BUILD_ROOT/wasm (the browser SDK, for its cold start)"
  build_wasm waymark_sdk
  step "benchmarks (under 10 minutes by default)"
  WAYMARK_BENCH_COMMAND="./waymark.sh bench${*:+ $*}" \
    /usr/bin/python3 tests/bench/run_bench.py --build-dir "$BUILD_ROOT/release" "$@"
}

# --- fuzz ---------------------------------------------------------------------------------------

readonly FUZZ_TARGETS=(codec edge_node)

# Open-ended fuzzing (tests/fuzz/run_fuzzer.sh explore): per target, SECONDS from a fresh seed,
# after a replay of the checked-in inputs (a target whose reproducers still fail is not fuzzed:
# it would only find them again). A crash input lands in tests/fuzz/crashes/<target>/, where the
# test command replays it from then on.
command_fuzz() {
  local seconds="${1:-300}" name fuzzer
  if [[ ! $seconds =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 2
  fi
  install_dependencies fuzz
  step "build $BUILD_ROOT/fuzz"
  if ! build_fuzz "${FUZZ_TARGETS[@]/#/fuzz_}"; then
    echo "the fuzzers did not build (see above)" >&2
    exit 1
  fi
  for name in "${FUZZ_TARGETS[@]}"; do
    fuzzer="$BUILD_ROOT/fuzz/tests/fuzz/fuzz_$name"
    step "fuzz_$name: replay tests/fuzz/corpus/$name and tests/fuzz/crashes/$name"
    if ! tests/fuzz/run_fuzzer.sh replay "$fuzzer" "tests/fuzz/corpus/$name" "tests/fuzz/crashes/$name"; then
      problems+=("fuzz_$name: a checked-in input already fails (tests/fuzz/crashes/$name); not fuzzed")
      continue
    fi
    step "fuzz_$name: $seconds s from a fresh seed"
    if ! timed "fuzz_$name" tests/fuzz/run_fuzzer.sh explore "$fuzzer" "tests/fuzz/corpus/$name" \
        "$seconds" tests/fuzz/waymark.dict "tests/fuzz/crashes/$name"; then
      problems+=("fuzz_$name: a crash, saved in tests/fuzz/crashes/$name/ (tests/fuzz/README.md: what next)")
    fi
  done
  echo
  for name in "${problems[@]+"${problems[@]}"}"; do
    echo "FOUND: $name"
  done
  if [[ ${#problems[@]} -eq 0 ]]; then
    echo "nothing found in $seconds s per target"
  fi
  [[ ${#problems[@]} -eq 0 ]]
}

usage() {
  cat <<'EOF'
usage: ./waymark.sh demo           install what the demo needs, build the edge and the SDK, run
                                   the edge on http://127.0.0.1:8080
       ./waymark.sh test           install what the tests need, build Release, ASan+UBSan, WASM
                                   and the fuzzers, run every test (fuzzing with fixed seeds)
       ./waymark.sh bench [ARG...] install what the benchmarks need, build Release, rerun them and
                                   rewrite docs/benchmarks.md (ARGs go to tests/bench/run_bench.py)
       ./waymark.sh fuzz [SECONDS] build the fuzzers, fuzz each target SECONDS (default 300) from
                                   a fresh seed, save crash inputs in tests/fuzz/crashes/<target>/
EOF
}

main() {
  cd "$ROOT"
  case "${1:-}" in
    test) command_test ;;
    demo) command_demo ;;
    bench) shift; command_bench "$@" ;;
    fuzz)
      shift
      if [[ $# -gt 1 ]]; then usage >&2; exit 2; fi
      command_fuzz "$@"
      ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
