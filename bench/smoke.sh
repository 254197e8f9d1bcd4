#!/usr/bin/env bash
# Short smoke runs of every benchmark (seconds each). They check that each harness works
# end to end; the figures they print mean nothing. Full runs: see BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p telehub -p firmware-sim
bin="${CARGO_TARGET_DIR:-target}/release"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$bin/firmware-sim" bench ingest --smoke --dir "$dir"
"$bin/firmware-sim" bench ingest --smoke --backend postgres --dir "$dir"
"$bin/firmware-sim" bench connections --smoke --dir "$dir"
"$bin/firmware-sim" bench latency --smoke --dir "$dir"
"$bin/firmware-sim" bench fanout --smoke --dir "$dir"
"$bin/firmware-sim" bench reconnect --smoke --dir "$dir"
"$bin/firmware-sim" bench commands --smoke --dir "$dir"
"$bin/firmware-sim" bench config --smoke --dir "$dir"
"$bin/firmware-sim" bench soak --smoke --dir "$dir"
bench/line.sh --smoke --servers hub,influxd,hub-json,hub-ws
bench/serial.sh 50 3
RUNS=1 DEVICES=1 MESSAGES=200 READINGS=1 MIN_RATIO=0 bench/mqtt.sh
bench/query.sh --smoke
