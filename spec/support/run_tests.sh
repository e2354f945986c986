#!/usr/bin/env bash
# Runs every busted spec file in its own lua5.4 process (a node is per process),
# then the cluster specs again over TLS (POGO_TEST_TLS=1: pogo.local_cluster
# gives every node test certificates), then any C tests, and ends with the
# line "N passed, N failed".
# Env: BUILD (build dir), POGO_SANITIZE=1 (preload ASan/UBSan), POGO_VALGRIND=1,
# POGO_TLS_SPECS (the files run again over TLS; default: spec/cluster/*_spec.lua
# but the TLS specs themselves; none when files are named on the command line).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
BUSTED_BIN=$(command -v busted)
passed=0; failed=0
runner=("$LUA")
if [ "${POGO_SANITIZE:-}" = 1 ]; then
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86"
  export LSAN_OPTIONS="suppressions=$PWD/spec/support/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
if [ "${POGO_VALGRIND:-}" = 1 ]; then
  # --fair-sched: the preemption watchdog thread must get its turn while a process spins
  runner=(valgrind --quiet --fair-sched=yes --leak-check=full --show-leak-kinds=definite,indirect
          --errors-for-leak-kinds=definite,indirect --error-exitcode=87
          --suppressions="$PWD/spec/support/valgrind.supp" "$LUA")
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  mapfile -t files < <(find spec -name '*_spec.lua' | sort)
  # under valgrind: not the multi-node specs, nor the embedding examples whose
  # hosts run outside valgrind anyway (Prosody, cqueues); the C host's spec
  # runs, with the C host under valgrind too
  [ -n "${POGO_VALGRIND:-}" ] && mapfile -t files < <(printf '%s\n' "${files[@]}" |
    grep -v -E "${POGO_VALGRIND_SKIP:-/cluster/|/embed/(prosody|cqueues)_}")
fi
tls_files=()
if [ $# -eq 0 ] && [ -z "${POGO_VALGRIND:-}" ]; then
  if [ -n "${POGO_TLS_SPECS+x}" ]; then read -r -a tls_files <<<"$POGO_TLS_SPECS"
  else mapfile -t tls_files < <(find spec/cluster -name '*_spec.lua' ! -name '*tls*' | sort); fi
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
runs=()
for f in "${files[@]}"; do runs+=("plain:$f"); done
for f in "${tls_files[@]}"; do runs+=("tls:$f"); done
for run in "${runs[@]}"; do
  f=${run#*:}
  if [ "${run%%:*}" = tls ]; then tls=1; echo "== $f (over TLS)"; else tls=${POGO_TEST_TLS:-}; echo "== $f"; fi
  POGO_TEST_TLS=$tls timeout "${POGO_SPEC_TIMEOUT:-300}" "${runner[@]}" "$BUSTED_BIN" -o plainTerminal \
    --lpath="./lua/?.lua;./lua/?/init.lua;./spec/?.lua" --cpath="./$BUILD/?.so" "$f" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -1)
  if [ -n "$line" ]; then
    read -r s _ _ fl _ _ e _ _ p _ <<<"$line"
    passed=$((passed + s)); failed=$((failed + fl + e + p))
    # a crash or sanitizer report after the summary still fails the file
    if [ "$rc" -ne 0 ] && [ $((fl + e)) -eq 0 ]; then failed=$((failed + 1)); echo "!! $f exited $rc"; fi
  else
    echo "!! $f produced no summary (exit $rc)"; failed=$((failed + 1))
  fi
done
# C tests: each executable in $BUILD/ctest/; its exit code counts. They load
# pogo through LUA_PATH/LUA_CPATH (the Makefile exports them; defaults here).
export LUA_PATH="${LUA_PATH:-$PWD/lua/?.lua;$PWD/lua/?/init.lua;;}"
export LUA_CPATH="${LUA_CPATH:-$PWD/$BUILD/?.so;;}"
if [ -d "$BUILD/ctest" ]; then
  for t in "$BUILD"/ctest/*; do
    [ -x "$t" ] || continue
    if "$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "!! $t failed"; fi
  done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
