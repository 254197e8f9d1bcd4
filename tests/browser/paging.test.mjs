// The device list beyond the first page (issue 28 item 7): the dashboard asks
// `GET /v1/devices?limit=1000` and follows each `Link: <…>; rel="next"` the hub answers
// until the last page, so a fleet of 2,500 devices is listed whole — the last device in
// name order included — from three requests, none of which carries the token in its URL.
// The label filter pages the same way.
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, freshDatabase, launchBrowser, startHub } from './hub.mjs';

const WAIT = { timeout: 30_000 };
const DEVICES = 2500;

describe('a device list of several pages', () => {
  let db;
  let hub;
  let browser;
  let dir;

  before(async () => {
    db = freshDatabase();
    dir = mkdtempSync(join(tmpdir(), 'telehub-paging-'));
    const tokens = join(dir, 'tokens.txt');
    execFileSync(BIN, ['device', 'add', '--count', String(DEVICES), '--prefix', 'unit-', '--tokens-out', tokens, '--database-url', db.url]);
    // Two devices carry a label: one on the first page, one on the last.
    for (const name of ['unit-999', 'unit-1000']) {
      execFileSync(BIN, ['device', 'label', name, 'site=far', '--database-url', db.url]);
    }
    hub = await startHub(db.url);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await hub?.kill();
    db?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists every device, following the Link header page after page', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const lists = [];
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.pathname === '/v1/devices' && r.method() === 'GET') lists.push(u);
    });
    await page.goto(hub.dashboard);
    await page.waitForFunction(() => document.querySelector('#conn-text').textContent === 'live', null, WAIT);
    await page.waitForFunction((n) => document.querySelector('#counts').textContent === `0 of ${n} online`, DEVICES, WAIT);
    assert.equal(lists.length, 3, lists.join('\n'));
    assert.ok(lists.every((u) => u.searchParams.get('limit') === '1000' && !u.searchParams.has('token')), lists.join('\n'));
    assert.deepEqual(
      lists.map((u) => u.searchParams.has('cursor')),
      [false, true, true],
    );

    // The last device in name order came with the third page.
    await page.fill('#filter', 'unit-999');
    await page.waitForSelector('.device[data-device="unit-999"]', WAIT);

    // The label filter pages too (one page here) and finds both labelled devices.
    await page.fill('#filter', '');
    await page.fill('#label-filter', 'site:far');
    await page.press('#label-filter', 'Enter');
    await page.waitForFunction(() => document.querySelector('#label-status').textContent === '2 devices carry site:far', null, WAIT);
    const asked = lists.filter((u) => u.searchParams.get('label') === 'site:far');
    // (Enter both submits the form and fires the search input's `search` event: two asks.)
    assert.ok(asked.length > 0 && asked.every((u) => u.searchParams.get('limit') === '1000'), lists.join('\n'));
    assert.deepEqual(pageErrors, []);
  });
});
