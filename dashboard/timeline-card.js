// One state timeline card: a boolean or string sensor over the shared time range, the
// same range as every line chart (range.js).
//
// Each change of the range refetches the history of the range: every change of state in
// it (`max_points`, which keeps each transition of a state series, never an average) and,
// in a second request, the state the range opens in (the last reading of the BEFORE_MIN_MS
// or one span before it, whichever is longer), so that a zoom into one long state still
// shows it. While the range ends at now, live readings extend the current band or start
// a new one. The gestures are the line charts' and change the shared range: drag zooms,
// shift+drag pans (the timeline follows the pointer), double-click and Escape reset, the
// arrow keys pan, + and − zoom.
//
// A timeline draws its bands over the range they were loaded for, never over another:
// when the shared range changes it goes on showing the previous range (axis and bands
// together) until the new range's history has arrived, then switches both at once. Drawn
// over a newer range, an older history would show a state "from before" a time inside
// the new range, or no state where one held (issue 28: the "follows the shared range"
// flake was a timeline drawn between a range change and the end of its load).

import { GESTURES, MAX_PENDING, cardParts, pointsFor, rangeKeys, rangeQuery, readingsQuery } from './chart-card.js';
import { el, setText } from './dom.js';
import { StateTimeline } from './timeline.js';
import { showUnit } from './units.js';
import { display, showValue } from './values.js';

/** The state a range opens in is looked for at least this far back. */
const BEFORE_MIN_MS = 3600e3;
const BEFORE_MAX_MS = 30 * 86400e3;
/** A drag narrower than this (CSS px) is a click, not a zoom. */
const MIN_DRAG_PX = 4;

export function makeTimelineCard({ device, sensor, kind, unit, colors, range, hub, onClose, onDirty }) {
  let latest = { v: null, unit };
  const { card, head, lastValue, lastUnit, foot, info } = cardParts({
    device,
    sensor,
    kind,
    hub,
    range,
    onClose,
    unit: () => latest.unit,
  });
  const canvas = el('canvas');
  canvas.tabIndex = 0;
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `states of ${sensor} of ${device} over time. ${GESTURES}`);
  const chart = new StateTimeline(canvas, colors, (v) => display(sensor, v));
  card.append(head, canvas, ...chart.parts, foot);

  let pending = null;
  let gen = 0;
  /** The range view (`range.view`) the bands were loaded for: the one drawn. */
  let shown = range.view;
  /** A shift+drag in progress: the timeline shows the range moved by `ms`. */
  let panning = null;
  const redraw = () => {
    self.dirty = true;
    onDirty();
  };
  const resize = new ResizeObserver(redraw);
  const xOf = (e) => e.clientX - canvas.getBoundingClientRect().left;

  canvas.addEventListener('keydown', rangeKeys(range));
  canvas.addEventListener('dblclick', (e) => {
    e.preventDefault();
    range.reset();
  });
  canvas.addEventListener('mousemove', (e) => {
    chart.hoverX = xOf(e);
    redraw();
  });
  canvas.addEventListener('mouseleave', () => {
    chart.hoverX = null;
    redraw();
  });
  canvas.addEventListener('mousedown', (e) => {
    if (e.button !== 0 || !chart.plot) return;
    e.preventDefault();
    canvas.focus({ preventScroll: true });
    const x0 = xOf(e);
    const msPerPx = (chart.plot.to - chart.plot.from) / chart.plot.w;
    if (e.shiftKey) panning = { ms: 0 };
    const move = (ev) => {
      const x1 = xOf(ev);
      if (panning) panning.ms = -(x1 - x0) * msPerPx;
      else chart.selection = [x0, x1];
      redraw();
    };
    const up = (ev) => {
      document.removeEventListener('mousemove', move);
      document.removeEventListener('mouseup', up);
      const x1 = xOf(ev);
      chart.selection = null;
      redraw();
      if (panning) {
        const { ms } = panning;
        panning = null;
        if (ms !== 0) range.panBy(ms);
      } else if (Math.abs(x1 - x0) >= MIN_DRAG_PX) {
        range.zoomTo(chart.timeAt(Math.min(x0, x1)), chart.timeAt(Math.max(x0, x1)));
      }
    };
    document.addEventListener('mousemove', move);
    document.addEventListener('mouseup', up);
  });

  const self = {
    card,
    chart,
    kind,
    /** The data or the range changed (or the pointer moved): redraw in the next frame. */
    dirty: true,
    hoverDirty: false,
    drawnAt: 0,
    mount() {
      resize.observe(canvas);
    },
    add(ts, v, u) {
      latest = { v, unit: u };
      if (range.live) {
        const t = Date.parse(ts);
        if (pending) {
          if (pending.length < MAX_PENDING) pending.push({ t, v });
        } else {
          chart.push(t, v);
        }
      }
      redraw();
    },
    /** Loads the changes of the shared range and the state it opens in. */
    async load() {
      const mine = ++gen;
      if (!pending) pending = [];
      const view = range.view;
      const [from, to] = range.boundsOf(view);
      const live = range.live;
      const maxPoints = pointsFor(canvas.clientWidth - 16);
      const back = Math.min(BEFORE_MAX_MS, Math.max(BEFORE_MIN_MS, to - from));
      card.dataset.loading = 'true';
      card.dataset.maxPoints = String(maxPoints);
      setText(info, 'loading…');
      let note = 'every change';
      let points = [];
      let before = null;
      try {
        const q = readingsQuery(device, sensor);
        const [changes, earlier] = await Promise.all([
          hub.get(`${q}${rangeQuery(from, to, live)}&max_points=${maxPoints}`),
          hub.get(`${q}${rangeQuery(from - back, from, false)}&max_points=${pointsFor(0)}`),
        ]);
        points = changes.points.map((p) => ({ t: Date.parse(p.ts), v: p.value }));
        const last = earlier.points[earlier.points.length - 1];
        if (last) before = { t: from, v: last.value };
      } catch (e) {
        note = `history unavailable: ${e.message}`;
      }
      if (mine !== gen) return;
      shown = view;
      chart.setHistory(points, before);
      if (live) for (const p of pending) chart.push(p.t, p.v);
      pending = null;
      const newest = points[points.length - 1] ?? before;
      if (latest.v === null && newest) latest = { v: newest.v, unit: latest.unit };
      setText(info, note);
      card.dataset.loading = 'false';
      redraw();
    },
    draw(now) {
      self.drawnAt = now;
      self.dirty = false;
      const [from, to] = range.boundsOf(shown);
      const ms = panning?.ms ?? 0;
      card.dataset.points = String(chart.draw(from + ms, to + ms));
      card.dataset.from = String(from);
      card.dataset.to = String(to);
      showValue(lastValue, sensor, latest.v);
      showUnit(lastUnit, latest.unit);
    },
    dispose() {
      gen++;
      resize.disconnect();
      card.remove();
    },
  };
  return self;
}
