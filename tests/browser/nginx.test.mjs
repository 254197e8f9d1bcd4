// The shipped nginx site (deploy/nginx/telehub.conf), end to end: Debian's nginx in front
// of a real hub, with a throwaway CA and a certificate it signed; only the certificate
// paths, the ports and the upstream address are changed in the site file. Through it:
// a firmware-sim device over wss://, `telehub tail` over wss://, the dashboard page in
// Chromium (its live socket included), and a Telegraf-size line-protocol write (512 KB).
// `nginx -t` accepts a site that refuses every WebSocket upgrade; only traffic shows it.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { BIN, freshDatabase, launchBrowser, startHub } from './hub.mjs';

const SIM = process.env.FIRMWARE_SIM_BIN;
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
const WAIT = { timeout: 15_000 };
const SITE = resolve(import.meta.dirname, '../../deploy/nginx/telehub.conf');

/** A port that was free a moment ago (nginx cannot report a port 0 bind). */
async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

/** A CA and a certificate for 127.0.0.1/localhost signed by it (openssl CLI). */
function makeCertificates(dir) {
  const run = (args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=telehub test CA', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  writeFileSync(join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.pem']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/** The shipped site with only certificate paths, ports and the upstream changed. */
function siteFor({ cert, key }, httpsPort, httpPort, hubPort) {
  const site = readFileSync(SITE, 'utf8');
  const out = site
    .replaceAll('/etc/letsencrypt/live/hub.example.com/fullchain.pem', cert)
    .replaceAll('/etc/letsencrypt/live/hub.example.com/privkey.pem', key)
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${hubPort};`)
    .replace(/listen 443 ssl;\n\s*listen \[::\]:443 ssl;/, `listen 127.0.0.1:${httpsPort} ssl;`)
    .replace(/listen 80;\n\s*listen \[::\]:80;/, `listen 127.0.0.1:${httpPort};`);
  for (const [what, changed] of [['certificate', !out.includes('/etc/letsencrypt')], ['listen 443', !out.includes('listen 443')],
    ['listen 80', !out.includes('listen 80')], ['upstream', out.includes(`127.0.0.1:${hubPort}`)]]) {
    assert.ok(changed, `the test could not rewrite the site's ${what}: has deploy/nginx/telehub.conf changed shape?`);
  }
  return out;
}

