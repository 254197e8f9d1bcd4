// The charts over one shared time range (issue 18), in Debian's chromium against the
// real hub: the address opens a view; a drag-zoom on one chart moves the other, with
// one request per chart asking for at most two points per pixel; double-click resets;
// the arrow keys pan; each CSV equals the API's answer for the same range; a copied
// address reproduces the view; SenML units read as people read them. The run writes
// the README's screenshots to docs/screenshots/.
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { addDevice, apiGet, connectDevice, freshDatabase, launchBrowser, sendAll, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };
const SHOTS = join(dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');
const HOUR = 3600e3;

describe('charts over a shared time range', () => {
  let db;
  let hub;
  let browser;
  let page;
  let viewer;
  const devices = [];
  const pageErrors = [];
  let requests = [];

  const card = (sensor) => `.chart-card[data-sensor="${sensor}"]`;
  const cards = () =>
    page.$$eval('.chart-card', (cs) =>
      cs.map((c) => ({
        sensor: c.dataset.sensor,
        from: Number(c.dataset.from),
        to: Number(c.dataset.to),
        loading: c.dataset.loading,
        maxPoints: Number(c.dataset.maxPoints),
        points: Number(c.dataset.points),
        canvasWidth: c.querySelector('canvas').clientWidth,
      })),
    );
  /**
   * Waits until both charts have loaded the same [from, to) within the given bounds:
   * `{from: [lo, hi], to: [lo, hi], span: [lo, hi]}` (Unix ms; each optional).
   */
  const waitForRange = (bounds) =>
    page.waitForFunction(
      (b) => {
        const inside = (v, r) => !r || (v >= r[0] && v <= r[1]);
        const cs = [...document.querySelectorAll('.chart-card')];
        return (
          cs.length === 2 &&
          new Set(cs.map((c) => `${c.dataset.from}-${c.dataset.to}`)).size === 1 &&
          cs.every((c) => {
            const [from, to] = [Number(c.dataset.from), Number(c.dataset.to)];
            return c.dataset.loading === 'false' && inside(from, b.from) && inside(to, b.to) && inside(to - from, b.span);
          })
        );
      },
      bounds,
      WAIT,
    );
  const readingRequests = () => requests.filter((u) => u.pathname === '/v1/readings');

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    viewer = new URL(hub.dashboard).searchParams.get('token');
    const now = Date.now() / 1000;
    for (const [name, sensor, unit, f] of [
      ['boiler-1', 'temperature', 'Cel', (i) => 60 + 10 * Math.sin(i / 40)],
      ['pump-2', 'pressure', 'Pa', (i) => 101_000 + 500 * Math.cos(i / 25)],
    ]) {
      const d = await connectDevice(hub.base, addDevice(db.url, name));
      devices.push(d);
      // Two hours of a reading every 3 s: 2400 readings, more than a chart shows.
      const readings = [];
      for (let i = 0; i < 2400; i++) readings.push({ sensor, value: Math.round(f(i) * 100) / 100, ts: now - 7200 + i * 3, unit });
      await sendAll(d, readings);
    }
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('request', (r) => requests.push(new URL(r.url())));
  });

  after(async () => {
    for (const d of devices) d.close();
    await browser?.close();
    await hub?.kill();
    db?.remove();
  });

  it('opens the view its address asks for', async () => {
    await page.goto(`${hub.dashboard}#device=pump-2&chart=boiler-1/temperature&chart=pump-2/pressure&range=1h`);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    await waitForRange({ span: [HOUR, HOUR] });
    assert.deepEqual((await cards()).map((c) => c.sensor), ['temperature', 'pressure']);
    assert.equal(await page.textContent('#detail-name'), 'pump-2');
    assert.equal(await page.getAttribute('[data-range="1h"]', 'aria-pressed'), 'true');
    assert.ok(!page.url().includes('token'), page.url());
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'dashboard-1280.png') });
  });

  it('zooms every chart when one is dragged across, one request each at ≤ 2 points per pixel', async () => {
    const [before] = await cards();
    requests = [];
    const box = await page.locator(`${card('temperature')} .u-over`).boundingBox();
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    // A quarter of the width is about a quarter of the hour, ending well before now.
    await waitForRange({ span: [HOUR / 6, HOUR / 3], from: [before.from + 1, Infinity] });
    const after = await cards();
    const asked = readingRequests();
    assert.equal(asked.length, 2, `one request per chart: ${asked.map(String).join(' ')}`);
    for (const c of after) {
      const q = asked.find((u) => u.searchParams.get('sensor') === c.sensor).searchParams;
      const maxPoints = Number(q.get('max_points'));
      assert.ok(maxPoints >= 8 && maxPoints <= c.canvasWidth * 2, `${c.sensor}: max_points ${maxPoints} for a ${c.canvasWidth} px canvas`);
      assert.equal(Date.parse(q.get('from')), c.from);
      assert.equal(Date.parse(q.get('to')), c.to);
      assert.ok(c.points > 0 && c.points <= maxPoints, `${c.sensor}: ${c.points} points shown`);
    }
    assert.equal(await page.isDisabled('#range-reset'), false);
    assert.match(page.url(), /from=.*&to=/);
  });

  it('pans with the arrow keys and resets on a double-click', async () => {
    const [zoomed] = await cards();
    const span = zoomed.to - zoomed.from;
    await page.focus(`${card('pressure')} .c-plot`);
    await page.keyboard.press('ArrowLeft');
    const step = Math.round(span / 4);
    await waitForRange({ from: [zoomed.from - step - 1, zoomed.from - step + 1], to: [zoomed.to - step - 1, zoomed.to - step + 1] });
    const box = await page.locator(`${card('pressure')} .u-over`).boundingBox();
    await page.mouse.dblclick(box.x + box.width / 2, box.y + box.height / 2);
    await waitForRange({ span: [HOUR, HOUR], to: [Date.now() - 1000, Infinity] });
    assert.equal(await page.isDisabled('#range-reset'), true);
  });

  it('downloads CSV files equal to the API answer for the same range', async () => {
    // A fixed range: 90 to 30 minutes ago, typed into the picker.
    await page.evaluate(() => {
      const local = (t) => {
        const d = new Date(t - new Date(t).getTimezoneOffset() * 60e3);
        return d.toISOString().slice(0, 19);
      };
      document.querySelector('#range-from').value = local(Date.now() - 90 * 60e3);
      document.querySelector('#range-to').value = local(Date.now() - 30 * 60e3);
    });
    await page.click('#range-form button[type="submit"]');
    await waitForRange({ span: [HOUR - 1000, HOUR + 1000], to: [0, Date.now() - 29 * 60e3] });
    const [temperature] = await cards();
    const download = async (kind) => {
      const [file] = await Promise.all([page.waitForEvent('download', WAIT), page.click(`${card('temperature')} [data-csv="${kind}"]`)]);
      return readFileSync(await file.path(), 'utf8');
    };
    const range = `device=boiler-1&sensor=temperature&from=${new Date(temperature.from).toISOString()}&to=${new Date(temperature.to).toISOString()}`;
    const expect = (points) => ['device,sensor,ts,value,unit', ...points.map((p) => `boiler-1,temperature,${p.ts},${p.value},Cel`), ''].join('\n');

    const shown = await apiGet(hub.base, `/v1/readings?${range}&max_points=${temperature.maxPoints}`, viewer);
    assert.ok(shown.points.length > 100, `${shown.points.length} points`);
    assert.equal(await download('shown'), expect(shown.points));

    const raw = await apiGet(hub.base, `/v1/readings?${range}&limit=10000`, viewer);
    assert.equal(raw.next_cursor, null);
    assert.ok(raw.points.length > shown.points.length, `raw ${raw.points.length} > shown ${shown.points.length}`);
    assert.equal(await download('raw'), expect(raw.points));
  });

  it('reproduces the view from a copied address', async () => {
    const address = page.url();
    const hash = new URL(address).hash;
    assert.ok(!address.includes(viewer), 'the address never holds the token');
    const other = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await other.goto(`${hub.base}/?token=${encodeURIComponent(viewer)}${hash}`);
      await other.waitForFunction(
        (want) => [...document.querySelectorAll('.chart-card')].map((c) => `${c.dataset.sensor}@${c.dataset.from}-${c.dataset.to}`).join() === want,
        (await cards()).map((c) => `${c.sensor}@${c.from}-${c.to}`).join(),
        WAIT,
      );
      assert.equal(await other.textContent('#detail-name'), 'pump-2');
      assert.equal(other.url(), address.replace(/^http:\/\/[^/]+/, hub.base));
    } finally {
      await other.close();
    }
  });

  it('shows SenML units as people read them while the API keeps SenML', async () => {
    await page.click('[data-range="15m"]');
    await devices[0].send([{ sensor: 'temperature', value: 61.5, ts: Date.now() / 1000, unit: 'Cel' }]);
    const chip = '.device[data-device="boiler-1"] .chip[data-sensor="temperature"]';
    await page.waitForFunction((c) => document.querySelector(`${c} .v`)?.textContent === '61.5', chip, WAIT);
    assert.equal(await page.textContent(`${chip} .u`), '°C');
    assert.equal(await page.getAttribute(`${chip} .u`, 'title'), 'SenML unit: Cel');
    await page.waitForFunction((c) => document.querySelector(`${c} .s-last`).textContent === '61.5 °C', card('temperature'), WAIT);
    const list = await apiGet(hub.base, '/v1/devices', viewer);
    assert.equal(list.find((d) => d.name === 'boiler-1').latest.temperature.unit, 'Cel');
    assert.deepEqual(pageErrors, []);
  });

  it('is readable on a 1080p wall screen', async () => {
    await page.setViewportSize({ width: 1920, height: 1080 });
    await page.waitForFunction(() => [...document.querySelectorAll('.chart-card canvas')].every((c) => c.clientWidth > 500), null, WAIT);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.equal(overflow, 0, 'nothing sticks out sideways');
    await page.screenshot({ path: join(SHOTS, 'dashboard-1080p.png') });
  });
});
