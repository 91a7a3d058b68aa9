#!/usr/bin/env bash
# run_fuzzer.sh: how ctest runs a libFuzzer target (tests/fuzz/CMakeLists.txt).
#   run_fuzzer.sh replay FUZZER CORPUS_DIR [CRASHES_DIR]
#       runs every file of the corpus and of the saved reproducers once; fails on any crash.
#   run_fuzzer.sh fuzz FUZZER CORPUS_DIR SECONDS DICT ARTIFACT_DIR [CRASHES_DIR]
#       fuzzes for SECONDS, seeded with the corpus and the saved reproducers; fails on any
#       crash, which it leaves in ARTIFACT_DIR. The checked-in directories are only read:
#       libFuzzer writes new inputs to the first corpus directory it is given, and that is a
#       fresh temporary one.
set -euo pipefail

mode="$1"
fuzzer="$2"
corpus="$3"
# Leaks fail the run too (libFuzzer turns them into a crash report).
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

case "$mode" in
  replay)
    inputs=("$corpus"/*)
    if [[ -n "${4:-}" && -d "$4" ]]; then
      shopt -s nullglob
      inputs+=("$4"/*)
    fi
    # Files as arguments: libFuzzer runs each once and writes nothing.
    exec "$fuzzer" "${common[@]}" "${inputs[@]}"
    ;;
  fuzz)
    seconds="$4"
    dict="$5"
    artifacts="$6"
    seeds=("$corpus")
    if [[ -n "${7:-}" && -d "$7" ]]; then
      seeds+=("$7")
    fi
    mkdir -p "$artifacts"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    status=0
    # -entropic=0: libFuzzer 14's entropic schedule spent two thirds of fuzz_edge_node's time
    # in its own feature bookkeeping; without it the same 25 s ran 4.5x the inputs and reached
    # more coverage (fuzz_codec: about the same either way).
    "$fuzzer" "${common[@]}" -entropic=0 -max_total_time="$seconds" -dict="$dict" \
      -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" || status=$?
    if [[ $status -ne 0 ]]; then
      echo "run_fuzzer.sh: $(basename "$fuzzer") failed (status $status); what it wrote:" >&2
      find "$artifacts" -type f -newer "$work" >&2 || true
    fi
    exit $status
    ;;
  *)
    echo "usage: run_fuzzer.sh replay|fuzz FUZZER CORPUS_DIR ..." >&2
    exit 2
    ;;
esac
