// "Remember this token on this screen" in a real browser (Debian's chromium through
// playwright-core) against the real hub binary: a wall screen opened once with `?token=`
// keeps working after its tab is gone only when asked to, shows that it does, and
// "forget" ends it; a token the hub refuses is not kept.
//
// Every wait is on a condition with a timeout; there are no fixed sleeps.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { freshDatabase, startHub } from './hub.mjs';

const WAIT = { timeout: 15_000 };

describe('remember the token on this screen', () => {
  let db;
  let hub;
  let browser;
  let context;
  const pageErrors = [];

  /** A new tab (a fresh sessionStorage; the screen's localStorage) at `url`. */
  const open = async (url) => {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(url);
    return page;
  };
  const connText = (page, text) =>
    page.waitForFunction((t) => document.querySelector('#conn-text').textContent === t, text, WAIT);
  const button = (page) => page.locator('#remember');

  before(async () => {
    db = freshDatabase();
    hub = await startHub(db.url);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    await browser?.close();
    await hub?.kill();
    db?.remove();
  });

  it('asks for a token in a new tab unless the screen remembers it', async () => {
    const first = await open(hub.dashboard);
    await connText(first, 'live');
    assert.equal(await button(first).getAttribute('aria-pressed'), 'false');
    assert.equal(await button(first).textContent(), 'Remember on this screen');
    await first.close();
    // Not remembered: a new tab (a restarted screen) has no token.
    const second = await open(hub.base);
    await connText(second, 'no token');
    assert.equal(await second.isVisible('#token-panel'), true);
    await second.close();
  });

  it('opens without a token once remembered, and forget ends it', async () => {
    const first = await open(hub.dashboard);
    await connText(first, 'live');
    await button(first).click();
    assert.equal(await button(first).getAttribute('aria-pressed'), 'true');
    assert.match(await button(first).textContent(), /forget/);
    await first.close();

    const restarted = await open(hub.base);
    await connText(restarted, 'live');
    assert.equal(await button(restarted).getAttribute('aria-pressed'), 'true', 'it shows that it remembers');
    assert.equal(new URL(restarted.url()).searchParams.get('token'), null, 'no token in the address');
    await button(restarted).click();
    assert.equal(await button(restarted).getAttribute('aria-pressed'), 'false');
    assert.equal(await restarted.evaluate(() => localStorage.length), 0, 'nothing left on the screen');
    await restarted.close();

    const forgotten = await open(hub.base);
    await connText(forgotten, 'no token');
    await forgotten.close();
  });

  it('remembers a pasted token when asked, and forgets one the hub refuses', async () => {
    const page = await open(hub.base);
    await connText(page, 'no token');
    await page.fill('#token-input', 'th_not_a_real_token');
    await page.check('#token-remember');
    await page.click('#token-form button[type="submit"]');
    await connText(page, 'token refused');
    assert.equal(await page.evaluate(() => localStorage.length), 0, 'a refused token is not kept');
    await page.close();
    assert.deepEqual(pageErrors, []);
  });
});
