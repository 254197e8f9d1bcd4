// States in a real browser (Debian's chromium through playwright-core) against the real
// hub binary: a freezer sends a boolean `door` and a string `mode` over a real WebSocket;
// the device list and the tiles show the current state, and the charts are state
// timelines — bands with the right states and times (the canvas's band list), a legend,
// the state's text on hover, live readings starting and extending bands — loaded
// from the history API without averaging — over the one time range every chart shows
// (a zoom on a line chart or a timeline moves them all).
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { addDevice, connectDevice, freshDatabase, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };

describe('states on the dashboard', () => {
  let db;
  let hub;
  let browser;
  let page;
  let device;
  const pageErrors = [];
  const historyUrls = [];
  // Whole seconds, so the times the page shows are exactly the ones sent.
  const T = Math.floor(Date.now() / 1000);

  const row = '.device[data-device="freezer-1"]';
  const card = (sensor) => `.chart-card[data-sensor="${sensor}"]`;
  /** Waits until `selector`'s text is `text`. */
  const waitForText = (selector, text) =>
    page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent === t, [selector, text], WAIT);
  /** The value element of `sensor`'s chip in the device list. */
  const chip = (sensor) => `${row} .chip[data-sensor="${sensor}"] .v`;
  const waitForChip = (sensor, text) => waitForText(chip(sensor), text);
  /** The bands a timeline lists: [state, from ms, to ms or null]. */
  const bands = (sensor) =>
    page.$$eval(`${card(sensor)} .tl-bands li`, (items) =>
      items.map((li) => [li.dataset.state, Number(li.dataset.from), li.dataset.to ? Number(li.dataset.to) : null]),
    );
  const waitForBands = async (sensor, expected) => {
    try {
      await page.waitForFunction(
        ([c, n]) => document.querySelectorAll(`${c} .tl-bands li`).length === n,
        [card(sensor), expected.length],
        WAIT,
      );
    } finally {
      assert.deepEqual(await bands(sensor), expected);
    }
  };
  /** Hovers the timeline of `sensor` at time `t` (ms); returns the tip's text. */
  const hoverAt = async (sensor, t) => {
    const canvas = page.locator(`${card(sensor)} canvas`);
    const box = await canvas.boundingBox();
    const now = await page.evaluate(() => Date.now());
    const x = box.x + 8 + ((t - (now - 900e3)) / 900e3) * (box.width - 16);
    const tip = `${card(sensor)} .tl-tip`;
    // Leave the canvas first: a tip still showing from an earlier hover would otherwise
    // satisfy the wait below before the redraw for this position has run.
    await page.mouse.move(box.x - 20, box.y - 20);
    await page.waitForSelector(`${tip}[hidden]`, { ...WAIT, state: 'attached' });
    await page.mouse.move(x, box.y + 20);
    await page.waitForSelector(`${tip}:not([hidden])`, WAIT);
    return page.textContent(tip);
  };
  const clock = (ms) => page.evaluate((t) => new Date(t).toTimeString().slice(0, 8), ms);

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    const token = addDevice(db.url, 'freezer-1');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('request', (r) => {
      if (r.url().includes('/v1/readings')) historyUrls.push(r.url());
    });
    await page.goto(hub.dashboard);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    device = await connectDevice(hub.base, token);
    await page.waitForSelector(`${row}[data-online="true"]`, WAIT);
    const reply = await device.send([
      { sensor: 'door', value: false, ts: T - 600 },
      { sensor: 'door', value: false, ts: T - 500 },
      { sensor: 'door', value: true, ts: T - 400 },
      { sensor: 'door', value: false, ts: T - 200 },
      { sensor: 'door', value: false, ts: T - 100 },
      { sensor: 'mode', value: 'cooling', ts: T - 600 },
      { sensor: 'mode', value: 'defrost', ts: T - 300 },
      { sensor: 'mode', value: 'defrost', ts: T - 60 },
      { sensor: 'temperature', value: -18.5, ts: T - 60, unit: 'Cel' },
    ]);
    assert.deepEqual(reply, { ack: 1, stored: 9 });
  });

  after(async () => {
    device?.close();
    await browser?.close();
    await hub?.kill();
    db?.remove();
  });

  it('shows the current states in the device list and on the tiles', async () => {
    await waitForChip('door', 'closed');
    await waitForChip('mode', 'defrost');
    await waitForChip('temperature', '-18.5');
    assert.equal(await page.getAttribute(chip('door'), 'data-on'), 'false');
    assert.equal(await page.getAttribute(chip('mode'), 'class'), 'v state');
    assert.equal(await page.getAttribute(chip('temperature'), 'class'), 'v');
    await page.click(row);
    await waitForText('.tile[data-sensor="door"] .v', 'closed');
    await waitForText('.tile[data-sensor="mode"] .v', 'defrost');
  });

  it('draws a boolean sensor as a timeline of its changes, loaded without averaging', async () => {
    await page.click('.tile[data-sensor="door"]');
    await page.waitForSelector(`${card('door')}[data-loading="false"]`, WAIT);
    assert.equal(await page.getAttribute(card('door'), 'data-kind'), 'boolean');
    const ms = (s) => (T + s) * 1000;
    await waitForBands('door', [
      ['closed', ms(-600), ms(-400)],
      ['open', ms(-400), ms(-200)],
      ['closed', ms(-200), null],
    ]);
    assert.equal(await page.getAttribute(card('door'), 'data-points'), '3');
    const legend = await page.$$eval(`${card('door')} .tl-legend li`, (l) => l.map((e) => e.dataset.state));
    assert.deepEqual(legend, ['closed', 'open']);
    assert.equal(await page.textContent(`${card('door')} .c-info`), 'every change');
    const door = historyUrls.filter((u) => u.includes('sensor=door'));
    assert.ok(door.length > 0 && door.every((u) => u.includes('max_points=') && !u.includes('agg=')), door.join('\n'));
    // The bands are really drawn: pixels in the "open" and the "closed" colours.
    const pixels = await page.$eval(`${card('door')} canvas`, (canvas) => {
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const n = { open: 0, closed: 0 };
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        if (r === 0xf0 && g === 0xb4 && b === 0x29) n.open++;
        if (r === 0x8a && g === 0x98 && b === 0xa8) n.closed++;
      }
      return n;
    });
    assert.ok(pixels.open > 500 && pixels.closed > 500, JSON.stringify(pixels));
  });

  it('names the state and its times on hover', async () => {
    const text = await hoverAt('door', (T - 300) * 1000);
    assert.equal(text, `open · ${await clock((T - 400) * 1000)} – ${await clock((T - 200) * 1000)} (3 min)`);
    assert.equal(await page.getAttribute(`${card('door')} .tl-tip`, 'data-state'), 'open');
  });

  it('starts a band with a live change and extends it with live repeats', async () => {
    const ms = (s) => (T + s) * 1000;
    await device.send([{ sensor: 'door', value: true, ts: T - 90 }]);
    await waitForChip('door', 'open');
    await waitForText('.tile[data-sensor="door"] .v', 'open');
    assert.equal(await page.getAttribute(chip('door'), 'data-on'), 'true');
    await waitForBands('door', [
      ['closed', ms(-600), ms(-400)],
      ['open', ms(-400), ms(-200)],
      ['closed', ms(-200), ms(-90)],
      ['open', ms(-90), null],
    ]);
    const since = `open · since ${await clock(ms(-90))}`;
    const tip = await hoverAt('door', ms(-45));
    assert.ok(tip.startsWith(since) && tip.endsWith(`last reported ${await clock(ms(-90))}`), tip);
    await device.send([{ sensor: 'door', value: true, ts: T - 80 }]);
    const reported = `last reported ${await clock(ms(-80))}`;
    await page.waitForFunction(
      ([c, a, b]) => {
        const text = document.querySelector(`${c} .tl-tip`).textContent;
        return text.startsWith(a) && text.endsWith(b);
      },
      [card('door'), since, reported],
      WAIT,
    );
    assert.equal((await bands('door')).length, 4, 'a repeat extends the band, it starts none');
  });

  it('draws a string sensor as a timeline with a colour per state', async () => {
    await page.click('.tile[data-sensor="mode"]');
    await page.waitForSelector(`${card('mode')}[data-loading="false"]`, WAIT);
    assert.equal(await page.getAttribute(card('mode'), 'data-kind'), 'string');
    const ms = (s) => (T + s) * 1000;
    await waitForBands('mode', [
      ['cooling', ms(-600), ms(-300)],
      ['defrost', ms(-300), null],
    ]);
    const legend = await page.$$eval(`${card('mode')} .tl-legend li`, (l) =>
      l.map((e) => [e.dataset.state, e.querySelector('.sw').style.background]),
    );
    assert.deepEqual(
      legend.map(([s]) => s),
      ['cooling', 'defrost'],
    );
    assert.notEqual(legend[0][1], legend[1][1], 'each state has its own colour');
    const text = await hoverAt('mode', ms(-450));
    assert.equal(text, `cooling · ${await clock(ms(-600))} – ${await clock(ms(-300))} (5 min)`);
    const mode = historyUrls.filter((u) => u.includes('sensor=mode'));
    assert.ok(mode.length > 0 && mode.every((u) => u.includes('max_points=') && !u.includes('agg=')), mode.join('\n'));
  });

  it('shows a string state containing HTML literally, as text', async () => {
    const text = '<b>x</b><img src=x>';
    await device.send([{ sensor: 'mode', value: text, ts: Math.floor(Date.now() / 1000) }]);
    await waitForChip('mode', text);
    await waitForText('.tile[data-sensor="mode"] .v', text);
    await page.waitForFunction(
      ([c, t]) => [...document.querySelectorAll(`${c} .tl-legend li`)].some((li) => li.dataset.state === t),
      [card('mode'), text],
      WAIT,
    );
    const markup = '#device-list b, #device-list img, #sensor-tiles b, #sensor-tiles img, #charts b, #charts img';
    assert.equal(await page.$$eval(markup, (e) => e.length), 0);
  });

  it('follows the shared range: a zoom on a line chart zooms the timelines, a drag on a timeline the line chart, and back', async () => {
    const ms = (s) => (T + s) * 1000;
    const sensors = ['temperature', 'door', 'mode'];
    const rangeOf = (sensor) => page.$eval(card(sensor), (c) => [Number(c.dataset.from), Number(c.dataset.to)]);
    /**
     * Waits until every chart has loaded one range whose span is within [lo, hi] ms: the
     * same [from, to) for a fixed range; a live one ends at "now" when each chart draws.
     */
    const waitForOneRange = (lo, hi, live = false) =>
      page.waitForFunction(
        ([ss, l, h, lv]) => {
          const cs = ss.map((s) => document.querySelector(`.chart-card[data-sensor="${s}"]`));
          const [from, to] = [Number(cs[0].dataset.from), Number(cs[0].dataset.to)];
          return cs.every((c) => {
            const [f, t] = [Number(c.dataset.from), Number(c.dataset.to)];
            const same = lv ? t - f === to - from && Math.abs(t - to) < 2000 : f === from && t === to;
            return c.dataset.loading === 'false' && same && t - f >= l && t - f <= h;
          });
        },
        [sensors, lo, hi, live],
        WAIT,
      );
    /** The history requests made since `since` (an index into historyUrls) for `sensor`. */
    const asked = (since, sensor) =>
      historyUrls
        .slice(since)
        .map((u) => new URL(u))
        .filter((u) => u.searchParams.get('sensor') === sensor);
    const drag = async (box, x0, x1) => {
      await page.mouse.move(x0, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(x1, box.y + box.height / 2, { steps: 8 });
      await page.mouse.up();
    };

    await page.click('.tile[data-sensor="temperature"]');
    await page.waitForSelector(`${card('temperature')}[data-loading="false"]`, WAIT);
    await waitForOneRange(900e3, 900e3, true);

    // Drag across the line chart from T-550 s to T-320 s (the live 15 minutes span its width).
    let since = historyUrls.length;
    await page.locator(`${card('temperature')} .u-over`).scrollIntoViewIfNeeded();
    const plot = await page.locator(`${card('temperature')} .u-over`).boundingBox();
    let now = await page.evaluate(() => Date.now());
    const onPlot = (t) => plot.x + ((t - (now - 900e3)) / 900e3) * plot.width;
    await drag(plot, onPlot(ms(-550)), onPlot(ms(-320)));
    await waitForOneRange(200e3, 260e3);
    const [from, to] = await rangeOf('door');
    assert.ok(from > ms(-565) && from < ms(-535) && to > ms(-335) && to < ms(-305), `${from - ms(0)} ${to - ms(0)}`);
    // The door was closed before the range (since T-600) and opened within it; the mode
    // stayed "cooling" all through it: both states the range opens in start "before".
    await waitForBands('door', [
      ['closed', from, ms(-400)],
      ['open', ms(-400), null],
    ]);
    await waitForBands('mode', [['cooling', from, null]]);
    assert.equal(await page.getAttribute(card('door'), 'data-points'), '2');
    assert.equal(
      await page.textContent(`${card('door')} .tl-bands li`),
      `closed from before ${await clock(from)} to ${await clock(ms(-400))}`,
    );
    for (const sensor of ['door', 'mode']) {
      const urls = asked(since, sensor);
      const exact = (u) => Date.parse(u.searchParams.get('from')) === from && Date.parse(u.searchParams.get('to')) === to;
      assert.ok(urls.some((u) => exact(u) && u.searchParams.has('max_points')), urls.join('\n'));
      assert.ok(urls.every((u) => u.searchParams.has('max_points') && !u.searchParams.has('agg')), urls.join('\n'));
    }

    // Drag across the door's timeline from T-450 s to T-350 s: the line chart follows.
    // The door's history is held back until the timeline has drawn after the drag: until
    // its new history arrives it must go on drawing the range it has (issue 28: drawn over
    // the new range, the old bands once satisfied the waits below — one run in ten).
    since = historyUrls.length;
    const held = [];
    let holding;
    const bothHeld = new Promise((resolve) => {
      holding = (route) => {
        held.push(route);
        if (held.length === 2) resolve();
      };
    });
    const doorHistory = (u) => u.pathname === '/v1/readings' && u.searchParams.get('sensor') === 'door';
    await page.route(doorHistory, holding);
    await page.evaluate((c) => {
      const door = document.querySelector(c);
      window.doorDraws = [];
      window.dragEnded = Infinity;
      // Capture phase on the document: runs before the card's own mouseup handler zooms.
      document.addEventListener('mouseup', () => (window.dragEnded = window.doorDraws.length), { capture: true, once: true });
      new MutationObserver(() => window.doorDraws.push([Number(door.dataset.from), Number(door.dataset.to)])).observe(door, {
        attributeFilter: ['data-from'],
      });
    }, card('door'));
    await page.locator(`${card('door')} canvas`).scrollIntoViewIfNeeded();
    const canvas = await page.locator(`${card('door')} canvas`).boundingBox();
    const onTimeline = (t) => canvas.x + 8 + ((t - from) / (to - from)) * (canvas.width - 16);
    await drag(canvas, onTimeline(ms(-450)), onTimeline(ms(-350)));
    await bothHeld;
    await page.waitForFunction(() => window.doorDraws.length > window.dragEnded, null, WAIT);
    const drawnWhileLoading = await page.evaluate(() => window.doorDraws.slice(window.dragEnded));
    assert.ok(
      drawnWhileLoading.every(([f, t]) => f === from && t === to),
      `while its history loads, the timeline draws the range it has: ${JSON.stringify(drawnWhileLoading)} vs ${from}–${to}`,
    );
    for (const r of held) await r.continue();
    await page.unroute(doorHistory, holding);
    await waitForOneRange(80e3, 120e3);
    const [from2, to2] = await rangeOf('temperature');
    assert.ok(from2 > ms(-455) && from2 < ms(-445) && to2 > ms(-355) && to2 < ms(-345), `${from2 - ms(0)} ${to2 - ms(0)}`);
    await waitForBands('door', [
      ['closed', from2, ms(-400)],
      ['open', ms(-400), null],
    ]);
    assert.ok(asked(since, 'temperature').length > 0, 'the line chart refetched its history');

    // Double-click the timeline: every chart is back to the live 15 minutes.
    await page.dblclick(`${card('door')} canvas`);
    await waitForOneRange(900e3, 900e3, true);
    now = await page.evaluate(() => Date.now());
    const [, live] = await rangeOf('mode');
    assert.ok(now - live < 5000, `ends at now: ${now - live} ms ago`);
    await waitForBands('door', [
      ['closed', ms(-600), ms(-400)],
      ['open', ms(-400), ms(-200)],
      ['closed', ms(-200), ms(-90)],
      ['open', ms(-90), null],
    ]);
  });

  it('raises no page errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
