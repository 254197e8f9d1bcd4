#!/usr/bin/env bash
# Compressed cold storage (issue 31, BENCHMARKS.md "Compressed cold storage"): bytes on disk
# per reading before and after compression, readings and rollups apart, and (for numbers)
# what queries, export and a resend cost over hot vs compressed data.
#
# Data (written straight into a fresh database, ten days old, 200 series of 5,000 readings
# 10 s apart, 2 % of timestamps a second late):
#   numbers  random walks with two decimals (the issue's shape);
#   states   100 boolean and 100 string series (4 texts) whose state changes with
#            probability 1/20 per reading (runs of 20 readings, 200 s, on average);
#   influxd  (SQLite only) the numbers, also loaded through the line protocol into Debian's
#            influxd 1.x (a private instance on a temporary directory and free ports; its
#            cache snapshotted and fully compacted after 1 s cold): its data and WAL on disk
#            per reading beside the hub's, same readings, same run;
#   ingest   (SQLite only) the numbers, then ingest with the compactor running vs not: two
#            copies of the database, each served by a hub (compress_after "1d" with the
#            default compress_pause, vs "off") that is sent 1,000,000 new readings at once
#            (10 POSTs of 100,000, one after the other) while its compactor (if on) works
#            through the old ones; prints readings/s of each and how far compaction got.
#
# Steps: a hub with compression off rebuilds the rollups (and, for numbers, is measured over
# hot rows); sizes "before"; a hub with `compress_after = "1d"` compresses every reading but
# each series' newest minute; sizes "after"; (numbers) a hub over the compressed data is
# measured the same way, plus fresh ingest. SQLite: sizes from `dbstat` after VACUUM, every
# table and index. PostgreSQL (`postgres`, a fresh database on the server of
# TELEHUB_BENCH_PG, default postgres://postgres@127.0.0.1:5432/postgres): the same rows
# generated in SQL, `pg_total_relation_size` after `VACUUM FULL` (the readings' partitions
# summed). Each size measurement ends with bytes per reading: readings (hot rows and blocks)
# apart from the rollups (minute and hour). Measurements over HTTP (curl, keep-alive off):
#   1 day every=1m&agg=avg   one series' day in 1-minute buckets (latency, median of 20);
#   raw 1 day                one series' day of points (latency, readings/s);
#   export                   every series, CSV (readings/s, median of 3);
#   resend / fresh           POST /write of 100,000 readings (200 series × 500) already
#                            stored (hot rows, or compressed blocks), vs new ones (median of 3).
#
# Usage: bench/cold.sh [sqlite|postgres] [numbers|states|influxd|ingest]   (needs sqlite3 or psql, and curl;
#        builds telehub, or TELEHUB_BIN=… uses that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
data="${2:-numbers}"
case "$backend" in
  sqlite) command -v sqlite3 >/dev/null || { echo "bench/cold.sh: sqlite3 is missing (apt-get install sqlite3)" >&2; exit 1; } ;;
  postgres) command -v psql >/dev/null || { echo "bench/cold.sh: psql is missing (apt-get install postgresql-client)" >&2; exit 1; } ;;
  *) echo "usage: bench/cold.sh [sqlite|postgres] [numbers|states]" >&2; exit 2 ;;
esac
case "$data" in numbers|states) ;; ingest|influxd) [ "$backend" = sqlite ] || { echo "bench/cold.sh: $data is SQLite only" >&2; exit 2; } ;;
  *) echo "usage: bench/cold.sh [sqlite|postgres] [numbers|states|influxd|ingest]" >&2; exit 2 ;; esac
if [ "$data" = influxd ]; then
  command -v influxd >/dev/null || { echo "bench/cold.sh: influxd is missing (apt-get install influxdb)" >&2; exit 1; }
fi
if [ -z "${TELEHUB_BIN:-}" ]; then
  cargo build --release --quiet -p telehub
