#!/usr/bin/env bash
# Before/after in one session: runs one `firmware-sim bench` scenario against two `telehub`
# binaries, ROUNDS times each, alternating which goes first (so drift in the machine's load
# falls on both), and prints every run's result line labelled `before` or `after`.
#
# Usage: bench/ab.sh BEFORE_TELEHUB AFTER_TELEHUB ROUNDS SCENARIO [ARGS...]
#   e.g. bench/ab.sh /tmp/base/telehub target/release/telehub 5 ingest --messages 100
# FIRMWARE_SIM names the harness (default: the release build next to AFTER_TELEHUB).
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,9p' "$0"; exit 2; }
before="$1" after="$2" rounds="$3"
shift 3
sim="${FIRMWARE_SIM:-$(dirname "$after")/firmware-sim}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
run() { # LABEL BINARY
  "$sim" bench "$@" --runs 1 --dir "$dir" >"$dir/out" 2>&1 || { cat "$dir/out"; exit 1; }
  grep -E '^run 1|^\| telehub|^\| 1 \|' "$dir/out" | sed "s/^/$LABEL: /"
}
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
  for which in $order; do
    bin="$before"; [ "$which" = after ] && bin="$after"
    LABEL="$which" run "$@" --hub-bin "$bin"
  done
done
