// telehub dashboard: the token, the HTTP API, and the live socket (docs/protocol.md §3) with
// reconnection. What is shown lives in view.js; the charts in chart-card.js.
//
// The token comes from `?token=` once, is kept in sessionStorage for this tab (and in
// localStorage when "remember on this screen" is on: remember.js), and is removed from the
// address bar at once. It is sent as `Authorization: Bearer` on
// fetches and as `?token=` on the WebSocket (browsers cannot set its headers). It is
// never logged or shown.

import { $, setText } from './dom.js';
import { AuthError, Hub } from './hub.js';
import { forgetAll, keep, showRememberButton, storedToken } from './remember.js';
import { View } from './view.js';

const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

/** Takes `?token=` out of the address bar; returns the token to use (remember.js). */
function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl !== null) {
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  return storedToken(fromUrl);
}

/**
 * The live socket. Each (re)connection first fetches the device list (which also
 * checks the token), then opens the socket and subscribes to everything. When it
 * drops, it waits a random time up to min(30 s, 1 s · 2^attempt) — exponential
 * backoff with full jitter — so a restarted hub is not hit by every dashboard at once.
 * A reconnect resumes from the last position seen (`epoch` and `offset` of the last
 * readings frame): the hub replays what was missed, and the charts are reloaded from
 * storage only when it answers `resumed: false` (it restarted, or the gap is too old).
 */
class Live {
  constructor(hub, view) {
    this.hub = hub;
    this.view = view;
    this.ws = null;
    this.attempt = 0;
    this.opened = false;
    this.position = null; // {epoch, offset} of the last readings seen
    this.timer = null;
    this.countdown = null;
    $('#conn').addEventListener('click', () => {
      if (this.timer !== null) this.connectNow();
    });
  }

  setState(state, text, why = '') {
    const c = $('#conn');
    c.dataset.state = state;
    document.body.dataset.conn = state;
    setText($('#conn-text'), text);
    c.title = state === 'reconnecting' ? `${why}. Click to retry now.` : why;
  }

  connectNow() {
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    this.timer = null;
    this.connect();
  }

  async connect() {
    this.setState('connecting', 'connecting…');
    try {
      this.view.setDevices(await this.hub.getAll('/v1/devices'));
    } catch (e) {
      if (e instanceof AuthError) return showTokenProblem(e.message);
      return this.retry(e.message);
    }
    const ws = new WebSocket(this.hub.liveUrl());
    this.ws = ws;
    let open = false;
    ws.onopen = () => {
      open = true;
      const subscribe = { subscribe: ['*'] };
      if (this.position) subscribe.resume = this.position;
      ws.send(JSON.stringify(subscribe));
      // Alert events from now on; the current ones (and any fired while away) from the API.
      ws.send(JSON.stringify({ alerts: true }));
      // Command state changes too (the device view's panel, the list's marks).
      ws.send(JSON.stringify({ commands: true }));
      this.view.alerts.load(this.hub);
      this.view.operate.connected();
      this.attempt = 0;
      this.setState('live', 'live');
      // Nothing to resume from: what was sent while we were away is in storage.
      if (this.opened && !this.position) this.view.reloadCharts();
      this.opened = true;
    };
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (Array.isArray(m.readings)) {
        this.view.readings(m.readings);
        if (typeof m.offset === 'number') this.position = { epoch: m.epoch, offset: m.offset };
      } else if (m.resumed === false) {
        // The hub could not replay the gap: refill the charts from storage, go on live.
        this.position = { epoch: m.epoch, offset: m.offset };
        this.view.reloadCharts();
      } else if (m.alert) this.view.alerts.event(m.alert);
      else if (m.command) this.view.operate.command(m.command);
      else if (m.status) this.view.status(m.status);
      else if (typeof m.lagged === 'number') this.view.lagged(m.lagged);
      else if (m.error) this.setState('live', 'live', `the hub refused a command: ${m.detail}`);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      let why = open ? 'connection lost' : 'the live feed could not be opened';
      if (ev.code === 1001) why = 'the hub is shutting down or restarting';
      else if (ev.code === 1008) why = `the hub closed the feed: ${ev.reason || 'policy violation'}`;
      this.retry(why);
    };
  }

  retry(why) {
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.attempt, 16));
    const delay = Math.max(200, Math.random() * cap);
    this.attempt++;
    const at = performance.now() + delay;
    const show = () => {
      const left = Math.max(1, Math.ceil((at - performance.now()) / 1000));
      this.setState('reconnecting', `reconnecting in ${left} s…`, why);
    };
    show();
    clearInterval(this.countdown);
    this.countdown = setInterval(show, 250);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectNow(), delay);
  }
}

function showTokenProblem(message) {
  // A refused token is no use on this tab or this screen.
  if (message) forgetAll();
  const live = $('#conn');
  live.dataset.state = 'error';
  $('#conn-text').textContent = message ? 'token refused' : 'no token';
  $('#token-problem').textContent = message ? `${message}.` : 'This page needs a viewer token.';
  $('#token-panel').hidden = false;
  $('#token-input').focus();
}

function main() {
  $('#token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token-input').value.trim();
    if (!t) return;
    // Storage disabled: the reload below will ask again.
    keep(t, $('#token-remember').checked);
    location.reload();
  });
  const token = takeToken();
  if (!token) return showTokenProblem('');
  showRememberButton(token);
  const hub = new Hub(token);
  const view = new View(hub);
  new Live(hub, view).connect();
}

main();
