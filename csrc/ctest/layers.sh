#!/usr/bin/env bash
# layers.sh: the runtime knows no transport (run by `make lint`).
#
# Fails when a C file of csrc/ other than core.c (the composition root)
# includes a header from csrc/dist/, or names anything the transport declares
# there (a function, type, macro or constant of csrc/dist/*.h that no csrc/*.h
# declares too). The runtime reaches other nodes only through the ops table of
# csrc/remote.h; the C test runtime_alone links it without csrc/dist/.
# Comments are ignored (gcc -fpreprocessed strips them).
set -euo pipefail
csrc=$(cd "$(dirname "$0")/.." && pwd)
cd "$csrc"
strip() { gcc -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null; }
ids() { grep -oE '\b(pogo|POGO|CS)_[A-Za-z0-9_]+' | sort -u; }

transport=$(for h in dist/*.h; do strip "$h"; done | ids)
shared=$(for h in *.h; do strip "$h"; done | ids)
own=$(comm -23 <(printf '%s\n' "$transport") <(printf '%s\n' "$shared"))

bad=0
for f in *.c *.h; do
  [ "$f" = core.c ] && continue
  if grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"(\.\./)?(csrc/)?dist/' "$f"; then
    echo "layers: $f includes a transport header (csrc/dist/)" >&2
    bad=1
  fi
  used=$(strip "$f" | ids | comm -12 - <(printf '%s\n' "$own") | tr '\n' ' ')
  if [ -n "$used" ]; then
    echo "layers: $f names the transport's: $used" >&2
    bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "layers: no runtime file includes csrc/dist/ or names the transport's functions"
exit "$bad"
