#!/usr/bin/env bash
# Browser end-to-end tests of the dashboard: builds the hub (release), then runs the
# node:test suite, which drives Debian's chromium through playwright-core.
# Usage: tests/browser/run.sh   (honours CARGO_TARGET_DIR, like cargo)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "browser tests: $chromium_bin is missing; run scripts/install-test-deps.sh (apt-get install chromium)" >&2
  exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "browser tests: node and npm are missing; run scripts/install-test-deps.sh" >&2
  exit 1
fi
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/ws" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --bins -p telehub -p firmware-sim)

export TELEHUB_BIN="$target/release/telehub"
export FIRMWARE_SIM_BIN="$target/release/firmware-sim"
export CHROMIUM="$chromium_bin"
cd "$here"
exec node --test --test-timeout=240000 --test-concurrency=1 ./*.test.mjs
