// A time-series chart on a <canvas>: a bounded ring buffer of (time, value) points
// and a draw() that the page calls at most once per animation frame when dirty.
//
// Points closer together than one "slot" (the history's bucket width, or range/2000
// for raw history) are merged into their running average, so a 10 Hz sensor fills at
// most ~2000 slots per window however long it streams: memory and drawing stay bounded.

import { axisClock, clock, timeTicks } from './time.js';
import { formatValue } from './values.js';

const CAPACITY = 4096;

export class TimeChart {
  constructor(canvas, colors) {
    this.canvas = canvas;
    this.colors = colors;
    this.t = new Float64Array(CAPACITY);
    this.v = new Float64Array(CAPACITY);
    this.n = new Float64Array(CAPACITY);
    this.start = 0;
    this.len = 0;
    this.rangeMs = 15 * 60e3;
    this.slotMs = 450;
    this.centered = false;
    this.hoverX = null;
    this.dirty = true;
    /** Redraw in the next frame, whatever the data rate limit says (hover, resize). */
    this.urgent = false;
  }

  /** Replaces the contents with history: points sorted by t, each {t, v}. */
  setHistory(points, rangeMs, bucketMs) {
    this.rangeMs = rangeMs;
    this.slotMs = bucketMs > 0 ? bucketMs : rangeMs / 2000;
    this.centered = bucketMs > 0;
    this.start = 0;
    this.len = 0;
    for (const p of points) this.push(p.t, p.v);
    this.dirty = true;
  }

  /** Adds a reading; one older than the newest slot is ignored (the feed is in order). */
  push(t, v) {
    if (!Number.isFinite(t) || !Number.isFinite(v)) return;
    // Bucketed history is plotted at bucket centres; live readings join the same grid.
    if (this.centered) t = Math.floor(t / this.slotMs) * this.slotMs + this.slotMs / 2;
    if (this.len > 0) {
      const last = (this.start + this.len - 1) % CAPACITY;
      const lastT = this.t[last];
      if (Math.floor(t / this.slotMs) === Math.floor(lastT / this.slotMs)) {
        const n = this.n[last] + 1;
        this.v[last] += (v - this.v[last]) / n;
        this.n[last] = n;
        this.dirty = true;
        return;
      }
      if (t < lastT) return;
    }
    let i;
    if (this.len === CAPACITY) {
      i = this.start;
      this.start = (this.start + 1) % CAPACITY;
    } else {
      i = (this.start + this.len) % CAPACITY;
      this.len++;
    }
    this.t[i] = t;
    this.v[i] = v;
    this.n[i] = 1;
    this.dirty = true;
  }

  at(k) {
    return (this.start + k) % CAPACITY;
  }

