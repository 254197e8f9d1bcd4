// One chart card: a numeric sensor over the shared time range.
//
// Each change of the range costs one request: GET /v1/readings with `max_points` set to
// twice the plot's width in CSS pixels (so never more than two points per pixel; the
// hub returns every reading when the range holds no more, else real readings picked
// by M4). While the range ends at "now", live readings are appended; those that arrive
// while the history loads wait in a bounded list and join after it.
//
// The card shows min, max, average and last over the visible range, the unit on the
// y axis (readable: `Cel` → °C), and offers two CSV files: what the chart shows, and
// every raw reading of the range (paged through `limit`/`cursor`, at most RAW_CSV_MAX).
//
// A boolean or string sensor gets a state timeline card instead (timeline-card.js), built
// from this file's shared parts: header, keys, raw CSV, the request's resolution.

import { LineChart } from './chart.js';
import * as csv from './csv.js';
import { el, setText } from './dom.js';
import { Series } from './series.js';
import { clock } from './time.js';
import { readableUnit, showUnit } from './units.js';
import { formatValue } from './values.js';

/** Live readings kept while a history loads. */
export const MAX_PENDING = 20_000;
const RAW_PAGE = 10_000;
const RAW_CSV_MAX = 1_000_000;
/** The hub's bounds for `max_points` (`[http] max_points` defaults to 10,000). */
const MIN_POINTS = 8;
const MAX_POINTS = 10_000;

/**
 * What every chart card has: the card (`data-device`, `data-sensor`, `data-kind`), a
 * header (title, last value, hover text, close), and a footer (a note, the raw CSV
 * button, which asks `unit()` for the CSV's unit column).
 */
export function cardParts({ device, sensor, kind, hub, range, onClose, unit }) {
  const card = el('article', 'chart-card');
  card.dataset.device = device;
  card.dataset.sensor = sensor;
  card.dataset.kind = kind;
  card.dataset.points = '0';
  const head = el('header');
  const title = el('span', 'c-title');
  title.append(el('span', 'c-device', device), el('span', 'c-sep', ' / '), el('span', 'c-sensor', sensor));
  const last = el('span', 'c-last');
  const lastValue = el('span', 'v', '–');
  const lastUnit = el('span', 'u');
  last.append(lastValue, lastUnit);
  const hover = el('span', 'c-hover');
  const close = el('button', 'c-close', '×');
  close.type = 'button';
  close.title = 'Close this chart';
  close.setAttribute('aria-label', `Close the chart of ${device} / ${sensor}`);
  close.addEventListener('click', onClose);
  head.append(title, last, hover, close);

  const foot = el('footer');
  const info = el('span', 'c-info');
  const rawCsv = el('button', 'c-csv', 'CSV: raw');
  rawCsv.type = 'button';
  rawCsv.dataset.csv = 'raw';
  rawCsv.title = 'Download every stored reading of the range';
  foot.append(info, rawCsv);
  const line = (ts, v) => csv.line(device, sensor, ts, v, unit());
  const fileName = (what, from, to) => `${device}_${sensor}_${csv.fileTime(from)}_${csv.fileTime(to)}_${what}.csv`;
  rawCsv.addEventListener('click', async () => {
    const [from, to] = range.bounds();
    rawCsv.disabled = true;
    try {
      const parts = [csv.HEADER, '\n'];
      let rows = 0;
      let cursor = null;
      const q = `${readingsQuery(device, sensor)}&from=${iso(from)}&to=${iso(to)}&limit=${RAW_PAGE}`;
      do {
        const r = await hub.get(cursor ? `${q}&cursor=${encodeURIComponent(cursor)}` : q);
        for (const p of r.points) parts.push(line(p.ts, p.value));
        rows += r.points.length;
        cursor = r.next_cursor;
        setText(info, `raw CSV: ${rows.toLocaleString()} readings…`);
      } while (cursor && rows < RAW_CSV_MAX);
      csv.download(fileName('raw', from, to), parts);
      setText(info, cursor ? `raw CSV: the first ${rows.toLocaleString()} readings` : `raw CSV: ${rows.toLocaleString()} readings`);
    } catch (e) {
      setText(info, `raw CSV failed: ${e.message}`);
    } finally {
      rawCsv.disabled = false;
    }
  });
  return { card, head, lastValue, lastUnit, hover, foot, info, line, fileName };
}

/** Keyboard use of a plot: ←/→ pan (shift: a whole span), + and − zoom, Escape resets. */
export function rangeKeys(range) {
  return (e) => {
    const keys = {
      ArrowLeft: () => range.pan(e.shiftKey ? -1 : -0.25),
      ArrowRight: () => range.pan(e.shiftKey ? 1 : 0.25),
      '+': () => range.zoomBy(0.5),
      '=': () => range.zoomBy(0.5),
      '-': () => range.zoomBy(2),
      Escape: () => range.reset(),
    };
    const act = keys[e.key];
    if (!act) return;
    e.preventDefault();
    act();
  };
}

/** The plot's gestures, in words (its accessible description). */
export const GESTURES = 'Drag to zoom, shift+drag or arrow keys to pan, + and − to zoom, Escape or double-click to reset.';

/** `max_points` for a plot `widthPx` CSS pixels wide: 2 per pixel, within the hub's bounds. */
export function pointsFor(widthPx) {
  return Math.min(MAX_POINTS, Math.max(MIN_POINTS, Math.floor(widthPx * 2)));
}

export function readingsQuery(device, sensor) {
  return `/v1/readings?device=${encodeURIComponent(device)}&sensor=${encodeURIComponent(sensor)}`;
}

