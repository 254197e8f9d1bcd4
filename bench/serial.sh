#!/usr/bin/env bash
# Serial bridge CPU cost: firmware-sim serial → pty pair (socat) → telehub bridge serial → hub.
# Measures the bridge process's CPU time (utime + stime from /proc/PID/stat) over a steady run
# and checks that every line was stored.
#
# Usage: bench/serial.sh [RATE lines/s, default 230] [SECONDS, default 60]
# 230 lines/s of ~50 bytes is what a 115200-baud line carries (11 520 bytes/s).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-230}
SECS=${2:-60}
WARMUP=3
command -v socat >/dev/null || ./scripts/install-test-deps.sh

cargo build --release -q -p telehub -p firmware-sim
BIN=${CARGO_TARGET_DIR:-target}/release

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS CMD...: poll until CMD succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out: $*" >&2; exit 1; }
    sleep 0.05
  done
}

DB="sqlite://$WORK/telehub.db"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/telehub" serve --listen "127.0.0.1:$PORT" --database-url "$DB" >"$WORK/hub.log" 2>&1 &
PIDS+=($!)
wait_for 20 grep -q "listening" "$WORK/hub.log"
GW=$("$BIN/telehub" device add bench-gw --database-url "$DB")

socat pty,raw,echo=0,link="$WORK/bridge" pty,raw,echo=0,link="$WORK/mcu" 2>/dev/null &
PIDS+=($!)
wait_for 10 test -e "$WORK/bridge" -a -e "$WORK/mcu"

TELEHUB_BRIDGE_TOKEN=$GW "$BIN/telehub" bridge serial --port "$WORK/bridge" --baud 115200 \
  --hub "ws://127.0.0.1:$PORT" --stats-interval 1h >"$WORK/bridge.out" 2>"$WORK/bridge.log" &
BRIDGE=$!
PIDS+=($BRIDGE)
wait_for 10 grep -q "connected to the hub" "$WORK/bridge.log"

"$BIN/firmware-sim" serial --port "$WORK/mcu" --baud 115200 --rate "$RATE" \
  --duration "$((SECS + 2 * WARMUP))s" >"$WORK/sim.out" &
SIM=$!
PIDS+=($SIM)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$BRIDGE/stat"; }
sleep "$WARMUP"
T0=$(date +%s.%N); C0=$(cpu_ticks)
sleep "$SECS"
T1=$(date +%s.%N); C1=$(cpu_ticks)
wait "$SIM"
LINES=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lines"])' "$WORK/sim.out")
kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
HZ=$(getconf CLK_TCK)
python3 - "$C0" "$C1" "$T0" "$T1" "$HZ" "$LINES" "$RATE" "$WORK/bridge.out" <<'PY'
import json, sys
c0, c1, t0, t1, hz, lines, rate, out = sys.argv[1:]
cpu = (int(c1) - int(c0)) / int(hz)
wall = float(t1) - float(t0)
s = json.loads(open(out).read().splitlines()[0])
print(f"rate: {rate} lines/s for {wall:.1f} s measured; lines written {lines}, read {s['lines_read']}, "
      f"bad {sum(s['bad_lines'].values())}, readings forwarded {s['forwarded']}, dropped {s['dropped']}")
print(f"bridge CPU: {cpu:.2f} s over {wall:.1f} s = {100 * cpu / wall:.2f}% of one core")
ok = s["lines_read"] == int(lines) and s["forwarded"] == 3 * int(lines) and not s["bad_lines"]
print("all lines stored: " + ("yes" if ok else "NO"))
sys.exit(0 if ok else 1)
PY
