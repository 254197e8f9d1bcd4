#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs format, lint and tests.
# Usage: ./scripts/test.sh            (PostgreSQL/Mosquitto URLs from the environment)
set -euo pipefail
cd "$(dirname "$0")/.."

: "${TELEHUB_TEST_PG:=postgres://postgres@127.0.0.1:5432/postgres}"
: "${TELEHUB_TEST_MQTT:=mqtt://127.0.0.1:1883}"
export TELEHUB_TEST_PG TELEHUB_TEST_MQTT

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies (idempotent)"
./scripts/install-test-deps.sh

step "dropping databases left by earlier test runs"
psql "$TELEHUB_TEST_PG" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'telehub_test_%'" 2>/dev/null \
  | while read -r db; do psql "$TELEHUB_TEST_PG" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
# Tests that cannot run here (no PostgreSQL or broker configured, not root) pass and
# print `SKIPPED: <test> (<reason>)` past the harness's capture; they are listed below.
# (Under CI, a missing service fails instead; a configured but unreachable one always does.)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --release 2>&1 | tee "$log"
# (grep finds nothing when no test was skipped: not an error.)
skipped="$(grep -c 'SKIPPED: ' "$log" || true)"
if [ "$skipped" -gt 0 ]; then
  printf '\n%s test(s) SKIPPED, counted as passed above:\n' "$skipped"
  grep -o 'SKIPPED: .*' "$log" | sed 's/^/  /'
fi

leftover="$(psql "$TELEHUB_TEST_PG" -Atqc "SELECT count(*) FROM pg_database WHERE datname LIKE 'telehub_test_%'" 2>/dev/null || echo 0)"
if [ "$leftover" -gt 0 ]; then
  echo "warning: $leftover telehub_test_* database(s) left on $TELEHUB_TEST_PG (each TestDb drops its own)"
  [ -z "${CI:-}" ] || exit 1
fi

if [ -x tests/browser/run.sh ]; then
  step "browser tests (chromium)"
  tests/browser/run.sh
fi

step "docs: every command, config block and link in README.md and docs/ works"
./scripts/check-docs.sh

step "fuzz smoke (10 s per target; longer runs: ./scripts/fuzz.sh 600)"
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/fuzz" ./scripts/fuzz.sh 10

if [ -x bench/smoke.sh ]; then
  step "benchmark smoke runs"
  bench/smoke.sh
fi
