// Helpers for the browser tests: the real `telehub` binary (serve, device add) on a
// fresh SQLite database, and a device speaking the ingest protocol over a real
// WebSocket (npm `ws`).

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const BIN = process.env.TELEHUB_BIN;
if (!BIN) throw new Error('TELEHUB_BIN is not set: run the tests through tests/browser/run.sh');

const START_TIMEOUT_MS = 20_000;
const REPLY_TIMEOUT_MS = 10_000;

/** A temporary directory holding a SQLite database; `remove()` deletes it. */
export function freshDatabase() {
  const dir = mkdtempSync(join(tmpdir(), 'telehub-browser-'));
  return { url: `sqlite://${join(dir, 'telehub.db')}`, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Starts `telehub serve` and waits for its two start lines:
 * `telehub listening on http://HOST:PORT ...` and `dashboard: URL`. `extraArgs` go after
 * `serve`'s own (e.g. `['--config', FILE]`).
 */
export async function startHub(dbUrl, listen = '127.0.0.1:0', extraArgs = []) {
  const child = spawn(BIN, ['serve', '--listen', listen, '--database-url', dbUrl, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'telehub=warn' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr = (stderr + c).slice(-4000);
  });
  const started = new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      stdout += c;
      const base = /^telehub listening on (https?:\/\/\S+)/m.exec(stdout)?.[1];
      const dashboard = /^dashboard: (\S+)/m.exec(stdout)?.[1];
      if (base && dashboard) resolve({ base, dashboard });
    });
    child.on('exit', (code) => reject(new Error(`telehub serve exited (${code}) before starting: ${stderr}`)));
  });
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`telehub serve did not start in ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS).unref(),
  );
  let lines;
  try {
    lines = await Promise.race([started, timeout]);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const url = new URL(lines.base);
  return {
    ...lines,
    port: Number(url.port),
    child,
    /** Kills the process at once (SIGKILL: no graceful close frames). */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
  };
}

/** Starts the hub again on a port that was just freed; binding may need a moment. */
export async function restartHub(dbUrl, port) {
  let last;
  for (let i = 0; i < 20; i++) {
    try {
      return await startHub(dbUrl, `127.0.0.1:${port}`);
    } catch (e) {
      last = e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw last;
}

/** `telehub device add NAME`: returns the device's token. */
export function addDevice(dbUrl, name) {
  return execFileSync(BIN, ['device', 'add', name, '--database-url', dbUrl], { encoding: 'utf8' }).trim();
}

/** A device connected to `/v1/ingest`; `send(readings)` resolves with the hub's reply. */
export async function connectDevice(base, token) {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/ingest`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  await once(ws, 'open');
  const waiting = new Map();
  let nextId = 1;
  ws.on('message', (data) => {
    const reply = JSON.parse(String(data));
    const id = reply.ack ?? reply.nack;
    waiting.get(id)?.(reply);
    waiting.delete(id);
    failing.delete(id);
  });
  ws.on('close', (code, reason) => {
    for (const fail of failing.values()) fail(new Error(`the hub closed the device socket (${code} ${reason})`));
  });
  const failing = new Map();
  return {
    ws,
    send(readings) {
      const id = nextId++;
      const reply = new Promise((resolve, reject) => {
        waiting.set(id, resolve);
        failing.set(id, reject);
        setTimeout(() => reject(new Error(`no reply to message ${id} in time`)), REPLY_TIMEOUT_MS).unref();
      });
      ws.send(JSON.stringify({ id, readings }));
      return reply;
    },
    close() {
      ws.terminate();
    },
  };
}

/** Debian's chromium through playwright-core, headless; `extraArgs` are more switches. */
export async function launchBrowser({ extraArgs = [] } = {}) {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', ...extraArgs],
  });
}

/** GET `path` from the hub's HTTP API with `token`; the parsed JSON body. */
export async function apiGet(base, path, token) {
  const res = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

/** Sends `readings` in messages of at most `size` (the hub's frame limit is 64 KiB). */
export async function sendAll(device, readings, size = 300) {
  for (let i = 0; i < readings.length; i += size) {
    const reply = await device.send(readings.slice(i, i + size));
    if (reply.stored !== Math.min(size, readings.length - i)) throw new Error(`not stored: ${JSON.stringify(reply)}`);
  }
}
