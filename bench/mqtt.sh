#!/usr/bin/env bash
# MQTT ingest → storage throughput against a plain `mosquitto_sub > /dev/null`.
#
# In each run a private mosquitto is started on a free port; the hub (release build,
# fresh SQLite database, MQTT ingest only) and `mosquitto_sub` subscribe to the same
# ingest topic; DEVICES `mosquitto_pub -l` processes publish MESSAGES messages each
# (READINGS readings per message, protocol.md §2 JSON). The clock starts when publishing starts;
# mosquitto_sub's time ends when it has received every message, the hub's when
# `telehub_mqtt_ingested_total` counts every reading as committed to storage.
# Both receive the same stream at the same time, from the same broker.
#
# Usage: bench/mqtt.sh                         (defaults below; override with env vars)
#        RUNS=5 DEVICES=4 MESSAGES=50000 READINGS=1 QOS=1 bench/mqtt.sh
# Prints one line per run and the medians; exits 1 when the median ratio is < MIN_RATIO (0.9).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-5}"
DEVICES="${DEVICES:-4}"
MESSAGES="${MESSAGES:-50000}"
READINGS="${READINGS:-1}"
QOS="${QOS:-1}"
TIMEOUT="${TIMEOUT:-300}"

for tool in mosquitto mosquitto_sub mosquitto_pub curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/mqtt.sh: $tool is missing (apt-get install mosquitto mosquitto-clients curl python3)" >&2; exit 1; }
done
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin telehub
HUB="$TARGET/release/telehub"

WORK="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }  # wall clock, as the poller below reports it
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# Payloads: one file per device, one protocol.md §2 message per line, distinct timestamps.
python3 - "$WORK" "$DEVICES" "$MESSAGES" "$READINGS" <<'EOF'
import json, sys, time
work, devices, messages, readings = sys.argv[1], *map(int, sys.argv[2:])
base = int(time.time()) - 3600
for d in range(1, devices + 1):
    with open(f"{work}/payload-{d}.txt", "w") as f:
        for m in range(messages):
            rs = [{"sensor": "s%d" % (k % 4), "value": m + k / 10,
                   "ts": base + (m * readings + k) / 1e4} for k in range(readings)]
            f.write(json.dumps({"id": m, "readings": rs}, separators=(",", ":")) + "\n")
EOF

total_msgs=$((DEVICES * MESSAGES))
total_readings=$((total_msgs * READINGS))
results="$WORK/results.txt"
echo "bench/mqtt.sh: $RUNS runs; $DEVICES publishers x $MESSAGES messages x $READINGS readings, QoS $QOS; $(nproc) cores"

for run in $(seq "$RUNS"); do
  dir="$WORK/run-$run"; mkdir -p "$dir"
  bport="$(free_port)"; hport="$(free_port)"
  # As deploy/compose/mosquitto.conf: 1000 QoS 1 messages in flight per subscriber (the
  # hub acknowledges once stored, so this is its window), and no limit on messages queued
  # for a subscriber that is slower for a moment (it gets them later instead of never).
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\nmax_queued_messages 0\n' "$bport" > "$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 & pids+=($!)
  wait_port "$bport"
  cat > "$dir/telehub.toml" <<EOF
