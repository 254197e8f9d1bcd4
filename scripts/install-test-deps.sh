#!/usr/bin/env bash
# Installs what the tests use, only when missing (fast when everything is present).
set -euo pipefail
# command → Debian package that provides it
declare -A pkg=(
  [socat]=socat
  [chromium]=chromium
  [psql]=postgresql-client
  [mosquitto_sub]=mosquitto-clients
  [mosquitto]=mosquitto
  [sqlite3]=sqlite3
  [curl]=curl
  [influx]=influxdb-client
  [node]=nodejs
  [nginx]=nginx-light
  [openssl]=openssl
)
need=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${pkg[$cmd]}")
done
# npm ships with some nodejs builds (e.g. NodeSource) and is its own package on Debian.
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -f tests/browser/package.json ] && [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --silent)
fi
# The test venv (PEP 668): the official InfluxDB Python clients, the 2.x one for the
# line-protocol tests and the 1.x one (`influxdb`) for `/query`; `aiosmtpd`, the SMTP sink
# of the alert email tests.
if [ ! -x tests/influx/.venv/bin/python ] || ! tests/influx/.venv/bin/python -c 'import influxdb_client, influxdb, aiosmtpd' 2>/dev/null; then
  command -v python3 >/dev/null || { echo "python3 is needed for the InfluxDB client and SMTP tests"; exit 1; }
  python3 -m venv tests/influx/.venv
  tests/influx/.venv/bin/pip install -q --disable-pip-version-check influxdb-client==1.50.0 influxdb==5.3.2 aiosmtpd==1.4.6
fi
if [ ! -d bench/node-broadcast/node_modules/ws ]; then
  (cd bench/node-broadcast && npm ci --no-audit --no-fund --silent)
fi
