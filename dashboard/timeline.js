// A state timeline on a <canvas>: the history of a boolean or string sensor as
// horizontal bands, one colour per distinct state (with a legend), the state's text on
// every band wide enough to hold it and in a tip on hover, and the bands as a text list
// for assistive technology (the canvas's description).
//
// It draws whatever range it is given (the page's shared range, range.js); its card
// (timeline-card.js) loads the history and turns gestures into range changes:
//   new StateTimeline(canvas, colors, label)  label(value) → the text shown for a value
//   .parts                    elements to place after the canvas: legend, hover tip, band list
//   .setHistory(points, before)  points {t, v} sorted by t (every change and the last
//                             suffice); `before`: the state the range opens in, known only
//                             from a reading older than the range (its band starts "before")
//   .push(t, v)               a reading, in time order: extends the current band or starts one
//   .draw(from, to)           draws [from, to]; returns the number of bands drawn
//   .timeAt(x)                the time at x (CSS px over the canvas) in the last drawing
//   .hoverX / .selection      pointer x over the canvas or null; [x0, x1] being dragged or null
//
// A band lasts from its first reading to the next band's first. The current band reaches
// the range's end, paler after its last reading (the state has not been confirmed since).
// At most MAX_BANDS bands are kept, the oldest dropped first; MAX_STATES states get their
// own colour and legend entry, any more share colours.

import { el, setText } from './dom.js';
import { axisClock, clock, span, timeTicks } from './time.js';

const MAX_BANDS = 2000;
const MAX_STATES = 24;
/** Bands listed in the description: the newest ones. */
const LISTED = 50;
/** Calm colours for text states (no red: a state is not an alarm unless an alert says so). */
const PALETTE = ['#4cb3ff', '#f0b429', '#3ccf7a', '#b48cff', '#2ec4b6', '#ff8c42', '#e86fb0', '#a3b86c'];
/** Booleans: true (open, on) stands out, false is quiet. */
const BOOL_COLORS = { true: '#f0b429', false: '#8a98a8' };
const INK = '#0b1016';
/** Bands narrower than this get no text (and no costly text measuring). */
const MIN_LABEL_PX = 16;
let lists = 0;

export class StateTimeline {
  constructor(canvas, colors, label) {
    this.canvas = canvas;
    this.colors = colors;
    this.label = label;
    this.bands = [];
    this.hoverX = null;
    this.selection = null;
    this.plot = null;
    /** Changes when a band starts or the history is replaced: the list is rebuilt then. */
    this.version = 0;
    this.listed = '';
    this.stateColors = new Map();
    this.legend = el('ul', 'tl-legend');
    this.legend.setAttribute('aria-label', 'States');
    this.tip = el('div', 'tl-tip');
    this.tip.setAttribute('role', 'tooltip');
    this.tip.hidden = true;
    this.list = el('ol', 'tl-bands visually-hidden');
    this.list.id = `tl-bands-${++lists}`;
    canvas.classList.add('timeline');
    canvas.setAttribute('aria-describedby', this.list.id);
    this.parts = [this.legend, this.tip, this.list];
  }

  setHistory(points, before = null) {
    this.bands = [];
    this.stateColors.clear();
    this.legend.replaceChildren();
    this.version++;
    if (before) {
      this.push(before.t, before.v);
      this.bands[0].before = true;
    }
    for (const p of points) this.push(p.t, p.v);
  }

  push(t, v) {
    if (!Number.isFinite(t) || v === null || v === undefined) return;
    const b = this.bands[this.bands.length - 1];
    if (b && t < b.last) return;
    if (b && b.v === v) {
      b.last = t;
    } else {
      // Dropping a quarter at a time keeps a long history load linear.
      if (this.bands.length >= MAX_BANDS) this.bands.splice(0, MAX_BANDS / 4);
      this.bands.push({ t, v, last: t });
      this.colorOf(v);
      this.version++;
    }
  }

  /** The colour of a state: fixed for booleans; for texts, the hash's palette colour unless another state has it. */
  colorOf(v) {
    const key = `${typeof v}:${v}`;
    const known = this.stateColors.get(key);
    if (known) return known;
    let color;
    if (typeof v === 'boolean') {
      color = BOOL_COLORS[v];
    } else {
      const preferred = hash(String(v)) % PALETTE.length;
      const used = new Set(this.stateColors.values());
      color = PALETTE[preferred];
      for (let i = 0; i < PALETTE.length && used.has(color); i++) color = PALETTE[(preferred + i) % PALETTE.length];
    }
    if (this.stateColors.size >= MAX_STATES) return color;
    this.stateColors.set(key, color);
    const swatch = el('span', 'sw');
    swatch.style.background = color;
    const item = el('li');
    item.dataset.state = this.label(v);
    item.append(swatch, el('span', 'name', this.label(v)));
    this.legend.append(item);
    return color;
  }

