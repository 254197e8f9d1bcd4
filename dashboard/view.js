// What the operator sees: the device list, the selected device's sensors, the alert
// strip, the charts over one shared time range, and the address that reproduces it.
//
// Live data only updates the model and marks it dirty; the DOM and the canvases are
// touched at most once per animation frame, and only for what changed and is visible.
// Every device-provided string (device, sensor, unit, value) goes in as text, never as HTML.
// Booleans and strings are states: shown as chips, charted as state timelines over the
// same range as the line charts.

import { readAddress, writeAddress } from './address.js';
import { AlertStrip } from './alerts.js';
import { makeChart } from './chart-card.js';
import { DeviceList, aboutText, ago } from './device-list.js';
import { $, el, readColors, setText } from './dom.js';
import { Operate } from './operate.js';
import { RangePicker } from './picker.js';
import { TimeRange } from './range.js';
import { clock } from './time.js';
import { makeTimelineCard } from './timeline-card.js';
import { showUnit } from './units.js';
import { isState, kindOf, showValue } from './values.js';

const TEXT_MS = 100;
const CHART_MS = 33;
const MAX_CHARTS = 6;
/** An alert opens its series this long before and after it fired. */
const AROUND_ALERT_MS = 15 * 60e3;

export class View {
  constructor(hub) {
    this.hub = hub;
    this.devices = new Map();
    this.selected = null;
    this.charts = new Map();
    this.dirty = new Set();
    this.scheduled = false;
    this.countsDirty = true;
    this.textAt = 0;
    this.lagTotal = 0;
    this.lagAt = 0;
    this.list = new DeviceList($('#device-list'), this.devices, {
      onSelect: (name) => this.select(name),
      onChange: () => this.schedule(),
    });
    this.operate = new Operate(hub, this);
    this.alerts = new AlertStrip($('#alerts'), {
      onOpen: (a) => this.openAlert(a),
      onMarks: (marks) => this.markAlerts(marks),
      role: this.operate.role,
      actions: this.operate.alertActions,
      silences: this.operate.silences,
    });
    this.range = new TimeRange();
    this.picker = new RangePicker(this.range);
    this.rangeDirty = true;
    this.wanted = readAddress();
    if (this.wanted.range) this.range.setBase(this.wanted.range.spanMs, this.wanted.range.to);
    this.range.onChange(() => {
      this.reloadCharts();
      this.rangeDirty = true;
      this.saveAddress();
      this.schedule();
    });
    window.addEventListener('hashchange', () => {
      this.wanted = readAddress();
      this.applyAddress();
    });
    $('#filter').addEventListener('input', (e) => this.list.filter(e.target.value));
    this.colors = readColors();
    setInterval(() => this.tick(), 1000);
    this.schedule();
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
    const added = [];
    for (const x of list) {
      seen.add(x.name);
      let d = this.devices.get(x.name);
      if (!d) {
        d = this.newDevice(x.name);
        added.push(x.name);
      }
      d.online = x.online;
      d.transport = x.transport ?? null;
      d.about = aboutText(x);
      d.labels = x.labels ?? {};
      d.inSync = x.in_sync ?? null;
      if (x.last_seen) d.lastSeen = Math.max(d.lastSeen ?? 0, Date.parse(x.last_seen));
      for (const s of x.sensors ?? []) this.sensor(d, s);
      for (const [name, l] of Object.entries(x.latest ?? {})) this.stored(this.sensor(d, name), l);
      this.touch(d);
    }
    if (added.length > 0) this.list.addAll(added);
    for (const name of [...this.devices.keys()]) if (!seen.has(name)) this.removeDevice(name);
    this.countsDirty = true;
    $('#no-devices').hidden = this.devices.size > 0;
    if (this.wanted && this.devices.size > 0) this.applyAddress();
  }

