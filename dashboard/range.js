// The one time range every chart (and state timeline) shows.
//
// A range is either live — the last `spanMs`, sliding with the clock, live readings
// appended — or fixed — [from, to) in Unix ms. The range picker sets the *base* range
// (a preset or from/to); drag-zoom, panning and keyboard zoom change the *view* from
// there, and reset goes back to the base. Every change is announced once to the
// listeners (the charts refetch, the address is rewritten).

const MIN_SPAN_MS = 1000;
export const MAX_SPAN_MS = 30 * 86400e3;

/** Presets of the picker: live spans. */
export const PRESETS = [
  ['15m', 15 * 60e3],
  ['1h', 3600e3],
  ['6h', 6 * 3600e3],
  ['24h', 86400e3],
  ['7d', 7 * 86400e3],
  ['30d', 30 * 86400e3],
];

const clampSpan = (ms) => Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, ms));

export class TimeRange {
  constructor(now = () => Date.now()) {
    this.now = now;
    this.base = { spanMs: 15 * 60e3, to: null };
    this.view = this.base;
    this.listeners = [];
  }

  /** Live ranges end at "now" and take live readings. */
  get live() {
    return this.view.to === null;
  }

  get zoomed() {
    return this.view !== this.base;
  }

  get spanMs() {
    return this.view.spanMs;
  }

  /** [from, to) in Unix ms, now. */
  bounds() {
    return this.boundsOf(this.view);
  }

  /** [from, to) of `view` (this range's view at some moment: `{spanMs, to}`), now. */
  boundsOf(view) {
    const to = view.to ?? this.now();
    return [to - view.spanMs, to];
  }

  onChange(fn) {
    this.listeners.push(fn);
  }

  /** The picker: a live span (`fixedTo` null) or a fixed [from, to). Clears the zoom. */
  setBase(spanMs, fixedTo = null) {
    this.base = { spanMs: clampSpan(spanMs), to: fixedTo };
    this.set(this.base, true);
  }

  /** Shows [from, to) (a drag-zoom); a range reaching now becomes live. */
  zoomTo(from, to) {
    from = Math.round(from);
    to = Math.round(to);
    if (!(to > from)) return;
    const now = this.now();
    const spanMs = clampSpan(to - from);
    if (to >= now - 500) this.set({ spanMs, to: null });
    else this.set({ spanMs, to: Math.min(to, now) });
  }

  /** Zooms by `factor` (< 1 in, > 1 out) around the middle. */
  zoomBy(factor) {
    const [from, to] = this.bounds();
    const mid = this.live ? to : (from + to) / 2;
    const spanMs = clampSpan((to - from) * factor);
    if (this.live) this.set({ spanMs, to: null });
    else this.zoomTo(mid - spanMs / 2, mid + spanMs / 2);
  }

  /** Moves the view by `fraction` of its span (negative: back in time). */
  pan(fraction) {
    this.panBy(fraction * this.view.spanMs);
  }

  /** Moves the view by `ms`; reaching now makes it live again. */
  panBy(ms) {
    const [from, to] = this.bounds();
    this.zoomTo(from + ms, to + ms);
  }

  reset() {
    this.set(this.base, this.view !== this.base);
  }

  set(view, always = false) {
    const same = view.spanMs === this.view.spanMs && view.to === this.view.to;
    this.view = view;
    if (same && !always) return;
    for (const fn of this.listeners) fn(this);
  }
}

/** `15m`, `2h`, `7d`, `90s` → ms; null when it is none of these. */
export function parseSpan(text) {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text ?? '');
  if (!m) return null;
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
  return Number(m[1]) * unit;
}

/** ms → the shortest of `30d`, `6h`, `15m`, `90s`. */
export function formatSpan(ms) {
  for (const [u, w] of [
    ['d', 86400e3],
    ['h', 3600e3],
    ['m', 60e3],
  ]) {
    if (ms % w === 0) return `${ms / w}${u}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