/** The history request of a range: `from` and (unless it is live) `to`. */
export function rangeQuery(from, to, live) {
  return `&from=${iso(from)}${live ? '' : `&to=${iso(to)}`}`;
}

export function makeChart({ device, sensor, unit, colors, range, hub, onClose, onDirty }) {
  const { card, head, lastValue, lastUnit, hover, foot, info, line, fileName } = cardParts({
    device,
    sensor,
    kind: 'number',
    hub,
    range,
    onClose,
    unit: () => latest.unit,
  });

  const stats = el('dl', 'c-stats');
  const statValues = {};
  for (const [k, label] of [
    ['min', 'min'],
    ['max', 'max'],
    ['avg', 'avg'],
    ['last', 'last'],
  ]) {
    const dd = el('dd', `s-${k}`, '–');
    stats.append(el('dt', '', label), dd);
    statValues[k] = dd;
  }
  statValues.avg.previousSibling.title = 'Average of the points drawn (of M4-picked readings when the range holds more than the chart can show)';

  const plot = el('div', 'c-plot');
  plot.tabIndex = 0;
  plot.setAttribute('role', 'img');
  plot.setAttribute('aria-label', `${sensor} of ${device} over time. ${GESTURES}`);

  const shownCsv = el('button', 'c-csv', 'CSV: shown');
  shownCsv.type = 'button';
  shownCsv.dataset.csv = 'shown';
  shownCsv.title = 'Download the points this chart shows (its range and resolution)';
  info.after(shownCsv);
  card.append(head, stats, plot, foot);

  let latest = { v: null, unit };
  const series = new Series();
  let pending = null;
  let gen = 0;
  let maxPoints = MAX_POINTS;
  let hovered = null;
  const chart = new LineChart(plot, {
    colors,
    unitLabel: () => readableUnit(latest.unit),
    onZoom: (from, to) => range.zoomTo(from, to),
    onPanBy: (ms) => range.panBy(ms),
    onReset: () => range.reset(),
    onHover: (h) => {
      hovered = h;
      self.hoverDirty = true;
      onDirty();
    },
  });
  plot.addEventListener('keydown', rangeKeys(range));
  const resize = new ResizeObserver(() => {
    chart.resize();
    self.dirty = true;
    onDirty();
  });

  shownCsv.addEventListener('click', () => {
    const [from, to] = range.bounds();
    csv.download(fileName('shown', from, to), [csv.HEADER, '\n', ...series.lines(from, to, line)]);
  });

  const self = {
    card,
    chart,
    kind: 'number',
    /** The data or the range changed: redraw (the page limits how often). */
    dirty: true,
    /** Only the hover text changed: update it in the next frame. */
    hoverDirty: false,
    drawnAt: 0,
    /** Call once the card is in the document. */
    mount() {
      chart.mount();
      resize.observe(plot);
    },
    add(ts, v, u) {
      latest = { v, unit: u };
      if (range.live) {
        if (pending) {
          if (pending.length < MAX_PENDING) pending.push({ ts, v });
        } else {
          series.push(ts, v);
        }
      }
      self.dirty = true;
      onDirty();
    },
    /** Loads the history of the shared range: one request. */
    async load() {
      const mine = ++gen;
      if (!pending) pending = [];
      const [from, to] = range.bounds();
      const live = range.live;
      maxPoints = pointsFor(chart.plotWidth());
      card.dataset.loading = 'true';
      card.dataset.maxPoints = String(maxPoints);
      setText(info, 'loading…');
      let note;
      let points = [];
      try {
        const r = await hub.get(`${readingsQuery(device, sensor)}${rangeQuery(from, to, live)}&max_points=${maxPoints}`);
        points = r.points.filter((p) => typeof p.value === 'number');
        note = `${points.length.toLocaleString()} points (at most ${maxPoints.toLocaleString()}: 2 per pixel)`;
      } catch (e) {
        note = `history unavailable: ${e.message}`;
      }
      if (mine !== gen) return;
      series.setHistory(points);
      if (live) for (const p of pending) series.push(p.ts, p.v);
      pending = null;
      if (latest.v === null && points.length > 0) latest = { v: points[points.length - 1].value, unit: latest.unit };
      setText(info, note);
      card.dataset.loading = 'false';
      self.dirty = true;
      onDirty();
    },
    draw(now) {
      self.drawnAt = now;
      self.dirty = false;
      const [from, to] = range.bounds();
      if (range.live) series.bound(from, to, maxPoints);
      chart.show(series.plotData(from, to), from, to);
      const s = series.stats(from, to);
      card.dataset.points = String(s?.n ?? 0);
      card.dataset.from = String(from);
      card.dataset.to = String(to);
      const unitText = readableUnit(latest.unit);
      const show = (v) => (v === undefined ? '–' : `${formatValue(v)}${unitText ? ` ${unitText}` : ''}`);
      setText(statValues.min, show(s?.min));
      setText(statValues.max, show(s?.max));
      setText(statValues.avg, show(s?.avg));
      setText(statValues.last, show(s?.last));
      setText(lastValue, typeof latest.v === 'number' ? formatValue(latest.v) : '–');
      showUnit(lastUnit, latest.unit);
      self.drawHover();
    },
    drawHover() {
      self.hoverDirty = false;
      const unitText = readableUnit(latest.unit);
      setText(hover, hovered ? `${formatValue(hovered.v)} ${unitText} · ${clock(hovered.t)}` : '');
    },
    dispose() {
      gen++;
      resize.disconnect();
      chart.destroy();
      card.remove();
    },
  };
  return self;
}

/** Unix ms → RFC 3339 for a query (`from`, `to`). */
function iso(ms) {
  return new Date(ms).toISOString();
}
