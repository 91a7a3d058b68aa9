#!/usr/bin/env bash
# run_fuzzer.sh: how ctest and `./waymark.sh fuzz` run a libFuzzer target (tests/fuzz/README.md).
#   run_fuzzer.sh replay FUZZER CORPUS_DIR [CRASHES_DIR]
#       runs every file of the corpus and of the saved reproducers once; fails on any crash.
#   run_fuzzer.sh fuzz FUZZER CORPUS_DIR SEED RUNS DICT ARTIFACT_DIR [CRASHES_DIR]
#       ctest's fuzzing: RUNS inputs from libFuzzer seed SEED, seeded with the corpus and the saved
#       reproducers, so the same build and tree give the same inputs and the same result every
#       time. Fails on any crash, which it leaves in ARTIFACT_DIR.
#   run_fuzzer.sh explore FUZZER CORPUS_DIR SECONDS DICT CRASHES_DIR
#       open-ended fuzzing for SECONDS from a fresh seed (libFuzzer prints it); a crash input is
#       written into CRASHES_DIR (the checked-in crashes/<target>/), where replay and fuzz pick it
#       up as a reproducer. Stops at the first crash.
# The checked-in corpus is only read: libFuzzer writes new inputs to the first corpus directory
# it is given, and that is a fresh temporary one, removed at the end.
set -euo pipefail

mode="${1:-}"
# Leaks fail the run too (libFuzzer turns them into a crash report).
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
# -entropic=0: libFuzzer 14's entropic schedule spent two thirds of fuzz_edge_node's time in its
# own feature bookkeeping; without it the same 25 s ran 4.5x the inputs and reached more coverage
# (fuzz_codec: about the same either way).
search=(-entropic=0)

usage() {
  echo "usage: run_fuzzer.sh replay FUZZER CORPUS_DIR [CRASHES_DIR]" >&2
  echo "       run_fuzzer.sh fuzz FUZZER CORPUS_DIR SEED RUNS DICT ARTIFACT_DIR [CRASHES_DIR]" >&2
  echo "       run_fuzzer.sh explore FUZZER CORPUS_DIR SECONDS DICT CRASHES_DIR" >&2
  exit 2
}

# run_fuzzing ARTIFACT_DIR FUZZER ARGS...: runs libFuzzer with a scratch corpus directory first
# and reports what it wrote when it failed.
work=""
run_fuzzing() {
  local artifacts="$1" status=0
  shift
  mkdir -p "$artifacts"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT  # $work is global: the trap runs after this function returns
  "$@" -artifact_prefix="$artifacts/" "$work" "${seeds[@]}" || status=$?
  if [[ $status -ne 0 ]]; then
    echo "run_fuzzer.sh: $(basename "$fuzzer") failed (status $status); what it wrote:" >&2
    find "$artifacts" -type f -newer "$work" >&2 || true
  fi
  return $status
}

case "$mode" in
  replay)
    [[ $# -ge 3 ]] || usage
    fuzzer="$2"
    inputs=("$3"/*)
    if [[ -n "${4:-}" && -d "$4" ]]; then
      shopt -s nullglob
      inputs+=("$4"/*)
    fi
    # Files as arguments: libFuzzer runs each once and writes nothing.
    exec "$fuzzer" "${common[@]}" "${inputs[@]}"
    ;;
  fuzz)
    [[ $# -ge 7 ]] || usage
    fuzzer="$2" seed="$4" runs="$5" dict="$6" artifacts="$7"
    seeds=("$3")
    if [[ -n "${8:-}" && -d "$8" ]]; then
      seeds+=("$8")
    fi
    # Same seed and count alone do not make a run repeat itself: the targets' coverage depends on
    # heap addresses (Boost.JSON salts its object hashing with one), and comparison tracing feeds
    # address-like operands back into the mutations, and libFuzzer rereads its corpus directory
    # once a second. So: no address randomisation (setarch -R), no comparison-guided mutation
    # (-use_cmp=0; the dictionary still guides) and no timed reload (-reload=0). Measured: two
    # runs print the same coverage line for line. `explore` keeps all three.
    no_aslr=()
    if setarch -R true 2>/dev/null; then
      no_aslr=(setarch -R)
    else
      echo "run_fuzzer.sh: cannot turn address randomisation off here (setarch -R);" \
           "coverage may differ from run to run" >&2
    fi
    run_fuzzing "$artifacts" "${no_aslr[@]}" "$fuzzer" "${common[@]}" "${search[@]}" -use_cmp=0 \
      -reload=0 -seed="$seed" -runs="$runs" -dict="$dict"
    ;;
  explore)
    [[ $# -ge 6 ]] || usage
    fuzzer="$2" seconds="$4" dict="$5" crashes="$6"
    seeds=("$3" "$crashes")
    mkdir -p "$crashes"
    run_fuzzing "$crashes" "$fuzzer" "${common[@]}" "${search[@]}" -max_total_time="$seconds" \
      -dict="$dict"
    ;;
  *)
    usage
    ;;
esac
