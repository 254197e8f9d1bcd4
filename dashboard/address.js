// The view in the address's `#` part, so a copied link reproduces it:
//   #device=boiler-1&chart=boiler-1/temperature&chart=pump-3/level&range=15m
//   #...&from=2026-11-21T10:00:00.000Z&to=2026-11-21T11:00:00.000Z
// `range` is a live span (the last 15 minutes, sliding); `from`/`to` a fixed range.
// Only these keys are ever written: never the token.

import { formatSpan, parseSpan } from './range.js';

/** The view a `#...` asks for: {device, charts: [[device, sensor]], range: {spanMs, to} | null}. */
export function readAddress(hash = location.hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const charts = p
    .getAll('chart')
    .map((c) => {
      const i = c.indexOf('/');
      return i > 0 ? [c.slice(0, i), c.slice(i + 1)] : null;
    })
    .filter((c) => c && c[1]);
  let range = null;
  const from = Date.parse(p.get('from') ?? '');
  const to = Date.parse(p.get('to') ?? '');
  const span = parseSpan(p.get('range'));
  if (Number.isFinite(from) && Number.isFinite(to) && from < to) range = { spanMs: to - from, to };
  else if (span) range = { spanMs: span, to: null };
  return { device: p.get('device') || null, charts, range };
}

/** Writes the view into the address without a history entry per change. */
export function writeAddress({ device, charts, range }) {
  const p = new URLSearchParams();
  if (device) p.set('device', device);
  for (const [d, s] of charts) p.append('chart', `${d}/${s}`);
  if (range.to === null) p.set('range', formatSpan(range.spanMs));
  else {
    p.set('from', new Date(range.to - range.spanMs).toISOString());
    p.set('to', new Date(range.to).toISOString());
  }
  const hash = `#${p.toString().replaceAll('%2F', '/').replaceAll('%3A', ':')}`;
  if (location.hash !== hash) history.replaceState(history.state, '', `${location.pathname}${location.search}${hash}`);
}
