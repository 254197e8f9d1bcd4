#!/usr/bin/env bash
# Line-protocol ingest beside InfluxDB 1.x (issue 17): `firmware-sim bench line`, after
# installing Debian's `influxdb` package (influxd 1.x) when influxd is missing. The bench
# starts its own influxd on a temporary directory under --dir and free ports, and stops
# it afterwards; the package's own service is never started here.
#
# Usage: bench/line.sh [firmware-sim bench line options]
#        bench/line.sh --rounds 5 --servers hub,influxd,hub-json,hub-ws
#        bench/line.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v influxd >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench/line.sh: installing Debian's influxdb (influxd 1.x)" >&2
  $sudo apt-get install -y --no-install-recommends influxdb >&2
fi
command -v sqlite3 >/dev/null || { echo "bench/line.sh: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 1; }
cargo build --release --quiet -p telehub -p firmware-sim
bin="${CARGO_TARGET_DIR:-target}/release"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin/firmware-sim" bench line --dir "$dir" "$@"