fi
bin="${TELEHUB_BIN:-${CARGO_TARGET_DIR:-target}/release/telehub}"
dir="$(mktemp -d)"
t0=$(( ($(date +%s) / 86400 - 10) * 86400 * 1000000 ))
iso() { date -u -d "@$(( $1 / 1000000 ))" +%Y-%m-%dT%H:%M:%SZ; }

start_hub() { # DATABASE_URL COMPRESS_AFTER [COMPRESS_PAUSE]: a hub in the background; sets hub and url
  # A device may write 2,000 readings/s by default: the resends and fresh writes below need more.
  printf '[storage]\ncompress_after = "%s"\ncompress_pause = "%s"\n[limits]\ndevice_readings_per_second = 100000000\ndevice_burst = 100000000\n' \
    "$2" "${3:-0s}" > "$dir/c.toml"
  : > "$dir/hub.out"
  "$bin" serve --listen 127.0.0.1:0 --config "$dir/c.toml" --database-url "$1" >"$dir/hub.out" 2>"$dir/hub.log" &
  hub=$!
  until grep -q '^dashboard: ' "$dir/hub.out"; do
    kill -0 "$hub" 2>/dev/null || { cat "$dir/hub.log" >&2; exit 1; }
    sleep 0.2
  done
  url=$(sed -n 's/^telehub listening on \([^ ]*\).*/\1/p' "$dir/hub.out")
}
stop_hub() { kill "$hub"; wait "$hub" || true; }
compress() { # DATABASE_URL: a hub compresses every reading but each series' newest minute, then stops
  start_hub "$1" 1d
  started=$(date +%s.%N)
  until "$bin" stats --format json --database-url "$1" | grep -Eq '"compactor_lag_seconds":0(\.0)?[,}]'; do sleep 0.5; done
  echo "compressed in $(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $started }") s"
  stop_hub
}
seconds() { # N ARGS…: N runs of curl ARGS; prints the sorted times (s)
  local n=$1; shift
  for _ in $(seq "$n"); do curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@"; done |
    awk '$1 !~ /^2/ { print "bench/cold.sh: HTTP " $1 > "/dev/stderr"; bad = 1 } { print $2 } END { exit bad }' | sort -n
}
median() { awk '{ a[NR] = $1 } END { printf "%s %s %s", a[int((NR + 1) / 2)], a[1], a[NR] }'; }
ms() { awk '{ printf "median %.2f ms (%.2f–%.2f)", $1 * 1000, $2 * 1000, $3 * 1000 }'; }
rate() { awk -v n="$1" '{ printf "median %.0f readings/s (%.0f–%.0f)", n / $1, n / $3, n / $2 }'; }
measure() { # LABEL: queries, export and resend against $url
  local from to auth q
  from=$(iso "$t0"); to=$(iso $(( t0 + 86400000000 )))
  auth="Authorization: Bearer $viewer"
  q="$url/v1/readings?device=bench&sensor=s1&from=$from&to=$to"
  seconds 3 -H "$auth" "$q&every=1m&agg=avg" >/dev/null
  echo "$1: 1 day every=1m&agg=avg: $(seconds 20 -H "$auth" "$q&every=1m&agg=avg" | median | ms)"
  echo "$1: raw 1 day (5,000 points): $(seconds 20 -H "$auth" "$q&limit=10000" | median | ms);" \
    "$(seconds 20 -H "$auth" "$q&limit=10000" | median | rate 5000)"
  echo "$1: export, 1,000,000 readings CSV: $(seconds 3 -H "$auth" "$url/v1/export?device=bench&from=$from&to=$to&format=csv" | median | rate 1000000)"
  echo "$1: resend of 100,000 stored readings: $(seconds 3 -X POST -H "Authorization: Token $device" \
    --data-binary @"$dir/resend.lp" "$url/write?precision=u" | median | rate 100000)"
}
fresh() { # three POSTs of 100,000 new readings (after the data), timed
  for k in 0 1 2; do
    awk -v t="$t0" -v k="$k" 'BEGIN { for (s = 1; s <= 200; s++) for (n = 0; n < 500; n++)
      printf "s%d value=1.5 %d\n", s, t + (6000 + 500 * k + n) * 10000000 }' > "$dir/fresh$k.lp"
    seconds 1 -X POST -H "Authorization: Token $device" --data-binary @"$dir/fresh$k.lp" "$url/write?precision=u"
  done | sort -n | median | rate 100000
}