[server]
listen = "127.0.0.1:$hport"
[database]
url = "sqlite://$dir/telehub.db"
[mqtt]
url = "mqtt://127.0.0.1:$bport"
publish_topic = ""
ingest_topic = "bench/ingest/+"
ingest_qos = $QOS
# The publishers send their whole backlog at once: let the hub queue that burst
# (a bounded queue drops beyond it; the default, 4096, is sized for steady traffic).
ingest_queue = $((total_msgs + 1000))
[limits]
# Each bench device sends several thousand readings/s, over the default 2,000/s budget.
device_readings_per_second = 1000000
device_burst = 1000000
EOF
  "$HUB" device add --config "$dir/telehub.toml" --count "$DEVICES" --prefix bench- --tokens-out "$dir/tokens.txt" >/dev/null 2>&1
  viewer="$("$HUB" token add bench --role viewer --config "$dir/telehub.toml")"
  RUST_LOG=warn "$HUB" serve --config "$dir/telehub.toml" >"$dir/hub.log" 2>&1 & hub_pid=$!; pids+=($hub_pid)
  wait_port "$hport"
  for _ in $(seq 200); do
    curl -fsS "http://127.0.0.1:$hport/readyz" | grep -q '"subscribed":true' && break; sleep 0.05
  done
  timeout "$TIMEOUT" mosquitto_sub -p "$bport" -t 'bench/ingest/+' -q "$QOS" -C "$total_msgs" >/dev/null & sub_pid=$!; pids+=($sub_pid)
  sleep 0.3  # let mosquitto_sub's SUBSCRIBE reach the broker (it has no "ready" signal)

  # The hub's clock: one process polls its counter every 10 ms from before the start (a
  # poller started afterwards would add its own start-up time to the hub's).
  python3 - "$hport" "$viewer" "$total_readings" "$TIMEOUT" > "$dir/hub-done" <<'EOF' & poll_pid=$!; pids+=($poll_pid)
import sys, time, urllib.request
port, viewer, want, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"authorization": f"Bearer {viewer}"})
deadline, n = time.time() + timeout, 0
while time.time() < deadline:
    for line in urllib.request.urlopen(req).read().decode().splitlines():
        if line.startswith("telehub_mqtt_ingested_total "):
            n = int(float(line.split()[1]))
    if n >= want:
        print(f"{time.time():.6f}")
        sys.exit(0)
    time.sleep(0.01)
print(n)
sys.exit(1)
EOF
  sleep 0.2  # the poller's start-up (python), before the clock starts

  t0="$(now)"
  for d in $(seq "$DEVICES"); do
    mosquitto_pub -p "$bport" -q "$QOS" -t "bench/ingest/bench-$d" -l < "$WORK/payload-$d.txt" & pids+=($!)
  done
  wait "$sub_pid" || { echo "run $run: mosquitto_sub did not receive $total_msgs messages within ${TIMEOUT}s" >&2; exit 1; }
  t_sub="$(now)"
  if ! wait "$poll_pid"; then
    echo "run $run: the hub stored $(cat "$dir/hub-done") of $total_readings readings within ${TIMEOUT}s; its MQTT metrics:" >&2
    curl -fsS -H "authorization: Bearer $viewer" "http://127.0.0.1:$hport/metrics" | grep '^telehub_mqtt' >&2
    tail -n 5 "$dir/hub.log" >&2
    exit 1
  fi
  t_hub="$(cat "$dir/hub-done")"
  kill -TERM "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
  stored="$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from readings').fetchone()[0])" "$dir/telehub.db")"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; pids=(); wait 2>/dev/null || true
  python3 - "$run" "$t0" "$t_sub" "$t_hub" "$total_msgs" "$stored" "$total_readings" <<'EOF' | tee -a "$results"
import sys
run, t0, ts, th, n, stored, want = sys.argv[1], *map(float, sys.argv[2:5]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
sub, hub = n / (ts - t0), n / (th - t0)
assert stored == want, f"stored {stored} readings, expected {want}"
print(f"run {run}: mosquitto_sub {sub:10.0f} msg/s   hub {hub:10.0f} msg/s ({hub * want / n:10.0f} readings/s)   ratio {hub / sub:.3f}")
EOF
done

python3 - "$results" <<'EOF'
import os, re, statistics, sys
pat = re.compile(r"mosquitto_sub\s+(\d+) msg/s\s+hub\s+(\d+) msg/s.*ratio ([\d.]+)")
rows = [tuple(map(float, pat.search(l).groups())) for l in open(sys.argv[1])]
sub, hub, ratio = (statistics.median(c) for c in zip(*rows))
print(f"median of {len(rows)}: mosquitto_sub {sub:.0f} msg/s, hub {hub:.0f} msg/s, ratio {ratio:.3f}")
sys.exit(0 if ratio >= float(os.environ.get("MIN_RATIO", "0.9")) else 1)
EOF
