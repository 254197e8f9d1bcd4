// One chart card: history from GET /v1/readings, then live readings appended.
//
// A numeric sensor is a line (chart.js): its history is loaded raw when the range holds
// at most 1000 readings, else as `every`/`agg=avg` buckets (about 1000 of them). A
// boolean or string sensor is a state timeline (timeline.js): its history is every
// change of state, `max_points` (which keeps each transition of such a series, §10),
// never an average. Live readings that arrive while the history loads wait in a
// bounded list and are appended after it.

import { TimeChart } from './chart.js';
import { el, setText } from './dom.js';
import { StateTimeline } from './timeline.js';
import { display, isState, showValue } from './values.js';

const HISTORY_POINTS = 1000;
const MAX_PENDING = 20_000;

export function makeChart({ device, sensor, kind, unit, colors, onClose, onDirty }) {
  const states = isState(kind);
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
  const lastUnit = el('span', 'u', unit);
  last.append(lastValue, lastUnit);
  const info = el('span', 'c-info');
  const close = el('button', 'c-close', '×');
  close.type = 'button';
  close.title = 'Close this chart';
  close.setAttribute('aria-label', `Close the chart of ${device} / ${sensor}`);
  close.addEventListener('click', onClose);
  head.append(title, last, info, close);
  const canvas = el('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', states ? `states of ${sensor} of ${device} over time` : `${sensor} of ${device} over time`);
  const chart = states
    ? new StateTimeline(canvas, colors, (v) => display(sensor, v))
    : new TimeChart(canvas, colors);
  card.append(head, canvas, ...(chart.parts ?? []));

  const resize = new ResizeObserver(() => {
    chart.dirty = chart.urgent = true;
    onDirty();
  });
  resize.observe(canvas);
  canvas.addEventListener('mousemove', (e) => {
    chart.hoverX = e.offsetX;
    chart.dirty = chart.urgent = true;
    onDirty();
  });
  canvas.addEventListener('mouseleave', () => {
    chart.hoverX = null;
    chart.dirty = chart.urgent = true;
    onDirty();
  });

  let gen = 0;
  let pending = null;
  let latest = { v: null, unit };

  return {
    card,
    chart,
    kind,
    drawnAt: 0,
    add(t, v, u) {
      latest = { v, unit: u };
      if (pending) {
        if (pending.length < MAX_PENDING) pending.push({ t, v });
      } else {
        chart.push(t, v);
      }
      chart.dirty = true;
      onDirty();
    },
    async load(hub, rangeS) {
      const mine = ++gen;
      // A load already in flight keeps what it gathered: this one takes it over.
      if (!pending) pending = [];
      info.textContent = 'loading history…';
      card.dataset.loading = 'true';
      let points = [];
      let bucketMs = 0;
      let note;
      try {
        ({ points, bucketMs, note } = await history(hub, device, sensor, rangeS, states));
      } catch (e) {
        note = `history unavailable: ${e.message}`;
      }
      if (mine !== gen) return;
      chart.setHistory(points, rangeS * 1000, bucketMs);
      for (const p of pending) chart.push(p.t, p.v);
      pending = null;
      if (latest.v === null && points.length > 0) latest = { v: points[points.length - 1].v, unit: latest.unit };
      info.textContent = note;
      card.dataset.loading = 'false';
      onDirty();
    },
    draw(now) {
      this.drawnAt = now;
      card.dataset.points = String(chart.draw(now));
      showValue(lastValue, sensor, latest.v);
      setText(lastUnit, latest.unit);
    },
    dispose() {
      gen++;
      resize.disconnect();
      card.remove();
    },
  };
}

/** The history of a chart: points `{t, v}`, the bucket width (0: raw) and what they are. */
async function history(hub, device, sensor, rangeS, states) {
  const q = `/v1/readings?device=${encodeURIComponent(device)}&sensor=${encodeURIComponent(sensor)}&from=-${rangeS}s`;
  const points = (r) => r.points.map((p) => ({ t: Date.parse(p.ts), v: p.value }));
  if (states) {
    const r = await hub.get(`${q}&max_points=${HISTORY_POINTS}`);
    return { points: points(r), bucketMs: 0, note: 'every change' };
  }
  const r = await hub.get(`${q}&limit=${HISTORY_POINTS}`);
  if (!r.next_cursor) return { points: points(r), bucketMs: 0, note: 'every reading' };
  const every = Math.max(1, Math.ceil(rangeS / HISTORY_POINTS));
  const buckets = await hub.get(`${q}&every=${every}s&agg=avg`);
  return { points: points(buckets), bucketMs: every * 1000, note: `${every} s averages` };
}
