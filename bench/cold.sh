#!/usr/bin/env bash
# Compressed cold storage on disk (issue 31, BENCHMARKS.md "Compressed cold storage"):
# 1M readings of 200 random-walk series (two decimals, 10 s apart, 2 % of timestamps a
# second late, ten days old) written straight into a fresh SQLite database, measured after
# VACUUM; then a hub with `compress_after = "1d"` compresses them (and rebuilds the rollups),
# and the same database is measured again after VACUUM (`dbstat`: every table and index).
#
# With `postgres`, the same rows are generated in SQL into a fresh database on the server of
# TELEHUB_BENCH_PG (default postgres://postgres@127.0.0.1:5432/postgres), measured with
# `pg_total_relation_size` after `VACUUM FULL` (the readings' partitions summed).
#
# Usage: bench/cold.sh [sqlite|postgres]   (needs sqlite3 or psql; builds telehub, or
#        TELEHUB_BIN=… uses that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
case "$backend" in
  sqlite) command -v sqlite3 >/dev/null || { echo "bench/cold.sh: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 1; } ;;
  postgres) command -v psql >/dev/null || { echo "bench/cold.sh: psql is missing (apt-get install postgresql-client)" >&2; exit 1; } ;;
  *) echo "usage: bench/cold.sh [sqlite|postgres]" >&2; exit 2 ;;
esac
if [ -z "${TELEHUB_BIN:-}" ]; then
  cargo build --release --quiet -p telehub
fi
bin="${TELEHUB_BIN:-${CARGO_TARGET_DIR:-target}/release/telehub}"
dir="$(mktemp -d)"
t0=$(( ($(date +%s) / 86400 - 10) * 86400 * 1000000 ))
compress() { # DATABASE_URL: a hub compresses every reading but each series' newest, then stops
  printf '[storage]\ncompress_after = "1d"\ncompress_pause = "0s"\n' > "$dir/c.toml"
  "$bin" serve --listen 127.0.0.1:0 --config "$dir/c.toml" --database-url "$1" >/dev/null 2>"$dir/hub.log" &
  hub=$!
  started=$(date +%s.%N)
  until "$bin" stats --format json --database-url "$1" | grep -q '"compressed_readings":999800'; do sleep 0.5; done
  echo "compressed in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $started }") s (rollups rebuilt first)"
  kill "$hub"; wait "$hub" || true
}
if [ "$backend" = postgres ]; then
  server="${TELEHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
  name="telehub_cold_$$"
  db="${server%/*}/$name"
  trap 'kill "${hub:-0}" 2>/dev/null || true; psql -q "$server" -c "DROP DATABASE IF EXISTS $name" >/dev/null; rm -rf "$dir"' EXIT
  psql -q "$server" -c "CREATE DATABASE $name" >/dev/null
  "$bin" migrate --database-url "$db" >/dev/null
  psql -q -v ON_ERROR_STOP=1 "$db" <<SQL
INSERT INTO devices(id, name, created_us) VALUES (1, 'bench', 0);
INSERT INTO series(id, device_id, sensor, kind) SELECT s, 1, 's' || s, 'number' FROM generate_series(1, 200) s;
INSERT INTO readings(series_id, ts, value)
SELECT sid, $t0 + n * 10000000::bigint + late, cents / 100.0 FROM (
  SELECT sid, n, late, 2000 + sid * 7 + SUM(step) OVER (PARTITION BY sid ORDER BY n) AS cents FROM (
    SELECT s AS sid, n, floor(random() * 21)::int - 10 AS step,
           CASE WHEN random() < 0.02 THEN 1000000 ELSE 0 END AS late
    FROM generate_series(1, 200) s, generate_series(0, 4999) n) a) b ORDER BY sid, n;
SQL
  pgsizes() {
    psql -q "$db" -c "VACUUM FULL" >/dev/null
    psql -At "$db" -c "SELECT 'readings', sum(pg_total_relation_size(c.oid)) FROM pg_class c
        WHERE c.oid = 'readings'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass)
      UNION ALL SELECT 'reading_blocks', pg_total_relation_size('reading_blocks')
      UNION ALL SELECT 'rollup_1m', pg_total_relation_size('rollup_1m')
      UNION ALL SELECT 'rollup_1h', pg_total_relation_size('rollup_1h')"
  }
  echo "before (1,000,000 rows, VACUUM FULL):"; pgsizes
  compress "$db"
  echo "after (999,800 compressed, 200 rows: each series' newest, VACUUM FULL):"; pgsizes
  exit 0
fi
trap 'kill "${hub:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
db="sqlite://$dir/hub.db"
"$bin" migrate --database-url "$db" >/dev/null
sqlite3 "$dir/hub.db" <<SQL
INSERT INTO devices(id, name, created_us) VALUES (1, 'bench', 0);
WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < 200)
INSERT INTO series(id, device_id, sensor, kind) SELECT id, 1, 's' || id, 'number' FROM s;
WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n < 4999),
steps AS (SELECT s.id AS sid, i.n AS n, (abs(random()) % 21) - 10 AS step,
                 CASE WHEN abs(random()) % 100 < 2 THEN 1000000 ELSE 0 END AS late FROM series s, i),
walk AS (SELECT sid, n, late, 2000 + sid * 7 + SUM(step) OVER (PARTITION BY sid ORDER BY n) AS cents FROM steps)
INSERT INTO readings(series_id, ts, value) SELECT sid, $t0 + n * 10000000 + late, cents / 100.0 FROM walk ORDER BY sid, n;
VACUUM;
SQL
sizes() { sqlite3 "$dir/hub.db" "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name HAVING SUM(pgsize) > 8192 ORDER BY 2 DESC"; }
echo "before (1,000,000 rows, VACUUM):"; sizes
compress "$db"
sqlite3 "$dir/hub.db" "VACUUM"
echo "after (999,800 compressed, 200 rows: each series' newest, VACUUM):"; sizes
