// The dashboard resumes its live feed after the socket drops (docs/protocol.md §3, amended):
// the page reaches the hub through a TCP proxy whose connections the test cuts, as a
// lost network would. Readings committed while it is away must arrive once each, in
// order, through `resume`, and the charts must not reload from storage.
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { addDevice, connectDevice, freshDatabase, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };
const RECONNECT_WAIT = { timeout: 60_000 };

/** A TCP proxy to `port`; `cut()` destroys every open connection at once. */
async function proxyTo(port) {
  const open = new Set();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    port: server.address().port,
    cut() {
      for (const s of open) s.destroy();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}

describe('the dashboard after its socket drops', () => {
  let db;
  let hub;
  let proxy;
  let browser;
  let page;
  let device;
  const received = [];
  const sent = [];
  let readingsRequests = 0;
  const pageErrors = [];
  const now = () => Date.now() / 1000;
  const row = '.device[data-device="pump-1"]';
  const waitForLevel = (v) =>
    page.waitForFunction(
      (value) =>
        [...document.querySelectorAll('.device[data-device="pump-1"] .chip')].some(
          (c) => c.querySelector('.k').textContent === 'level' && c.querySelector('.v').textContent === value,
        ),
      String(v),
      WAIT,
    );
  const sendLevels = async (from, to) => {
    const t = now() - 60;
    const readings = [];
    for (let i = from; i < to; i++) readings.push({ sensor: 'level', value: i, ts: t + i * 0.01 });
    const reply = await device.send(readings);
    assert.equal(reply.stored, to - from, JSON.stringify(reply));
  };

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    const token = addDevice(db.url, 'pump-1');
    proxy = await proxyTo(hub.port);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('request', (r) => {
      if (r.url().includes('/v1/readings')) readingsRequests++;
    });
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => received.push(String(f.payload)));
      ws.on('framesent', (f) => sent.push(String(f.payload)));
    });
    const viewer = new URL(hub.dashboard).searchParams.get('token');
    await page.goto(`http://127.0.0.1:${proxy.port}/?token=${encodeURIComponent(viewer)}`);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    device = await connectDevice(hub.base, token);
    await page.waitForSelector(`${row}[data-online="true"]`, WAIT);
  });

  after(async () => {
    device?.close();
    await browser?.close();
    proxy?.close();
    await hub?.kill();
    db?.remove();
  });

  it('resumes without a gap and without reloading its charts', async () => {
    await sendLevels(0, 1);
    await waitForLevel(0);
    await page.click(row);
    await page.click('.tile[data-sensor="level"]');
    await page.waitForSelector('.chart-card[data-sensor="level"][data-loading="false"]', WAIT);
    await sendLevels(1, 10);
    await waitForLevel(9);
    const requestsBefore = readingsRequests;

    proxy.cut();
    await page.waitForSelector('#conn[data-state="reconnecting"]', WAIT);
    // Committed while the page is away.
    await sendLevels(10, 20);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, RECONNECT_WAIT);
    await waitForLevel(19);
    await sendLevels(20, 25);
    await waitForLevel(24);

    const resumes = sent.map((s) => JSON.parse(s)).filter((m) => m.resume);
    assert.equal(resumes.length, 1, `one resume sent: ${sent.join(' | ')}`);
    assert.ok(received.includes('{"resumed":true}'), 'the hub resumed the feed');
    const values = received
      .map((s) => JSON.parse(s))
      .filter((m) => Array.isArray(m.readings))
      .flatMap((m) => m.readings.filter((r) => r.sensor === 'level').map((r) => r.value));
    assert.deepEqual(values, [...Array(25).keys()], 'every reading once, in order, across the drop');
    assert.equal(readingsRequests, requestsBefore, 'charts were not reloaded from storage');
    assert.deepEqual(pageErrors, []);
  });
});