  /** Index of the band holding time `t` (the first band when `t` is before it). */
  bandAt(t) {
    let lo = 0;
    let hi = this.bands.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.bands[mid].t <= t) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(0, lo - 1);
  }

  end(k, now) {
    return k + 1 < this.bands.length ? this.bands[k + 1].t : Math.max(now, this.bands[k].last);
  }

  /** The time at `x` CSS pixels from the canvas's left edge (clamped to the plot). */
  timeAt(x) {
    const p = this.plot;
    if (!p) return NaN;
    return p.from + (Math.min(Math.max(x - p.x, 0), p.w) / p.w) * (p.to - p.from);
  }

  draw(from, to) {
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
    const plot = { x: 8, y: 4, w: cssW - 16, h: cssH - 4 - 20, from, to };
    this.plot = plot;
    const X = (t) => plot.x + ((t - from) / (to - from)) * plot.w;
    this.drawAxis(g, plot, X, from, to);

    const first = this.bandAt(from);
    let drawn = 0;
    g.textBaseline = 'middle';
    g.textAlign = 'left';
    for (let k = first; k < this.bands.length; k++) {
      const b = this.bands[k];
      const x0 = Math.max(X(b.t), plot.x);
      const x1 = Math.min(X(this.end(k, to)), plot.x + plot.w);
      if (x1 <= x0) continue;
      drawn++;
      const current = k + 1 === this.bands.length;
      // A pixel of background between bands, so neighbours never melt together; the
      // current band is solid up to its last reading.
      const solid = current ? Math.min(Math.max(X(b.last), x0), x1) : x1 - (x1 - x0 > 2 ? 1 : 0);
      g.fillStyle = this.colorOf(b.v);
      g.fillRect(x0, plot.y, solid - x0, plot.h);
      if (solid < x1 && current) {
        g.globalAlpha = 0.4;
        g.fillRect(solid, plot.y, x1 - solid, plot.h);
        g.globalAlpha = 1;
      }
      const text = x1 - x0 >= MIN_LABEL_PX ? this.label(b.v) : '';
      if (text && x1 - x0 >= g.measureText(text).width + 10) {
        g.fillStyle = INK;
        g.fillText(text, x0 + 5, plot.y + plot.h / 2);
      }
    }
    if (drawn === 0) {
      g.fillStyle = this.colors.muted;
      g.textAlign = 'center';
      g.fillText('no readings in this range', plot.x + plot.w / 2, plot.y + plot.h / 2);
    }
    this.drawHover(g, plot, X, to);
    this.drawSelection(g, plot);
    this.describe(first, to);
    return drawn;
  }

  /** The span being dragged (a zoom to come), as on the line charts. */
  drawSelection(g, plot) {
    if (!this.selection) return;
    const [a, b] = this.selection;
    const x0 = Math.max(Math.min(a, b), plot.x);
    const x1 = Math.min(Math.max(a, b), plot.x + plot.w);
    g.fillStyle = 'rgb(76 179 255 / .25)';
    g.fillRect(x0, plot.y, Math.max(0, x1 - x0), plot.h);
  }

  drawAxis(g, plot, X, from, to) {
    g.strokeStyle = this.colors.grid;
    g.fillStyle = this.colors.muted;
    g.lineWidth = 1;
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const t of timeTicks(from, to, Math.max(2, Math.floor(plot.w / 80)))) {
      const x = Math.round(X(t)) + 0.5;
      g.beginPath();
      g.moveTo(x, plot.y + plot.h);
      g.lineTo(x, plot.y + plot.h + 4);
      g.stroke();
      const text = axisClock(t, to - from);
      const half = g.measureText(text).width / 2;
      g.fillText(text, Math.min(Math.max(x, half), plot.x + plot.w + 8 - half), plot.y + plot.h + 6);
    }
  }

  /** Outlines the band under the pointer and shows its state and times in the tip. */
  drawHover(g, plot, X, now) {
    const t = this.hoverX === null || this.selection ? NaN : this.timeAt(this.hoverX);
    const k = this.bandAt(t);
    const b = this.bands[k];
    if (!b || !(t >= b.t && t <= now)) {
      this.tip.hidden = true;
      return;
    }
    const end = this.end(k, now);
    const x0 = Math.max(X(b.t), plot.x);
    const x1 = Math.min(X(end), plot.x + plot.w);
    g.strokeStyle = this.colors.text;
    g.lineWidth = 2;
    g.strokeRect(x0 + 1, plot.y + 1, Math.max(0, x1 - x0 - 2), plot.h - 2);
    const label = this.label(b.v);
    // A band the range opens in started at some time before it: its length is unknown.
    const start = b.before ? `before ${clock(b.t)}` : clock(b.t);
    const length = (until) => (b.before ? '' : ` (${span(until - b.t)})`);
    const reported = b.before && b.last === b.t ? `before ${clock(b.t)}` : clock(b.last);
    const text =
      k + 1 < this.bands.length
        ? `${label} · ${start} – ${clock(end)}${length(end)}`
        : `${label} · since ${start}${length(now)}, last reported ${reported}`;
    setText(this.tip, text);
    this.tip.dataset.state = label;
    this.tip.style.left = `${this.canvas.offsetLeft + this.hoverX}px`;
    this.tip.style.top = `${this.canvas.offsetTop}px`;
    this.tip.hidden = false;
  }

  /** Lists the newest bands of the window as text (rebuilt only when bands change). */
  describe(first, now) {
    const from = Math.max(first, this.bands.length - LISTED);
    const key = `${this.version}:${from}`;
    if (key === this.listed) return;
    this.listed = key;
    const items = [];
    for (let k = from; k < this.bands.length; k++) {
      const b = this.bands[k];
      const label = this.label(b.v);
      const ongoing = k + 1 === this.bands.length;
      const start = `${b.before ? 'before ' : ''}${clock(b.t)}`;
      const item = el(
        'li',
        null,
        ongoing ? `${label} since ${start}` : `${label} from ${start} to ${clock(this.end(k, now))}`,
      );
      item.dataset.state = label;
      item.dataset.from = String(b.t);
      item.dataset.to = ongoing ? '' : String(this.end(k, now));
      items.push(item);
    }
    this.list.replaceChildren(...items);
  }
}

/** FNV-1a of a string: a stable palette slot for a state. */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
