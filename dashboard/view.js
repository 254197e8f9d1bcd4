// What the operator sees: the device list, the selected device's sensors, the charts.
//
// Live data only updates the model and marks it dirty; the DOM and the canvases are
// touched at most once per animation frame, and only for what changed and is visible.
// Every device-provided string (device, sensor, unit, string value) goes in as text,
// never as HTML. Booleans and strings are states: shown as chips, charted as timelines.

import { makeChart } from './chart-card.js';
import { $, el, setText } from './dom.js';
import { clock } from './time.js';
import { kindOf, showValue } from './values.js';

const collator = new Intl.Collator(undefined, { numeric: true });
const TEXT_MS = 100;
const CHART_MS = 33;

export function ago(ms, now) {
  if (ms === null || !Number.isFinite(ms)) return 'never seen';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export class View {
  constructor(hub) {
    this.hub = hub;
    this.devices = new Map();
    this.order = [];
    this.selected = null;
    this.charts = new Map();
    this.rangeS = 900;
    this.dirty = new Set();
    this.scheduled = false;
    this.countsDirty = true;
    this.textAt = 0;
    this.lagTotal = 0;
    this.lagAt = 0;
    this.autoSelect = true;
    this.list = $('#device-list');
    this.observer = new IntersectionObserver((entries) => this.onVisibility(entries), {
      root: this.list,
      rootMargin: '120px',
    });
    $('#filter').addEventListener('input', (e) => this.applyFilter(e.target.value));
    for (const b of document.querySelectorAll('[data-range]')) {
      b.addEventListener('click', () => this.setRange(Number(b.dataset.range)));
    }
    this.colors = readColors();
    setInterval(() => this.tick(), 1000);
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => this.frame());
  }

  // ---- model updates (from the socket and the API) ----

  /** The device list from GET /v1/devices: adds, updates, and drops revoked devices. */
  setDevices(list) {
    const seen = new Set();
    for (const x of list) {
      seen.add(x.name);
      const d = this.device(x.name);
      d.online = x.online;
      if (x.last_seen) d.lastSeen = Math.max(d.lastSeen ?? 0, Date.parse(x.last_seen));
      for (const s of x.sensors ?? []) this.sensor(d, s);
      for (const [name, l] of Object.entries(x.latest ?? {})) this.stored(this.sensor(d, name), l);
      this.touch(d);
    }
    for (const name of [...this.devices.keys()]) if (!seen.has(name)) this.removeDevice(name);
    $('#no-devices').hidden = this.devices.size > 0;
    if (this.autoSelect && this.selected === null && this.order.length > 0) {
      this.autoSelect = false;
      const d = this.devices.get(this.order[0]);
      this.select(d.name);
      const first = d.sensors.keys().next();
      if (!first.done) this.openChart(d.name, first.value);
    }
  }

  /** A sensor's newest stored reading (`latest` in GET /v1/devices), unless a newer one is shown. */
  stored(s, l) {
    const ts = Date.parse(l.ts);
    if (s.ts !== null && !(ts > s.ts)) return;
    s.value = l.value;
    s.ts = ts;
    if (l.unit !== undefined) s.unit = l.unit;
    s.version++;
  }

  readings(list) {
    const now = Date.now();
    for (const r of list) {
      const d = this.device(r.device);
      const s = this.sensor(d, r.sensor);
      s.value = r.value;
      if (r.unit !== undefined) s.unit = r.unit;
      s.ts = Date.parse(r.ts);
      s.version++;
      d.lastSeen = now;
      this.touch(d);
      const key = chartKey(r.device, r.sensor);
      let c = this.charts.get(key);
      // A chart opened before the sensor's type was known is redrawn for its type.
      if (c && c.kind !== kindOf(r.value)) {
        this.closeChart(key);
        c = this.openChart(r.device, r.sensor);
      }
      if (c) c.add(s.ts, r.value, s.unit);
    }
  }

  status(st) {
    const d = this.device(st.device);
    if (d.online !== st.online) this.countsDirty = true;
    d.online = st.online;
    const t = Date.parse(st.ts);
    if (Number.isFinite(t)) d.lastSeen = Math.max(d.lastSeen ?? 0, t);
    this.touch(d);
  }

  lagged(n) {
    this.lagTotal += n;
    this.lagAt = Date.now();
    const e = $('#lagged');
    e.hidden = false;
    e.classList.add('fresh');
    e.textContent = `lagged: ${this.lagTotal.toLocaleString()} readings dropped`;
    e.title =
      'This page fell behind the live feed and the hub dropped readings for it. ' +
      'Values catch up with the next readings; charts may have gaps (reload the range to fill them).';
  }

  device(name) {
    let d = this.devices.get(name);
    if (!d) {
      d = { name, online: false, lastSeen: null, sensors: new Map(), visible: false, row: null };
      this.devices.set(name, d);
      this.insertRow(d);
      this.countsDirty = true;
      $('#no-devices').hidden = true;
    }
    return d;
  }

  sensor(d, name) {
    let s = d.sensors.get(name);
    if (!s) {
      s = { name, value: null, unit: '', ts: null, version: 0, chip: null, tile: null };
      d.sensors.set(name, s);
    }
    return s;
  }

  touch(d) {
    this.dirty.add(d);
    this.schedule();
  }

  removeDevice(name) {
    const d = this.devices.get(name);
    this.observer.unobserve(d.row.root);
    d.row.root.remove();
    this.devices.delete(name);
    this.order.splice(this.order.indexOf(name), 1);
    this.dirty.delete(d);
    if (this.selected === name) this.select(null);
    this.countsDirty = true;
  }

  // ---- the device list ----

  insertRow(d) {
    const root = el('div', 'device');
    root.tabIndex = 0;
    root.setAttribute('role', 'listitem');
    const head = el('div', 'device-head');
    const dot = el('span', 'dot');
    const name = el('span', 'name', d.name);
    const seen = el('span', 'seen');
    head.append(dot, name, seen);
    const values = el('div', 'values');
    root.append(head, values);
    root.dataset.device = d.name;
    root.addEventListener('click', () => this.select(d.name));
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        this.select(d.name);
      }
    });
    d.row = { root, dot, seen, values };
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (collator.compare(this.order[mid], d.name) < 0) lo = mid + 1;
      else hi = mid;
    }
    const next = this.order[lo];
    this.order.splice(lo, 0, d.name);
    this.list.insertBefore(root, next === undefined ? null : this.devices.get(next).row.root);
    root.hidden = !this.matches(d.name);
    this.observer.observe(root);
  }

  onVisibility(entries) {
    for (const e of entries) {
      const d = this.devices.get(e.target.dataset.device);
      if (!d) continue;
      d.visible = e.isIntersecting;
      if (d.visible) this.touch(d);
    }
  }

  matches(name) {
    return !this.filterText || name.toLowerCase().includes(this.filterText);
  }

  applyFilter(text) {
    this.filterText = text.trim().toLowerCase();
    for (const d of this.devices.values()) d.row.root.hidden = !this.matches(d.name);
  }

  renderRow(d, now) {
    const r = d.row;
    r.root.dataset.online = d.online;
    setText(r.seen, d.online ? ago(d.lastSeen, now) : `offline · ${ago(d.lastSeen, now)}`);
    for (const s of d.sensors.values()) {
      if (!s.chip) {
        const chip = el('span', 'chip');
        chip.dataset.sensor = s.name;
        const k = el('span', 'k', s.name);
        const v = el('span', 'v', '–');
        const u = el('span', 'u');
        chip.append(k, v, u);
        r.values.append(chip);
        s.chip = { v, u, version: -1, unit: null };
      }
      updateValue(s, s.chip);
      if (s.ts !== null) s.chip.v.title = ago(s.ts, now);
    }
  }

  // ---- the selected device ----

  select(name) {
    this.selected = name;
    for (const d of this.devices.values()) d.row.root.classList.toggle('selected', d.name === name);
    $('#detail-empty').hidden = name !== null;
    $('#detail-body').hidden = name === null;
    const tiles = $('#sensor-tiles');
    tiles.replaceChildren();
    if (name === null) return;
    const d = this.devices.get(name);
    $('#detail-name').textContent = d.name;
    for (const s of d.sensors.values()) s.tile = null;
    this.touch(d);
  }

  renderDetail(d, now) {
    const badge = $('#detail-status');
    setText(badge, d.online ? 'online' : 'offline');
    badge.dataset.online = d.online;
    setText($('#detail-seen'), `last seen ${ago(d.lastSeen, now)}`);
    const tiles = $('#sensor-tiles');
    for (const s of d.sensors.values()) {
      if (!s.tile) {
        const b = el('button', 'tile');
        b.type = 'button';
        b.dataset.sensor = s.name;
        const k = el('span', 'k', s.name);
        const line = el('span', 'reading');
        const v = el('span', 'v', '–');
        const u = el('span', 'u');
        line.append(v, u);
        const when = el('span', 'when');
        b.append(k, line, when);
        b.addEventListener('click', () => this.openChart(d.name, s.name));
        tiles.append(b);
        s.tile = { root: b, v, u, when, version: -1, unit: null };
      }
      s.tile.root.classList.toggle('charted', this.charts.has(chartKey(d.name, s.name)));
      updateValue(s, s.tile);
      if (s.ts !== null) setText(s.tile.when, `${clock(s.ts)} · ${ago(s.ts, now)}`);
    }
    $('#no-sensors').hidden = d.sensors.size > 0;
  }

  // ---- charts ----

  openChart(device, sensor) {
    const key = chartKey(device, sensor);
    const existing = this.charts.get(key);
    if (existing) {
      existing.card.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
      return existing;
    }
    if (this.charts.size >= 6) this.closeChart(this.charts.keys().next().value);
    const d = this.devices.get(device);
    const s = d?.sensors.get(sensor);
    const c = makeChart({
      device,
      sensor,
      kind: kindOf(s?.value) ?? 'number',
      unit: s?.unit ?? '',
      colors: this.colors,
      onClose: () => this.closeChart(key),
      onDirty: () => this.schedule(),
    });
    this.charts.set(key, c);
    $('#charts').prepend(c.card);
    $('#no-charts').hidden = true;
    c.load(this.hub, this.rangeS);
    if (d) this.touch(d);
    return c;
  }

  closeChart(key) {
    const c = this.charts.get(key);
    if (!c) return;
    c.dispose();
    this.charts.delete(key);
    $('#no-charts').hidden = this.charts.size > 0;
    const d = this.devices.get(this.selected);
    if (d) this.touch(d);
  }

  setRange(seconds) {
    this.rangeS = seconds;
    for (const b of document.querySelectorAll('[data-range]')) {
      b.setAttribute('aria-pressed', String(Number(b.dataset.range) === seconds));
    }
    this.reloadCharts();
  }

  /** Reloads every chart's history (after a range change or a reconnect). */
  reloadCharts() {
    for (const c of this.charts.values()) c.load(this.hub, this.rangeS);
  }

  // ---- once per animation frame / once per second ----

  /**
   * Renders what is dirty. Numbers change faster than anyone reads them, so text is
   * refreshed at most every TEXT_MS and charts redraw for new data at most every
   * CHART_MS (hover and resizing redraw at once); what waits keeps its dirty flag.
   */
  frame() {
    this.scheduled = false;
    const now = Date.now();
    let waiting = false;
    if (now - this.textAt >= TEXT_MS) {
      this.textAt = now;
      for (const d of this.dirty) {
        if (d.visible) this.renderRow(d, now);
        if (d.name === this.selected) this.renderDetail(d, now);
      }
      this.dirty.clear();
      if (this.countsDirty) this.renderCounts();
    } else {
      waiting = this.dirty.size > 0 || this.countsDirty;
    }
    for (const c of this.charts.values()) {
      if (!c.chart.dirty) continue;
      if (c.chart.urgent || now - c.drawnAt >= CHART_MS) c.draw(now);
      else waiting = true;
    }
    if (waiting) this.schedule();
  }

  renderCounts() {
    this.countsDirty = false;
    let online = 0;
    for (const d of this.devices.values()) if (d.online) online++;
    setText($('#counts'), `${online} of ${this.devices.size} online`);
  }

  /** Relative times move on, and the charts' windows slide. */
  tick() {
    for (const d of this.devices.values()) if (d.visible || d.name === this.selected) this.dirty.add(d);
    for (const c of this.charts.values()) c.chart.dirty = true;
    if (this.lagAt && Date.now() - this.lagAt > 10_000) $('#lagged').classList.remove('fresh');
    this.schedule();
  }
}

export function chartKey(device, sensor) {
  return `${device}/${sensor}`;
}

/** Updates a value/unit pair of text nodes if the sensor changed; true if it did. */
function updateValue(s, view) {
  if (view.version === s.version) return false;
  view.version = s.version;
  showValue(view.v, s.name, s.value);
  if (view.unit !== s.unit) {
    view.unit = s.unit;
    view.u.textContent = s.unit;
  }
  return true;
}

function readColors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    line: v('--accent'),
    grid: v('--grid'),
    muted: v('--muted'),
    text: v('--text'),
    tooltip: v('--tooltip'),
  };
}