  /** Index (0..len) of the first point with t >= time. */
  firstFrom(time) {
    let lo = 0;
    let hi = this.len;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[this.at(mid)] < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Draws the window [now - range, now]; returns the number of points drawn. */
  draw(now) {
    this.dirty = false;
    this.urgent = false;
    const c = this.colors;
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth;
    const cssH = canvas.clientHeight;
    if (cssW === 0 || cssH === 0) return 0;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = '11px system-ui, sans-serif';

    const t0 = now - this.rangeMs;
    const first = this.firstFrom(t0);
    const count = this.len - first;
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = first; k < this.len; k++) {
      const v = this.v[this.at(k)];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (count === 0) {
      lo = 0;
      hi = 1;
    } else if (lo === hi) {
      const pad = Math.abs(lo) * 0.05 || 1;
      lo -= pad;
      hi += pad;
    }
    const ticks = niceTicks(lo, hi, Math.max(2, Math.floor(cssH / 45)));
    lo = Math.min(lo, ticks[0]);
    hi = Math.max(hi, ticks[ticks.length - 1]);

    const labelW = Math.max(...ticks.map((v) => g.measureText(formatTick(v, ticks)).width)) + 12;
    const plot = { x: labelW, y: 8, w: cssW - labelW - 10, h: cssH - 8 - 22 };
    const X = (t) => plot.x + ((t - t0) / this.rangeMs) * plot.w;
    const Y = (v) => plot.y + plot.h - ((v - lo) / (hi - lo)) * plot.h;

    // Grid and axes.
    g.strokeStyle = c.grid;
    g.fillStyle = c.muted;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const v of ticks) {
      const y = Math.round(Y(v)) + 0.5;
      g.beginPath();
      g.moveTo(plot.x, y);
      g.lineTo(plot.x + plot.w, y);
      g.stroke();
      g.fillText(formatTick(v, ticks), plot.x - 6, y);
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const t of timeTicks(t0, now, Math.max(2, Math.floor(plot.w / 80)))) {
      const x = Math.round(X(t)) + 0.5;
      g.beginPath();
      g.moveTo(x, plot.y);
      g.lineTo(x, plot.y + plot.h);
      g.stroke();
      g.fillText(axisClock(t, this.rangeMs), x, plot.y + plot.h + 6);
    }
    if (count === 0) {
      g.fillStyle = c.muted;
      g.textBaseline = 'middle';
      g.fillText('no readings in this range', plot.x + plot.w / 2, plot.y + plot.h / 2);
      return 0;
    }

    // The line, broken where readings are missing for a while; lone points as dots.
    const gap = Math.max(this.rangeMs / 30, this.slotMs * 5);
    g.save();
    g.beginPath();
    g.rect(plot.x, plot.y - 2, plot.w + 4, plot.h + 4);
    g.clip();
    g.strokeStyle = c.line;
    g.fillStyle = c.line;
    g.lineWidth = 1.5;
    g.lineJoin = 'round';
    g.beginPath();
    let prevT = -Infinity;
    for (let k = first; k < this.len; k++) {
      const i = this.at(k);
      const x = X(this.t[i]);
      const y = Y(this.v[i]);
      if (this.t[i] - prevT > gap) {
        g.moveTo(x, y);
        const next = k + 1 < this.len ? this.t[this.at(k + 1)] : Infinity;
        if (next - this.t[i] > gap) g.fillRect(x - 1.5, y - 1.5, 3, 3);
      } else {
        g.lineTo(x, y);
      }
      prevT = this.t[i];
    }
    g.stroke();
    const last = this.at(this.len - 1);
    g.beginPath();
    g.arc(X(this.t[last]), Y(this.v[last]), 3, 0, 2 * Math.PI);
    g.fill();
    g.restore();

    if (this.hoverX !== null) this.drawHover(g, plot, X, Y, first, t0);
    return count;
  }

  drawHover(g, plot, X, Y, first, t0) {
    const c = this.colors;
    const t = t0 + ((this.hoverX - plot.x) / plot.w) * this.rangeMs;
    let k = this.firstFrom(t);
    if (k >= this.len || (k > first && t - this.t[this.at(k - 1)] < this.t[this.at(k)] - t)) k--;
    if (k < first) return;
    const i = this.at(k);
    const x = X(this.t[i]);
    const y = Y(this.v[i]);
    g.strokeStyle = c.muted;
    g.setLineDash([3, 3]);
    g.beginPath();
    g.moveTo(Math.round(x) + 0.5, plot.y);
    g.lineTo(Math.round(x) + 0.5, plot.y + plot.h);
    g.stroke();
    g.setLineDash([]);
    const label = `${formatValue(this.v[i])}  ${clock(this.t[i])}`;
    const w = g.measureText(label).width + 12;
    const bx = Math.min(Math.max(x - w / 2, plot.x), plot.x + plot.w - w);
    g.fillStyle = c.tooltip;
    g.fillRect(bx, plot.y, w, 20);
    g.fillStyle = c.text;
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    g.fillText(label, bx + 6, plot.y + 10);
    g.fillStyle = c.line;
    g.beginPath();
    g.arc(x, y, 4, 0, 2 * Math.PI);
    g.fill();
  }
}

/** About `n` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, n) {
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 0.5 && ticks.length < 50; v += step) {
    ticks.push(Math.round(v / step) * step);
  }
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

function formatTick(v, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return Math.abs(v) >= 1e6 ? v.toExponential(2) : v.toFixed(decimals);
}
