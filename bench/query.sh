#!/usr/bin/env bash
# Grafana's panels read back (issue 27): `firmware-sim bench query`, the same readings in the
# hub (SQLite) and in Debian's InfluxDB 1.x, p50/p95 of a 30-day GROUP BY time(1h) panel and a
# 6-hour GROUP BY time(10s) panel over 10 devices, side by side. Installs Debian's `influxdb`
# (influxd 1.x) when influxd is missing; starts its own influxd under --dir and stops it.
#
# Usage: bench/query.sh [firmware-sim bench query options]
#        bench/query.sh --devices 10 --days 30 --rounds 3
#        bench/query.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v influxd >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bench/query.sh: installing Debian's influxdb (influxd 1.x)" >&2
  $sudo apt-get install -y --no-install-recommends influxdb >&2
fi
cargo build --release --quiet -p telehub -p firmware-sim
bin="${CARGO_TARGET_DIR:-target}/release"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin/firmware-sim" bench query --dir "$dir" "$@"
