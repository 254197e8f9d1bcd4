#!/usr/bin/env bash
# History benchmark (see BENCHMARKS.md, "History"): ingest with rollups on vs off, then
# 1-day and 30-day bucket queries over HTTP on a ~10.8M-reading SQLite store, beside the
# raw GROUP BY in the sqlite3 shell. Needs ~1 GB of disk under target/history-bench.
# Usage: bench/history.sh [--reuse] [--runs N] [--ingest-rows N] [--dir DIR] [--skip-ingest]
#        [--skip-queries] [--workload dense|fleet]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -sr)"
echo "sqlite3 shell: $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo missing)"
cargo bench --bench history -- "$@"
