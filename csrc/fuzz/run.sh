#!/usr/bin/env bash
# Builds every csrc/fuzz/fuzz_*.c as a libFuzzer target (clang,
# -fsanitize=fuzzer,address,undefined) and runs each for $1 seconds (default 60).
#
# Each target declares what it needs in comment lines:
#   // fuzz-sources: codec.c dist/wire.c (files under csrc/ to compile with it)
#   // fuzz-libs: -luv                  (optional, extra link flags)
#   // fuzz-cflags: -D_GNU_SOURCE       (optional, extra compile flags)
# Every target links liblua5.4, msgpackc and xxhash. Optional inputs:
# csrc/fuzz/<target>.dict (libFuzzer dictionary), csrc/fuzz/seeds/<target>/ (seed files).
# Output under fuzz-out/ (gitignored): bin/, corpus/<target>/, artifacts/<target>/.
# Env: FUZZ_OUT (output dir), FUZZ_CC (default clang), FUZZ_TARGETS (names to run, e.g. "fuzz_codec").
set -uo pipefail
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FUZZ_OUT:-$root/fuzz-out}
cc=${FUZZ_CC:-clang}
mkdir -p "$out/bin"

inc=(-I"$root/csrc" -I/usr/include/lua5.4)
[ -d /usr/include/lua5.4/luv ] && inc+=(-I/usr/include/lua5.4/luv)
if pkg-config --exists libuv 2>/dev/null; then
  read -r -a uvflags <<<"$(pkg-config --cflags libuv)"; inc+=("${uvflags[@]}")
fi
cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
baselibs=(-llua5.4 -lmsgpackc -lxxhash -lm)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
shopt -s nullglob
for src in "$here"/fuzz_*.c; do
  name=$(basename "$src" .c)
  if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then continue; fi
  read -r -a srcs <<<"$(sed -n 's|^// *fuzz-sources:||p' "$src" | head -1)"
  read -r -a libs <<<"$(sed -n 's|^// *fuzz-libs:||p' "$src" | head -1)"
  read -r -a extra <<<"$(sed -n 's|^// *fuzz-cflags:||p' "$src" | head -1)"
  files=("$src")
  for s in "${srcs[@]}"; do files+=("$root/csrc/$s"); done
  echo "== build $name (${srcs[*]})"
  if ! "$cc" "${cflags[@]}" "${extra[@]}" "${inc[@]}" "${files[@]}" -o "$out/bin/$name" \
       "${libs[@]}" "${baselibs[@]}"; then
    echo "!! $name: build failed"; failed+=("$name"); continue
  fi
  corpus="$out/corpus/$name"; arts="$out/artifacts/$name"
  mkdir -p "$corpus" "$arts"
  args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1 -artifact_prefix="$arts/")
  [ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
  dirs=("$corpus")
  [ -d "$here/seeds/$name" ] && dirs+=("$here/seeds/$name")
  echo "== run $name for ${secs}s"
  if "$out/bin/$name" "${args[@]}" "${dirs[@]}" >"$out/$name.log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|#[0-9]+.*DONE)' "$out/$name.log" | tail -2
    echo "ok $name"
  else
    tail -40 "$out/$name.log"
    echo "!! $name: finding (log $out/$name.log, artifacts in $arts)"; failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then echo "fuzz failed: ${failed[*]}"; exit 1; fi
echo "fuzz ok"
