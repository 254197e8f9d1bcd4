// A line chart on uPlot (vendor/uPlot.esm.js, MIT; see dashboard/README.md for why).
//
// The x scale is always the shared time range, never the data's extent: the card
// passes [from, to) with every draw. Gestures do not change the scale themselves but
// ask the page to change the shared range, so every chart follows:
//   drag          → onZoom(from, to)         shift+drag → onPanBy(ms) (previewed while dragging)
//   double-click  → onReset()                hover      → onHover(text or null)
// The crosshair is synchronised across charts (uPlot's cursor sync on the time value).

import uPlot from './vendor/uPlot.esm.js';
import { clock } from './time.js';
import { formatValue } from './values.js';

const HEIGHT = 220;
const SYNC = uPlot.sync('telehub-time');
/** A drag narrower than this (CSS px) is a click, not a zoom. */
const MIN_DRAG_PX = 4;

export class LineChart {
  constructor(host, { colors, unitLabel, onZoom, onPanBy, onReset, onHover }) {
    this.host = host;
    this.colors = colors;
    this.unitLabel = unitLabel;
    this.handlers = { onZoom, onPanBy, onReset, onHover };
    this.from = Date.now() - 15 * 60e3;
    this.to = Date.now();
    this.u = null;
    this.panning = null;
  }

  /** Creates the plot once the host is in the document (it takes the host's width). */
  mount() {
    const c = this.colors;
    const axis = {
      stroke: c.muted,
      grid: { stroke: c.grid, width: 1 },
      ticks: { stroke: c.grid, width: 1 },
      font: '11px system-ui, sans-serif',
      labelFont: '12px system-ui, sans-serif',
    };
    const opts = {
      width: Math.max(200, this.host.clientWidth),
      height: HEIGHT,
      ms: 1,
      legend: { show: false },
      cursor: {
        sync: { key: SYNC.key },
        drag: { x: true, y: false, setScale: false },
        points: { size: 7, fill: c.line },
        bind: {
          mousedown: (u, target, handler) => (e) => {
            if (e.shiftKey && e.button === 0) this.startPan(e);
            else handler(e);
            return null;
          },
          dblclick: () => (e) => {
            e.preventDefault();
            this.handlers.onReset();
            return null;
          },
        },
      },
      scales: {
        x: { time: true, range: () => [this.from, this.to] },
        y: {
          range: (u, lo, hi) => {
            if (lo === null || hi === null) return [0, 1];
            if (lo === hi) {
              const pad = Math.abs(lo) * 0.05 || 1;
              return [lo - pad, hi + pad];
            }
            return uPlot.rangeNum(lo, hi, 0.1, true);
          },
        },
      },
      axes: [
        { ...axis, space: 70, values: (u, ticks, i, space, incr) => ticks.map((t) => timeLabel(t, incr)) },
        {
          ...axis,
          label: () => this.unitLabel(),
          labelSize: 18,
          size: (u, values, i, cycle) => yAxisSize(u, values, i, cycle),
          values: (u, ticks) => ticks.map((v) => formatValue(v)),
        },
      ],
      series: [
        { value: (u, t) => (t === null ? '' : clock(t)) },
        {
          stroke: c.line,
          width: 1.5,
          spanGaps: false,
          points: { show: (u, si, i0, i1) => i1 - i0 < u.bbox.width / 40, size: 5, fill: c.line },
        },
      ],
      hooks: {
        setSelect: [(u) => this.selected(u)],
        setCursor: [(u) => this.hovered(u)],
        draw: [(u) => this.drawLast(u)],
      },
    };
    this.u = new uPlot(opts, [[], []], this.host);
  }

  /** Draws `data` ([times, values]) over [from, to). */
  show(data, from, to) {
    if (!this.u) return;
    if (this.panning) return;
    this.from = from;
    this.to = to;
    this.u.setData(data);
  }

  /** The width of the plotting area in CSS pixels (what the resolution is for). */
  plotWidth() {
    if (this.u) return Math.round(this.u.bbox.width / uPlot.pxRatio);
    return Math.max(100, this.host.clientWidth - 70);
  }

  resize() {
    if (!this.u) return;
    const width = Math.max(200, this.host.clientWidth);
    if (width !== this.u.width) this.u.setSize({ width, height: HEIGHT });
  }

  destroy() {
    this.u?.destroy();
    this.u = null;
  }

  selected(u) {
    const { left, width } = u.select;
    if (width <= 0) return;
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (width < MIN_DRAG_PX) return;
    this.handlers.onZoom(u.posToVal(left, 'x'), u.posToVal(left + width, 'x'));
  }

  hovered(u) {
    const i = u.cursor.idx;
    const v = i === null || i === undefined ? null : u.data[1][i];
    if (v === null || v === undefined) return this.handlers.onHover(null);
    return this.handlers.onHover({ t: u.data[0][i], v });
  }

  /** The newest point as a dot: where the line ends now. */
  drawLast(u) {
    const xs = u.data[0];
    const ys = u.data[1];
    let i = ys.length - 1;
    while (i >= 0 && ys[i] === null) i--;
    if (i < 0 || xs[i] < this.from || xs[i] > this.to) return;
    const x = u.valToPos(xs[i], 'x', true);
    const y = u.valToPos(ys[i], 'y', true);
    const g = u.ctx;
    g.save();
    g.fillStyle = this.colors.line;
    g.beginPath();
    g.arc(x, y, 3.5 * uPlot.pxRatio, 0, 2 * Math.PI);
    g.fill();
    g.restore();
  }

  /** Shift+drag: the plot follows the pointer; the shared range moves on release. */
  startPan(e) {
    const u = this.u;
    const x0 = e.clientX;
    const [from, to] = [this.from, this.to];
    const msPerPx = (to - from) / Math.max(1, this.plotWidth());
    this.panning = { moved: 0 };
    const move = (ev) => {
      const ms = -(ev.clientX - x0) * msPerPx;
      this.panning.moved = ms;
      this.from = from + ms;
      this.to = to + ms;
      u.setScale('x', { min: this.from, max: this.to });
    };
    const up = () => {
      document.removeEventListener('mousemove', move);
      document.removeEventListener('mouseup', up);
      const ms = this.panning.moved;
      this.panning = null;
      if (Math.abs(ms) > 0) this.handlers.onPanBy(ms);
    };
    document.addEventListener('mousemove', move);
    document.addEventListener('mouseup', up);
    e.preventDefault();
  }
}

/** A time axis label: `10:15:30`, `10:15`, or `21 Nov` / `21 Nov 10:00` for days. */
function timeLabel(t, incr) {
  if (incr < 60e3) return clock(t);
  if (incr < 3600e3 * 3) return clock(t, false);
  const d = new Date(t);
  const day = d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
  return d.getHours() === 0 && d.getMinutes() === 0 ? day : `${day} ${clock(t, false)}`;
}

/** The y axis as wide as its longest label (plus ticks and the unit label). */
function yAxisSize(u, values, i, cycle) {
  const axis = u.axes[i];
  if (cycle > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values ?? []).reduce((a, v) => (v.length > a.length ? v : a), '');
  if (longest !== '') {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / uPlot.pxRatio;
  }
  return Math.ceil(size) + 4;
}