if [ "$backend" = postgres ]; then
  server="${TELEHUB_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
  name="telehub_cold_$$"
  db="${server%/*}/$name"
  trap 'kill "${hub:-0}" 2>/dev/null || true; psql -q "$server" -c "DROP DATABASE IF EXISTS $name" >/dev/null; rm -rf "$dir"' EXIT
  psql -q "$server" -c "CREATE DATABASE $name" >/dev/null
  run_sql() { psql -q -v ON_ERROR_STOP=1 "$db"; }
  out_sql() { psql -At -v ON_ERROR_STOP=1 "$db"; }
  rand='random()'; int_rand='floor(random() * 1000000)::int'
  series_src='generate_series(1, 200) s(id)'; n_src='generate_series(0, 4999) i(n)'
else
  db="sqlite://$dir/hub.db"
  trap 'kill "${hub:-0}" 2>/dev/null || true; rm -rf "$dir"' EXIT
  run_sql() { sqlite3 "$dir/hub.db"; }
  out_sql() { sqlite3 "$dir/hub.db"; }
  rand='(abs(random()) % 1000000) / 1e6'; int_rand='abs(random()) % 1000000'
  series_src='(WITH RECURSIVE r(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM r WHERE id < 200) SELECT id FROM r) s'
  n_src='(WITH RECURSIVE r(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM r WHERE n < 4999) SELECT n FROM r) i'
fi
"$bin" migrate --database-url "$db" >/dev/null
device=$("$bin" device add bench --database-url "$db")
viewer=$("$bin" token add bench --role viewer --database-url "$db")
if [ "$data" != states ]; then
  kinds="SELECT s.id AS id, 'number' AS kind FROM $series_src"
  value="(2000 + sid * 7 + SUM(step) OVER (PARTITION BY sid ORDER BY n)) / 100.0"
  step="($int_rand % 21) - 10"
else
  run_sql <<<"INSERT INTO text_values(id, text) VALUES (1, 'idle'), (2, 'heating'), (3, 'cooling'), (4, 'defrost');"
  kinds="SELECT s.id AS id, CASE WHEN s.id <= 100 THEN 'boolean' ELSE 'string' END AS kind FROM $series_src"
  value="CASE WHEN sid <= 100 THEN (SUM(step) OVER (PARTITION BY sid ORDER BY n)) % 2
              ELSE 1 + (SUM(step) OVER (PARTITION BY sid ORDER BY n)) % 4 END"
  step="CASE WHEN $int_rand % 20 = 0 THEN 1 ELSE 0 END"
fi
run_sql <<SQL
INSERT INTO series(id, device_id, sensor, kind)
  SELECT k.id, (SELECT id FROM devices WHERE name = 'bench'), 's' || k.id, k.kind FROM ($kinds) k;
INSERT INTO readings(series_id, ts, value)
SELECT sid, $t0 + n * CAST(10000000 AS BIGINT) + late, v FROM (
  SELECT sid, n, late, $value AS v FROM (
    SELECT s.id AS sid, i.n AS n, $step AS step,
           CASE WHEN $rand < 0.02 THEN 1000000 ELSE 0 END AS late
    FROM $series_src, $n_src) a) b ORDER BY sid, n;
SQL
# The first 500 readings of each series, as line protocol: what the resends send.
out_sql <<SQL > "$dir/resend.lp"
SELECT s.sensor || ' value=' || CAST(r.value AS TEXT) || ' ' || CAST(r.ts AS TEXT) FROM readings r JOIN series s ON s.id = r.series_id
WHERE r.ts < $t0 + 5000000000 ORDER BY r.series_id, r.ts;
SQL
sed -i '/^$/d; s/^ *//' "$dir/resend.lp"

