// The points one chart holds: history from GET /v1/readings (`max_points`, so raw
// readings, or real readings picked by M4 when the range holds more), then live
// readings appended. Each point keeps the hub's timestamp text, so a CSV of what the
// chart shows repeats the API's answer exactly.
//
// Live readings arrive at any rate, so the points are bounded: when more than
// `3 × limit` lie in the range, they are thinned by M4 (per time column the first,
// lowest, highest and last) back to `limit`, the same rule the hub applies, keeping
// every spike. Points older than the range are dropped.

export class Series {
  constructor() {
    this.t = []; // Unix ms
    this.v = []; // numbers
    this.ts = []; // the hub's RFC 3339 text
  }

  get length() {
    return this.t.length;
  }

  /** Replaces the points with `points` ({ts, value}, sorted) from the API. */
  setHistory(points) {
    this.t = points.map((p) => Date.parse(p.ts));
    this.v = points.map((p) => p.value);
    this.ts = points.map((p) => p.ts);
  }

  /** Appends a reading newer than the last point (the live feed is in order). */
  push(ts, v) {
    const t = Date.parse(ts);
    if (!Number.isFinite(t) || typeof v !== 'number') return false;
    const n = this.t.length;
    if (n > 0 && t <= this.t[n - 1]) return false;
    this.t.push(t);
    this.v.push(v);
    this.ts.push(ts);
    return true;
  }

  /** Index of the first point with t >= time. */
  index(time) {
    let lo = 0;
    let hi = this.t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.t[mid] < time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Keeps the points of [from, to) bounded: drops older ones, thins to `limit` by M4. */
  bound(from, to, limit) {
    const first = this.index(from);
    if (first > 0) {
      this.t.splice(0, first);
      this.v.splice(0, first);
      this.ts.splice(0, first);
    }
    if (this.t.length <= 3 * limit) return;
    const keep = m4(this.t, this.v, from, to, limit);
    this.t = keep.map((i) => this.t[i]);
    this.v = keep.map((i) => this.v[i]);
    this.ts = keep.map((i) => this.ts[i]);
  }

  /** min, max, average and last of the points in [from, to); null when there are none. */
  stats(from, to) {
    const i0 = this.index(from);
    const i1 = this.index(to);
    if (i1 <= i0) return null;
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (let i = i0; i < i1; i++) {
      const v = this.v[i];
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
    }
    return { min, max, avg: sum / (i1 - i0), last: this.v[i1 - 1], n: i1 - i0 };
  }

  /** The CSV lines of the points in [from, to), through `line(ts, value)`. */
  lines(from, to, line) {
    const out = [];
    for (let i = this.index(from), end = this.index(to); i < end; i++) out.push(line(this.ts[i], this.v[i]));
    return out;
  }

  /**
   * uPlot's data for [from, to): [times, values], with a null where readings stop
   * for much longer than usual, so the line breaks there instead of bridging a gap.
   */
  plotData(from, to) {
    const i0 = Math.max(0, this.index(from) - 1);
    const i1 = Math.min(this.t.length, this.index(to) + 1);
    const n = i1 - i0;
    const gap = Math.max((to - from) / 20, (4 * (to - from)) / Math.max(n, 1));
    const xs = [];
    const ys = [];
    for (let i = i0; i < i1; i++) {
      if (i > i0 && this.t[i] - this.t[i - 1] > gap) {
        xs.push((this.t[i] + this.t[i - 1]) / 2);
        ys.push(null);
      }
      xs.push(this.t[i]);
      ys.push(this.v[i]);
    }
    return [xs, ys];
  }
}

/**
 * Indices of the points M4 keeps over [from, to) in `limit / 4` columns: per column
 * the first, the lowest, the highest and the last point, in time order.
 */
export function m4(t, v, from, to, limit) {
  const columns = Math.max(1, Math.floor(limit / 4));
  const width = (to - from) / columns;
  const keep = [];
  let col = null;
  let first = 0;
  let lo = 0;
  let hi = 0;
  let last = 0;
  const flush = () => {
    for (const i of [...new Set([first, lo, hi, last])].sort((a, b) => a - b)) keep.push(i);
  };
  for (let i = 0; i < t.length; i++) {
    const c = Math.floor((t[i] - from) / width);
    if (c !== col) {
      if (col !== null) flush();
      col = c;
      first = lo = hi = last = i;
      continue;
    }
    if (v[i] < v[lo]) lo = i;
    if (v[i] > v[hi]) hi = i;
    last = i;
  }
  if (col !== null) flush();
  return keep;
}
