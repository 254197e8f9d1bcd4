#!/usr/bin/env bash
# Checks the deployment files with the tools this machine has; what cannot be checked
# here is reported as skipped, never as passed.
#   deploy/validate.sh              (builds the hub if target/release/telehub is missing;
#                                    TELEHUB_BIN=path/to/telehub uses that binary)
set -euo pipefail
cd "$(dirname "$0")/.."
pass=0 fail=0 skip=0
ok()   { echo "ok:      $*"; pass=$((pass + 1)); }
bad()  { echo "FAILED:  $*"; fail=$((fail + 1)); }
skip() { echo "skipped: $*"; skip=$((skip + 1)); }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

# 1. nginx: the site inside a minimal nginx.conf in a temporary prefix, with a throwaway
#    certificate at the paths the site names. Installed from Debian when missing (as root).
if ! command -v nginx >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing nginx-light to check the site (apt-get)"
  { apt-get install -y -qq nginx-light openssl || { apt-get update -qq && apt-get install -y -qq nginx-light openssl; }; } >/dev/null 2>&1 || true
fi
if command -v nginx >/dev/null && command -v openssl >/dev/null; then
  mkdir -p "$tmp/nginx/logs" "$tmp/nginx/certs"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=hub.example.com \
    -keyout "$tmp/nginx/certs/key.pem" -out "$tmp/nginx/certs/cert.pem" 2>/dev/null
  sed -e "s#/etc/letsencrypt/live/hub.example.com/fullchain.pem#$tmp/nginx/certs/cert.pem#" \
      -e "s#/etc/letsencrypt/live/hub.example.com/privkey.pem#$tmp/nginx/certs/key.pem#" \
      deploy/nginx/telehub.conf > "$tmp/nginx/site.conf"
  cat > "$tmp/nginx/nginx.conf" <<CONF
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events {}
http {
  access_log off;
  include $tmp/nginx/site.conf;
}
CONF
  if out="$(nginx -t -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>&1)"; then
    ok "nginx -t accepts deploy/nginx/telehub.conf"
  else
    bad "nginx -t: $out"
  fi
else
  skip "nginx -t (install nginx-light and openssl)"
fi

# 2. systemd: the unit and the sysusers file (the binary path is replaced by one that exists).
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/local/bin/telehub#$(command -v true)#" deploy/systemd/telehub.service > "$tmp/telehub.service"
  if out="$(systemd-analyze verify --man=no "$tmp/telehub.service" 2>&1)" && [ -z "$out" ]; then
    ok "systemd-analyze verify deploy/systemd/telehub.service"
  else
    bad "systemd-analyze verify: $out"
  fi
  # The bridge's template unit, verified as one instance.
  sed "s#/usr/local/bin/telehub#$(command -v true)#" deploy/systemd/telehub-bridge@.service > "$tmp/telehub-bridge@ttyUSB0.service"
  if out="$(systemd-analyze verify --man=no "$tmp/telehub-bridge@ttyUSB0.service" 2>&1)" && [ -z "$out" ]; then
    ok "systemd-analyze verify deploy/systemd/telehub-bridge@.service"
  else
    bad "systemd-analyze verify (bridge): $out"
  fi
else
  skip "systemd-analyze verify (not installed)"
fi
if grep -Eq '^u telehub - ".*" /var/lib/telehub -$' deploy/systemd/telehub.sysusers; then
  ok "telehub.sysusers declares the telehub user"
else
  bad "telehub.sysusers: expected a 'u telehub' line"
fi

# 3. The example configuration parses and validates, and the compose environment too.
hub="${TELEHUB_BIN:-${CARGO_TARGET_DIR:-target}/release/telehub}"
[ -x "$hub" ] || cargo build --release --quiet --bin telehub
if out="$("$hub" serve --config deploy/telehub.toml --print-config 2>&1)"; then
  ok "deploy/telehub.toml is a valid configuration"
else
  bad "deploy/telehub.toml: $out"
fi
compose_env=(TELEHUB_SERVER__LISTEN=0.0.0.0:8080 TELEHUB_DATABASE__URL=postgres://telehub:x@postgres:5432/telehub
  TELEHUB_MQTT__URL=mqtt://mosquitto:1883 TELEHUB_MQTT__CLUSTER=true TELEHUB_MQTT__CLEAN_SESSION=true TELEHUB_MQTT__CLIENT_ID=telehub-hub1)
if out="$(env "${compose_env[@]}" "$hub" serve --print-config 2>&1)" && grep -q 'cluster = true' <<<"$out"; then
  ok "the compose hubs' environment is a valid configuration with cluster = true"
else
  bad "compose environment: $out"
fi

# 4. compose.yaml is YAML with the expected services (docker cannot run here).
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  if out="$(docker compose -f deploy/compose/compose.yaml config -q 2>&1)"; then ok "docker compose config"; else bad "docker compose config: $out"; fi
elif python3 -c 'import yaml' 2>/dev/null; then
  if python3 - deploy/compose/compose.yaml <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
assert set(c["services"]) == {"postgres", "mosquitto", "hub1", "hub2"}, c["services"].keys()
for h in ("hub1", "hub2"):
    env = c["services"][h]["environment"]
    assert env["TELEHUB_MQTT__CLUSTER"] == "true" and env["TELEHUB_DATABASE__URL"].startswith("postgres://")
PY
  then ok "compose.yaml parses (YAML, anchors) with postgres, mosquitto and two cluster hubs"
  else bad "compose.yaml"; fi
  skip "docker compose config (no compose plugin on this machine)"
else
  skip "compose.yaml (neither docker compose nor python3-yaml)"
fi

# 5. The compose broker's configuration loads in mosquitto.
if command -v mosquitto >/dev/null; then
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  sed "s/^listener 1883$/listener $port 127.0.0.1/" deploy/compose/mosquitto.conf > "$tmp/mosquitto.conf"
  mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 & mpid=$!
  up=0
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }; sleep 0.1; done
  kill "$mpid" 2>/dev/null || true; wait "$mpid" 2>/dev/null || true
  if [ "$up" = 1 ]; then ok "mosquitto loads deploy/compose/mosquitto.conf"; else bad "mosquitto.conf: $(cat "$tmp/mosquitto.log")"; fi
else
  skip "mosquitto.conf (mosquitto not installed)"
fi

skip "docker build of deploy/Dockerfile (no Docker daemon on this machine)"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
