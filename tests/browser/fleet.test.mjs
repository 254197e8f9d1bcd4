// A large fleet (issue 18): 10,000 devices in the list while 500 readings/s stream in
// (100 devices, 5 readings/s each, over real WebSockets) and the list is scrolled. The
// page must keep only the rows in view in the document, and its own work per frame
// must stay within a 60 Hz frame: p95 ≤ 16 ms.
//
// What is measured, in the page (performance.now()), per animation frame: the time of
// every task the page's own code runs — its requestAnimationFrame callbacks (with the
// style and layout they cause, forced inside the measurement by reading a layout
// property at the end), its WebSocket message handlers and its timers — summed from one
// frame callback to the next. Wall-clock gaps between frames are not used: on a shared
// 2-core machine they mostly measure the other processes (the hub, this test, other
// builds), not the page.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, connectDevice, freshDatabase, launchBrowser, startHub } from './hub.mjs';

const WAIT = { timeout: 60_000 };
const DEVICES = 10_000;
const STREAMING = 100;
const PER_DEVICE_HZ = 5;
const MEASURE_MS = 10_000;

/** Installed before the page's scripts: times the page's own tasks per frame. */
function meter() {
  const frames = [];
  let work = 0;
  const timed = (fn) =>
    function timedTask(...args) {
      const t0 = performance.now();
      try {
        return fn.apply(this, args);
      } finally {
        work += performance.now() - t0;
      }
    };
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (cb) =>
    raf((ts) => {
      const t0 = performance.now();
      try {
        cb(ts);
      } finally {
        void document.body.offsetHeight; // style and layout now, inside the measurement
        if (window.__measure) frames.push(work + performance.now() - t0);
        work = 0;
      }
    });
  for (const name of ['setInterval', 'setTimeout']) {
    const orig = window[name].bind(window);
    window[name] = (fn, ...rest) => orig(typeof fn === 'function' ? timed(fn) : fn, ...rest);
  }
  const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', {
    get() {
      return desc.get.call(this);
    },
    set(fn) {
      desc.set.call(this, timed(fn));
    },
  });
  window.__frames = frames;
  window.__nextFrame = () => new Promise((resolve) => raf(() => resolve()));
}

describe('a fleet of 10,000 devices', () => {
  let db;
  let hub;
  let browser;
  let dir;
  const streams = [];
  const timers = [];
  let acked = 0;

  before(async () => {
    db = freshDatabase();
    dir = mkdtempSync(join(tmpdir(), 'telehub-fleet-'));
    const tokensFile = join(dir, 'tokens.txt');
    execFileSync(BIN, ['device', 'add', '--count', String(DEVICES), '--prefix', 'unit-', '--tokens-out', tokensFile, '--database-url', db.url]);
    const tokens = readFileSync(tokensFile, 'utf8').trim().split('\n').map((l) => l.split(' '));
    assert.equal(tokens.length, DEVICES);
    hub = await startHub(db.url);
    // 100 devices spread over the whole list.
    for (let i = 0; i < STREAMING; i++) streams.push(await connectDevice(hub.base, tokens[i * (DEVICES / STREAMING)][1]));
    browser = await launchBrowser();
  });

  after(async () => {
    for (const t of timers) clearInterval(t);
    for (const s of streams) s.close();
    await browser?.close();
    await hub?.kill();
    db?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps p95 page work per frame ≤ 16 ms with 500 readings/s streaming and the list scrolling', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.addInitScript(meter);
    await page.goto(hub.dashboard);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    await page.waitForFunction((n) => document.querySelector('#counts').textContent.endsWith(`of ${n} online`), DEVICES, WAIT);

    let value = 0;
    for (const s of streams) {
      timers.push(
        setInterval(() => {
          s.send([{ sensor: 'temperature', value: 20 + (value++ % 100) / 10, unit: 'Cel' }]).then(
            () => acked++,
            () => {},
          );
        }, 1000 / PER_DEVICE_HZ),
      );
    }
    await page.waitForFunction((n) => document.querySelector('#counts').textContent === `${n} of 10000 online`, STREAMING, WAIT);

    // Measure while readings stream and the list scrolls from top to bottom and back.
    await page.evaluate(() => {
      window.__frames.length = 0;
      window.__measure = true;
    });
    const ackedBefore = acked;
    const started = Date.now();
    await page.hover('#device-list');
    while (Date.now() - started < MEASURE_MS) {
      const down = Math.floor((Date.now() - started) / 2500) % 2 === 0;
      await page.mouse.wheel(0, down ? 2400 : -2400);
      await page.evaluate(() => window.__nextFrame());
    }
    const elapsed = Date.now() - started;
    const frames = await page.evaluate(() => {
      window.__measure = false;
      return [...window.__frames];
    });
    const rate = ((acked - ackedBefore) / elapsed) * 1000;
    const rows = await page.$$eval('#device-list .device:not([hidden])', (r) => r.length);

    frames.sort((a, b) => a - b);
    const pct = (p) => frames[Math.min(frames.length - 1, Math.floor((p / 100) * frames.length))];
    const report = `${frames.length} frames: median ${pct(50).toFixed(2)} ms, p95 ${pct(95).toFixed(2)} ms, max ${frames[frames.length - 1].toFixed(2)} ms; ${rate.toFixed(0)} readings/s acked; ${rows} rows in the document`;
    console.log(`fleet: ${report}`);
    assert.ok(rate >= 450, `the devices streamed ${rate.toFixed(0)} readings/s, not 500: ${report}`);
    assert.ok(frames.length >= 100, `too few frames measured: ${report}`);
    assert.ok(rows > 5 && rows < 80, `only the rows in view exist: ${report}`);
    assert.ok(pct(95) <= 16, report);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });
});
