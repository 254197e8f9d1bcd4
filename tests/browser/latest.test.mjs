// A quiet sensor's newest stored reading (issue 13, CONTRACT http-api.md `latest`): a page
// opened long after the device went quiet still shows the value, its unit and its age,
// in the device list and on the sensor's tile, without any live reading.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { BIN, addDevice, connectDevice, freshDatabase, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };

describe('a quiet sensor', () => {
  let db;
  let hub;
  let browser;

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    const token = addDevice(db.url, 'freezer-9');
    execFileSync(BIN, ['device', 'set', 'freezer-9', '--description', 'Chest freezer, kitchen', '--location', 'Hall 3',
      '--database-url', db.url]);
    const device = await connectDevice(hub.base, token);
    const hourAgo = Date.now() / 1000 - 3600;
    const reply = await device.send([{ sensor: 'temperature', value: -18.25, ts: hourAgo, unit: 'Cel' }]);
    assert.deepEqual(reply, { ack: 1, stored: 1 });
    device.close();
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });

  after(async () => {
    await browser?.close();
    await hub?.kill();
    db?.remove();
  });

  it('shows its latest stored value with unit and age on a page opened later', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(hub.dashboard);
    const chip = '.device[data-device="freezer-9"] .chip';
    await page.waitForFunction(
      (c) => {
        const e = document.querySelector(c);
        const u = e?.querySelector('.u');
        return e && e.querySelector('.v').textContent === '-18.25' && u.textContent === '°C' && u.title === 'SenML unit: Cel';
      },
      chip,
      WAIT,
    );
    await page.click('.device[data-device="freezer-9"]');
    const tile = '.tile[data-sensor="temperature"]';
    await page.waitForSelector(tile, WAIT);
    const text = await page.$eval(tile, (t) => t.textContent);
    assert.match(text, /-18\.25/, `tile: ${text}`);
    assert.match(text, /1 h ago|60 min ago/, `the tile shows the reading's age: ${text}`);
  });

  it('shows what and where the device is (device set)', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(hub.dashboard);
    const row = '.device[data-device="freezer-9"]';
    await page.waitForSelector(row, WAIT);
    assert.equal(await page.$eval(row, (r) => r.title), 'Chest freezer, kitchen · Hall 3');
    await page.click(row);
    await page.waitForSelector('#detail-about:not([hidden])', WAIT);
    assert.equal(await page.textContent('#detail-about'), 'Chest freezer, kitchen · Hall 3');
  });
});