  /** Shows what the address asks for (once the devices are known), else the first device. */
  applyAddress() {
    const w = this.wanted;
    this.wanted = null;
    if (w.range) this.range.setBase(w.range.spanMs, w.range.to);
    if (w.device || w.charts.length > 0) {
      if (w.device && this.devices.has(w.device)) this.select(w.device);
      for (const [d, s] of [...w.charts].reverse()) this.openChart(d, s);
      return;
    }
    if (this.selected === null && this.list.shown.length > 0) {
      const d = this.devices.get(this.list.shown[0]);
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
      if (c) c.add(r.ts, r.value, s.unit);
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

  newDevice(name) {
    const d = { name, online: false, transport: null, about: '', lastSeen: null, sensors: new Map(), row: null, alert: null };
    Object.assign(d, { labels: {}, inSync: null, commandFailed: null });
    this.devices.set(name, d);
    this.countsDirty = true;
    return d;
  }

  device(name) {
    let d = this.devices.get(name);
    if (!d) {
      d = this.newDevice(name);
      this.list.add(name);
      $('#no-devices').hidden = true;
    }
    return d;
  }

  sensor(d, name) {
    let s = d.sensors.get(name);
    if (!s) {
      s = { name, value: null, unit: '', ts: null, version: 0, tile: null };
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
    this.list.remove(name);
    this.devices.delete(name);
    this.dirty.delete(d);
    if (this.selected === name) this.select(null);
    this.countsDirty = true;
  }

  /** Marks the devices with a firing alert (`marks`: device → worst severity). */
  markAlerts(marks) {
    for (const d of this.devices.values()) {
      const alert = marks.get(d.name) ?? null;
      if (d.alert !== alert) {
        d.alert = alert;
        this.touch(d);
      }
    }
    this.schedule();
  }

  /** An alert's series around the moment it fired. */
  openAlert(a) {
    const since = Date.parse(a.since);
    const now = Date.now();
    const from = since - AROUND_ALERT_MS;
    if (since + AROUND_ALERT_MS >= now) this.range.setBase(now - from);
    else this.range.setBase(2 * AROUND_ALERT_MS, since + AROUND_ALERT_MS);
    if (this.devices.has(a.device)) this.select(a.device);
    if (a.sensor) this.openChart(a.device, a.sensor);
  }

  // ---- the selected device ----

  select(name) {
    this.selected = name;
    this.list.select(name);
    $('#detail-empty').hidden = name !== null;
    $('#detail-body').hidden = name === null;
    $('#sensor-tiles').replaceChildren();
    this.saveAddress();
    this.operate.device.show(name === null ? null : this.devices.get(name));
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
    const via = d.transport ? ` over ${d.transport}` : '';
    setText($('#detail-seen'), `last seen ${ago(d.lastSeen, now)}${via}`);
    const about = $('#detail-about');
    setText(about, d.about);
    about.hidden = d.about === '';
    this.operate.device.renderLabels(d);
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
        s.tile = { root: b, v, u, when, version: -1 };
      }
      s.tile.root.classList.toggle('charted', this.charts.has(chartKey(d.name, s.name)));
      if (s.tile.version !== s.version) {
        s.tile.version = s.version;
        showValue(s.tile.v, s.name, s.value);
        showUnit(s.tile.u, s.unit);
      }
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
    if (this.charts.size >= MAX_CHARTS) this.closeChart(this.charts.keys().next().value);
    const d = this.devices.get(device);
    const s = d?.sensors.get(sensor);
    const kind = kindOf(s?.value) ?? 'number';
    const c = (isState(kind) ? makeTimelineCard : makeChart)({
      device,
      sensor,
      kind,
      unit: s?.unit ?? '',
      colors: this.colors,
      range: this.range,
      hub: this.hub,
      onClose: () => this.closeChart(key),
      onDirty: () => this.schedule(),
    });
    c.device = device;
    c.sensor = sensor;
    this.charts.set(key, c);
    $('#charts').prepend(c.card);
    $('#no-charts').hidden = true;
    c.mount();
    c.load();
    if (d) this.touch(d);
    this.saveAddress();
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
    this.saveAddress();
  }

  /** Reloads every chart's history (after a range change or a reconnect). */
  reloadCharts() {
    for (const c of this.charts.values()) c.load();
  }

  saveAddress() {
    if (this.wanted) return; // not applied yet: keep what the address asks for
    const charts = [...document.querySelectorAll('#charts .chart-card')].map((c) => [c.dataset.device, c.dataset.sensor]);
    writeAddress({ device: this.selected, charts, range: this.range.view });
  }

  // ---- once per animation frame / once per second ----

  /**
   * Renders what is dirty. Numbers change faster than anyone reads them, so text is
   * refreshed at most every TEXT_MS and charts redraw for new data at most every
   * CHART_MS; what waits keeps its dirty flag.
   */
  frame() {
    this.scheduled = false;
    const now = Date.now();
    let waiting = false;
    if (this.list.layoutDirty) for (const d of this.list.layout()) this.list.render(d, now);
    if (this.rangeDirty) {
      this.rangeDirty = false;
      this.picker.render();
    }
    if (now - this.textAt >= TEXT_MS) {
      this.textAt = now;
      for (const d of this.dirty) {
        if (d.row) this.list.render(d, now);
        if (d.name === this.selected) this.renderDetail(d, now);
      }
      this.dirty.clear();
      if (this.countsDirty) this.renderCounts();
      if (this.alerts.dirty) this.alerts.render(now);
    } else {
      waiting = this.dirty.size > 0 || this.countsDirty || this.alerts.dirty;
    }
    for (const c of this.charts.values()) {
      if (c.hoverDirty) c.drawHover();
      if (!c.dirty) continue;
      if (now - c.drawnAt >= CHART_MS) c.draw(now);
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

  /** Relative times move on, and live charts slide. */
  tick() {
    const now = Date.now();
    for (const name of this.list.rows.keys()) this.dirty.add(this.devices.get(name));
    const d = this.devices.get(this.selected);
    if (d) this.dirty.add(d);
    if (this.range.live) {
      for (const c of this.charts.values()) c.dirty = true;
      this.rangeDirty = true;
    }
    this.alerts.render(now);
    if (this.lagAt && now - this.lagAt > 10_000) $('#lagged').classList.remove('fresh');
    this.schedule();
  }
}

export function chartKey(device, sensor) {
  return `${device}/${sensor}`;
}