/** nginx in the foreground with its own prefix; resolves once it accepts connections. */
async function startNginx(dir, site) {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'site.conf'), site);
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  writeFileSync(join(dir, 'nginx.conf'), `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  include ${dir}/site.conf;
}
`);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => { stderr += c; });
  const exited = once(child, 'exit').then(([code]) => { throw new Error(`nginx exited (${code}): ${stderr}`); });
  let done = false;
  // nginx writes its pid file once its sockets are bound.
  const up = new Promise((resolveUp) => {
    const poll = () => {
      if (done) return;
      try {
        if (readFileSync(join(dir, 'nginx.pid'), 'utf8').trim()) return resolveUp();
      } catch {}
      setTimeout(poll, 50).unref();
    };
    poll();
  });
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`nginx did not start: ${stderr}`)), 10_000).unref());
  try {
    await Promise.race([up, exited, timeout]);
  } finally {
    done = true;
    exited.catch(() => {});
  }
  return {
    /** SIGTERM: the master stops its workers (which hold our stderr pipe) and exits. */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/** Runs a command to completion; resolves with its stdout, rejects on a nonzero exit. */
function run(cmd, args, timeoutMs = 60_000) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr = (stderr + c).slice(-4000); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd} timed out: ${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolveRun(stdout);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

describe('the shipped nginx site in front of a hub', () => {
  let dir;
  let db;
  let hub;
  let nginx;
  let base;
  let certs;
  let viewer;
  let browser;
  const tokens = {};

  before(async () => {
    assert.ok(SIM, 'FIRMWARE_SIM_BIN is not set: run through tests/browser/run.sh');
    dir = mkdtempSync(join(tmpdir(), 'telehub-nginx-'));
    certs = makeCertificates(dir);
    db = freshDatabase();
    for (let attempt = 0; ; attempt++) {
      const httpsPort = await freePort();
      const httpPort = await freePort();
      base = `https://127.0.0.1:${httpsPort}`;
      // The dashboard's origin is nginx's, not the hub's own (deploy/README.md says so).
      const config = join(dir, 'telehub.toml');
      writeFileSync(config, `[server]\nallowed_origins = ["${base}"]\n`);
      await hub?.kill();
      hub = await startHub(db.url, '127.0.0.1:0', ['--config', config]);
      try {
        nginx = await startNginx(join(dir, `nginx-${attempt}`), siteFor(certs, httpsPort, httpPort, hub.port));
        break;
      } catch (e) {
        // Another process took the probed port in between: probe again (a few times).
        if (attempt >= 4 || !/Address already in use/.test(String(e))) throw e;
      }
    }
    viewer = new URL(hub.dashboard).searchParams.get('token');
    assert.ok(viewer, `the first start prints a viewer token: ${hub.dashboard}`);
    const file = join(dir, 'tokens.txt');
    execFileSync(BIN, ['device', 'add', '--count', '2', '--prefix', 'edge-', '--tokens-out', file, '--database-url', db.url]);
    for (const line of readFileSync(file, 'utf8').trim().split('\n')) {
      const [name, token] = line.split(' ');
      tokens[name] = token;
    }
    tokens.file = file;
  });

  after(async () => {
    await browser?.close();
    await nginx?.stop();
    await hub?.kill();
    db?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** GET through nginx with the viewer token, trusting only the test CA. */
  const apiGet = async (path) => JSON.parse(await run('curl', ['-sS', '--fail-with-body', '--cacert', certs.ca,
    '-H', `Authorization: Bearer ${viewer}`, `${base}${path}`]));

  it('streams to telehub tail while a firmware-sim device sends over wss://, every reading acked', async () => {
    const tail = spawn(BIN, ['tail', '--server', base, '--token', viewer, '--ca', certs.ca, 'edge-1/*'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let tailOut = '';
    let tailErr = '';
    tail.stdout.on('data', (c) => { tailOut += c; });
    const connected = new Promise((ok, fail) => {
      tail.stderr.on('data', (c) => {
        tailErr += c;
        if (tailErr.includes('tail: connected to')) ok();
      });
      tail.on('exit', (code) => fail(new Error(`tail exited (${code}): ${tailErr}`)));
      setTimeout(() => fail(new Error(`tail did not connect through nginx: ${tailErr}`)), 15_000).unref();
    });
    /** Waits until tail has printed `n` lines for `key` (`edge-1/SENSOR `). */
    const tailLines = async (key, n) => {
      const deadline = Date.now() + 10_000;
      const count = () => tailOut.split('\n').filter((l) => l.includes(` ${key} `)).length;
      while (count() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return count();
    };
    try {
      await connected;
      // One reading before the simulator starts: once tail shows it, its subscription is live.
      const probe = new WebSocket(`${base.replace('https', 'wss')}/v1/ingest`, {
        headers: { Authorization: `Bearer ${tokens['edge-1']}` },
        ca: readFileSync(certs.ca),
      });
      await once(probe, 'open');
      const acked = once(probe, 'message');
      probe.send(JSON.stringify({ id: 1, readings: [{ sensor: 'probe', value: 1 }] }));
      assert.deepEqual(JSON.parse(String((await acked)[0])), { ack: 1, stored: 1 });
      probe.close();
      assert.equal(await tailLines('edge-1/probe', 1), 1, `tail shows the probe reading:\n${tailOut}\n${tailErr}`);

      const out = await run(SIM, ['run', '--hub', base.replace('https', 'wss'), '--tokens', tokens.file, '--ca-file', certs.ca,
        '--rate', '5', '--batch', '10', '--duration', '2s', '--backoff-max', '1s']);
      const summary = JSON.parse(out.trim().split('\n').pop());
      assert.ok(summary.generated > 0, `the simulator generated readings: ${out}`);
      assert.equal(summary.acked, summary.generated, `every reading acked through nginx: ${out}`);
      assert.equal(summary.nacked, 0);
      assert.equal(summary.reconnects, 0, `no reconnects (a refused upgrade retries): ${out}`);
      // Every temperature reading of edge-1 that the hub stored reached tail, once.
      const stored = await apiGet('/v1/readings?device=edge-1&sensor=temperature&from=-1h&limit=10000');
      assert.ok(stored.points.length > 0, 'edge-1 stored temperature readings');
      const shown = await tailLines('edge-1/temperature', stored.points.length);
      assert.equal(shown, stored.points.length, `tail showed each stored reading once:\n${tailOut.slice(-2000)}`);
    } finally {
      tail.kill('SIGKILL');
    }
  });

  it('serves the dashboard page in Chromium and its live socket gets new readings', async () => {
    browser = await launchBrowser({ extraArgs: ['--ignore-certificate-errors'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
    await page.goto(`${base}/?token=${viewer}`);
    await page.waitForFunction(() => document.querySelector('#conn-text')?.textContent === 'live', null, WAIT);
    await page.waitForSelector('.device[data-device="edge-2"]', WAIT);
    // A reading sent now, over a device socket through nginx, appears on the page live.
    const ws = new WebSocket(`${base.replace('https', 'wss')}/v1/ingest`, {
      headers: { Authorization: `Bearer ${tokens['edge-2']}` },
      ca: readFileSync(certs.ca),
    });
    await once(ws, 'open');
    const reply = once(ws, 'message');
    ws.send(JSON.stringify({ id: 1, readings: [{ sensor: 'nginx_probe', value: 4242.5 }] }));
    assert.deepEqual(JSON.parse(String((await reply)[0])), { ack: 1, stored: 1 });
    ws.close();
    await page.waitForFunction(
      () => [...document.querySelectorAll('.device[data-device="edge-2"] .chip')].some(
        (c) => c.querySelector('.k')?.textContent === 'nginx_probe' && c.querySelector('.v')?.textContent === '4242.5'),
      null,
      WAIT,
    );
  });

  it('takes a 512 KB line-protocol write (a Telegraf-size batch)', async () => {
    const now = BigInt(Date.now()) * 1_000_000n;
    const pad = 'x'.repeat(250);
    const lines = [];
    for (let i = 0; i < 2_000; i++) {
      // `note` is a tag the hub ignores; it makes the body as large as a real batch.
      lines.push(`bearing,note=${pad} value=${(i / 10).toFixed(1)} ${now - BigInt(i) * 1_000_000_000n}`);
    }
    const body = join(dir, 'batch.lp');
    writeFileSync(body, `${lines.join('\n')}\n`);
    assert.ok(readFileSync(body).length >= 512 * 1024, 'the batch is at least 512 KB');
    const status = await run('curl', ['-sS', '-o', join(dir, 'write-answer.txt'), '-w', '%{http_code}', '--cacert', certs.ca,
      '-H', `Authorization: Token ${tokens['edge-1']}`, '--data-binary', `@${body}`,
      `${base}/api/v2/write?bucket=plant&precision=ns`]);
    assert.equal(status.trim(), '204', readFileSync(join(dir, 'write-answer.txt'), 'utf8'));
    const stored = await apiGet('/v1/readings?device=edge-1&sensor=bearing&from=-1h&limit=10000');
    assert.equal(stored.points.length, 2_000);
  });
});