if [ "$backend" = postgres ]; then
  sizes() {
    psql -q "$db" -c "VACUUM FULL" >/dev/null
    psql -At "$db" -c "SELECT 'readings', sum(pg_total_relation_size(c.oid)) FROM pg_class c
        WHERE c.oid = 'readings'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'readings'::regclass)
      UNION ALL SELECT 'reading_blocks', pg_total_relation_size('reading_blocks')
      UNION ALL SELECT 'rollup_1m', pg_total_relation_size('rollup_1m')
      UNION ALL SELECT 'rollup_1h', pg_total_relation_size('rollup_1h')" | tee "$dir/pg.sizes"
    awk -F'|' '$1 ~ /reading/ { r += $2 } $1 == "rollup_1m" { m = $2 } $1 == "rollup_1h" { h = $2 }
      END { printf "per reading: readings and blocks %.2f B, rollups %.2f B (minute %.2f, hour %.2f)\n", r / 1e6, (m + h) / 1e6, m / 1e6, h / 1e6 }' "$dir/pg.sizes"
  }
  overhead() { psql -At "$db" -c "SELECT (pg_total_relation_size('reading_blocks') - sum(length(data))) / count(*) FROM reading_blocks"; }
  per_kind() { psql -At -F' ' "$db"; }
else
  sizes() {
    sqlite3 "$dir/hub.db" "VACUUM"
    sqlite3 "$dir/hub.db" "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name HAVING SUM(pgsize) > 8192 ORDER BY 2 DESC"
    sqlite3 "$dir/hub.db" "SELECT printf('per reading: readings and blocks %.2f B, rollups %.2f B (minute %.2f, hour %.2f)',
        SUM(CASE WHEN name LIKE '%reading%' THEN pgsize END) / 1e6, SUM(CASE WHEN name LIKE '%rollup_1%' THEN pgsize END) / 1e6,
        SUM(CASE WHEN name LIKE '%rollup_1m%' THEN pgsize END) / 1e6, SUM(CASE WHEN name LIKE '%rollup_1h%' THEN pgsize END) / 1e6) FROM dbstat"
  }
  overhead() { sqlite3 "$dir/hub.db" "SELECT ((SELECT SUM(pgsize) FROM dbstat WHERE name LIKE '%reading_blocks%') - sum(length(data))) / count(*) FROM reading_blocks"; }
  per_kind() { sqlite3 -separator ' ' "$dir/hub.db"; }
fi

influxd_bytes() { # the same readings through influxd 1.x's line protocol: bytes on disk once compacted
  local idir="$dir/influxd" port rpc pid last="" same=0 count
  mkdir -p "$idir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rpc=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat > "$idir/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc"
[meta]
  dir = "$idir/meta"
[data]
  dir = "$idir/data"
  wal-dir = "$idir/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1s"
  compact-full-write-cold-duration = "1s"
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:$port"
  log-enabled = false
[continuous_queries]
  enabled = false
CONF
  influxd -config "$idir/influxdb.conf" >"$idir/log" 2>&1 &
  pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$port/ping"; do
    kill -0 "$pid" 2>/dev/null || { cat "$idir/log" >&2; exit 1; }
    sleep 0.2
  done
  curl -sf -o /dev/null -X POST "http://127.0.0.1:$port/query" --data-urlencode "q=CREATE DATABASE bench"
  out_sql <<SQL | split -l 100000 - "$idir/lp."
SELECT 'walk,series=' || s.sensor || ' value=' || CAST(r.value AS TEXT) || ' ' || CAST(r.ts AS TEXT)
FROM readings r JOIN series s ON s.id = r.series_id ORDER BY r.series_id, r.ts;
SQL
  for f in "$idir"/lp.*; do
    curl -sf -o /dev/null -X POST --data-binary @"$f" "http://127.0.0.1:$port/write?db=bench&precision=u"
  done
  count=$(curl -sf -G "http://127.0.0.1:$port/query" --data-urlencode db=bench \
    --data-urlencode "q=SELECT count(value) FROM walk" | grep -o '"values":\[\[[^]]*' | awk -F, '{ print $2 }')
  [ "$count" = 1000000 ] || { echo "bench/cold.sh: influxd holds $count readings, not 1,000,000" >&2; exit 1; }
  # Compacted: no WAL segment with data left, and the TSM files unchanged for 5 s.
  for _ in $(seq 240); do
    now="$(find "$idir/data" -name '*.tsm' -printf '%s %p\n' | sort) $(find "$idir/wal" -name '*.wal' -size +0 | wc -l)"
    if [ "$now" = "$last" ] && [ "${now##* }" = 0 ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 10 ] && break
    last="$now"; sleep 0.5
  done
  kill "$pid"; wait "$pid" || true
  echo "influxd $(influxd version 2>/dev/null | head -1), 1,000,000 readings:"
  echo "  TSM files $(find "$idir/data" -name '*.tsm' | wc -l): $(find "$idir/data" -name '*.tsm' -printf '%s\n' | awk '{ b += $1 } END { printf "%.2f B/reading", b / 1e6 }')"
  echo "  data + wal directories, blocks allocated: $(du -s -B1 "$idir/data" "$idir/wal" | awk '{ b += $1 } END { printf "%.2f B/reading", b / 1e6 }')" \
    "(apparent size $(du -sb "$idir/data" "$idir/wal" | awk '{ b += $1 } END { printf "%.2f", b / 1e6 }'): the series file preallocates)"
  echo "  largest files:"; find "$idir/data" "$idir/wal" -type f -printf '    %s B %P\n' | sort -k1,1 -rn | head -5
}

