#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: ./scripts/fuzz.sh [SECONDS_PER_TARGET] (default 60).
# Needs cargo-fuzz (installed here when missing). On a stable toolchain RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz use the sanitizer flags it needs. A crash is saved under fuzz/artifacts/TARGET/
# and fails the run: turn it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  log="$(mktemp)"
  echo "==> fuzzing $target for ${secs}s"
  if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$secs" -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
  else
    tail -n 40 "$log"
    echo "fuzz target $target failed (crash artifacts, if any, in fuzz/artifacts/$target)"
    exit 1
  fi
  rm -f "$log"
done
