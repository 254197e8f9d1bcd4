// The dashboard in a real browser (Debian's chromium through playwright-core) against
// the real hub binary: a device streams over a real WebSocket, the page must show it
// live, chart it, survive a hub restart, and render device-provided text as text.
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { addDevice, connectDevice, freshDatabase, restartHub, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };
const RECONNECT_WAIT = { timeout: 60_000 };

describe('the dashboard', () => {
  let db;
  let hub;
  let browser;
  let page;
  let device;
  let token;
  let viewerToken;
  const pageErrors = [];
  const consoleText = [];

  const row = (name) => `.device[data-device="${name}"]`;
  /** Waits until a device's row shows `value` for `sensor` (and `unit`, when given). */
  const waitForChip = (device, sensor, value, unit = null) =>
    page.waitForFunction(
      ([d, s, v, u]) =>
        [...document.querySelectorAll(`.device[data-device="${d}"] .chip`)].some(
          (c) =>
            c.querySelector('.k').textContent === s &&
            c.querySelector('.v').textContent === v &&
            (u === null || c.querySelector('.u').textContent === u),
        ),
      [device, sensor, value, unit],
      WAIT,
    );
  const chartPoints = async (sensor) =>
    Number(await page.getAttribute(`.chart-card[data-sensor="${sensor}"]`, 'data-points'));
  const now = () => Date.now() / 1000;

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    token = addDevice(db.url, 'boiler-1');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => consoleText.push(m.text()));
  });

  after(async () => {
    device?.close();
    await browser?.close();
    await hub?.kill();
    db?.remove();
  });

  it('takes the token out of the address bar and goes live', async () => {
    viewerToken = new URL(hub.dashboard).searchParams.get('token');
    assert.ok(viewerToken, `the first start prints a dashboard URL with a token: ${hub.dashboard}`);
    await page.goto(hub.dashboard);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    assert.ok(!page.url().includes('token'), `address bar still holds the token: ${page.url()}`);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('telehub.token')), viewerToken);
    // The device exists (added by the CLI) but has never connected.
    await page.waitForSelector(`${row('boiler-1')}[data-online="false"]`, WAIT);
  });

  it('shows a device coming online and its latest value with the unit', async () => {
    device = await connectDevice(hub.base, token);
    // The status frame proves the page's subscription is in place before readings flow.
    await page.waitForSelector(`${row('boiler-1')}[data-online="true"]`, WAIT);
    const reply = await device.send([{ sensor: 'temperature', value: 21.5, ts: now() - 2, unit: 'Cel' }]);
    assert.deepEqual(reply, { ack: 1, stored: 1 });
    // SenML `Cel` reads as °C; the title keeps what the device sent.
    await waitForChip('boiler-1', 'temperature', '21.5', '°C');
    assert.equal(await page.getAttribute(`${row('boiler-1')} .chip[data-sensor="temperature"] .u`, 'title'), 'SenML unit: Cel');
    await page.waitForFunction(() => document.querySelector('#counts').textContent === '1 of 1 online', null, WAIT);
  });

  it('charts a sensor from history, then appends live readings', async () => {
    await page.click(row('boiler-1'));
    await page.click('.tile[data-sensor="temperature"]');
    const card = '.chart-card[data-sensor="temperature"]';
    await page.waitForSelector(`${card}[data-loading="false"]`, WAIT);
    await page.waitForFunction((c) => Number(document.querySelector(c).dataset.points) >= 1, card, WAIT);
    for (let i = 0; i < 3; i++) {
      await device.send([{ sensor: 'temperature', value: 22 + i, ts: now() - 1 + i * 0.6 }]);
    }
    await page.waitForFunction((c) => Number(document.querySelector(c).dataset.points) >= 4, card, WAIT);
    // The line is really drawn: count pixels in the accent colour.
    const accentPixels = await page.$eval(`${card} canvas`, (canvas) => {
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (Math.abs(data[i] - 0x4c) < 40 && Math.abs(data[i + 1] - 0xb3) < 40 && data[i + 2] > 200) n++;
      }
      return n;
    });
    assert.ok(accentPixels > 30, `only ${accentPixels} line pixels on the canvas`);
    // Text is refreshed at most every 100 ms: wait for it rather than read it once.
    await waitForChip('boiler-1', 'temperature', '24');
  });

  it('shows "reconnecting" when the hub dies and goes live again when it is back', async () => {
    const pointsBefore = await chartPoints('temperature');
    await hub.kill();
    await page.waitForFunction(
      () => /^reconnecting in \d+ s…$/.test(document.querySelector('#conn-text').textContent),
      null,
      WAIT,
    );
    await page.waitForSelector('#conn[data-state="reconnecting"]', WAIT);
    hub = await restartHub(db.url, hub.port);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, RECONNECT_WAIT);
    device.close();
    device = await connectDevice(hub.base, token);
    await page.waitForSelector(`${row('boiler-1')}[data-online="true"]`, WAIT);
    await device.send([{ sensor: 'temperature', value: 23.25, ts: now(), unit: 'Cel' }]);
    await waitForChip('boiler-1', 'temperature', '23.25', '°C');
    const card = '.chart-card[data-sensor="temperature"]';
    try {
      await page.waitForFunction(
        ([c, n]) => Number(document.querySelector(c).dataset.points) > n,
        [card, pointsBefore],
        WAIT,
      );
    } catch (e) {
      // Say what the chart shows, so a failure explains itself.
      const state = await page.$eval(card, (el) => ({
        points: el.dataset.points,
        loading: el.dataset.loading,
        info: el.querySelector('.c-info')?.textContent,
      }));
      throw new Error(`chart did not grow past ${pointsBefore} points: ${JSON.stringify(state)}; ${e.message}`);
    }
  });

  it('shows a unit containing HTML literally, as text', async () => {
    const unit = '<b>x</b><img>';
    await device.send([{ sensor: 'label', value: 7, ts: now(), unit }]);
    await page.waitForFunction(
      (u) => document.querySelector('.tile[data-sensor="label"] .u')?.textContent === u,
      unit,
      WAIT,
    );
    await waitForChip('boiler-1', 'label', '7', unit);
    assert.equal(await page.$$eval('#device-list b, #device-list img, #sensor-tiles b, #sensor-tiles img', (e) => e.length), 0);
    assert.ok((await page.innerText(row('boiler-1'))).includes(unit));
  });

  it('never logs the token and raises no page errors', () => {
    assert.deepEqual(pageErrors, []);
    for (const t of [viewerToken, token].filter(Boolean)) {
      assert.ok(!consoleText.some((m) => m.includes(t)), 'a token appeared in the console');
    }
  });
});