if [ "$data" = influxd ]; then influxd_bytes; fi
if [ "$data" = ingest ]; then
  start_hub "$db" off; stop_hub   # rebuilds the rollups once
  for k in 0 1 2 3 4 5 6 7 8 9; do
    awk -v t="$t0" -v k="$k" 'BEGIN { for (s = 1; s <= 200; s++) for (n = 0; n < 500; n++)
      printf "s%d value=1.5 %d\n", s, t + (6000 + 500 * k + n) * 10000000 }' > "$dir/fresh$k.lp"
  done
  for mode in off 1d; do
    sqlite3 "$dir/hub.db" ".backup '$dir/$mode.db'"
    start_hub "sqlite://$dir/$mode.db" "$mode" 20ms
    started=$(date +%s.%N)
    for k in 0 1 2 3 4 5 6 7 8 9; do
      curl -sf -o /dev/null -X POST -H "Authorization: Token $device" --data-binary @"$dir/fresh$k.lp" "$url/write?precision=u"
    done
    took=$(awk "BEGIN { print $(date +%s.%N) - $started }")
    done_by=$("$bin" stats --format json --database-url "sqlite://$dir/$mode.db" | grep -o '"compressed_readings":[0-9]*')
    echo "compress_after=$mode: 1,000,000 new readings in $took s = $(awk "BEGIN { printf \"%.0f\", 1e6 / $took }") readings/s; then $done_by of 999,800"
    stop_hub
  done
  exit 0
fi
start_hub "$db" off   # rebuilds the rollups of the rows written above
if [ "$data" = numbers ]; then measure hot; fi
stop_hub
echo "before (1,000,000 rows and their rollups):"; sizes
compress "$db"
echo "after (compressed but each series' newest minute):"; sizes
if [ "$data" = states ]; then
  o=$(overhead)
  echo "per kind (block data, and with each block row's share of the table and its index: $o B a block):"
  per_kind <<SQL
SELECT s.kind, sum(b.n), count(*), CAST(sum(length(b.data)) AS DOUBLE PRECISION) / sum(b.n),
       (sum(length(b.data)) + count(*) * $o) / CAST(sum(b.n) AS DOUBLE PRECISION)
FROM reading_blocks b JOIN series s ON s.id = b.series_id GROUP BY s.kind ORDER BY s.kind;
SQL
  exit 0
fi
[ "$data" = influxd ] && exit 0
start_hub "$db" off
measure compressed
echo "fresh: 100,000 new readings: $(fresh)"
stop_hub
