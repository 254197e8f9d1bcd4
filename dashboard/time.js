// Times on the dashboard: clock text and the ticks of a time axis (local time).

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map(
  (s) => s * 1000,
);

/** About `n` round times (local time) in [t0, t1], for an axis. */
export function timeTicks(t0, t1, n) {
  const step = STEPS.find((s) => (t1 - t0) / s <= n) ?? STEPS[STEPS.length - 1];
  const offset = new Date(t0).getTimezoneOffset() * 60e3;
  const ticks = [];
  for (let t = Math.ceil((t0 - offset) / step) * step + offset; t <= t1; t += step) ticks.push(t);
  return ticks;
}

/** An axis label: seconds only for ranges up to 3 h. */
export function axisClock(t, rangeMs) {
  return clock(t, rangeMs <= 3 * 3600e3);
}

/** Local time of day, 24-hour: `HH:MM` or `HH:MM:SS`. */
export function clock(t, seconds = true) {
  const d = new Date(t);
  const two = (n) => String(n).padStart(2, '0');
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return seconds ? `${hm}:${two(d.getSeconds())}` : hm;
}

/** A duration in words: `45 s`, `12 min`, `3 h 05 min`. */
export function span(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}
