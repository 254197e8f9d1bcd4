// CSV files the page hands out, in the format of `telehub query/export --format csv`:
// `device,sensor,ts,value,unit`, a header line, RFC 4180 quoting, strings always quoted
// (docs/protocol.md §8), timestamps exactly as the hub wrote them.

export const HEADER = 'device,sensor,ts,value,unit';

/** Quotes a field when it needs it (RFC 4180). */
export function field(s) {
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** A value as a field: numbers and booleans as they are, strings always quoted. */
export function value(v) {
  return typeof v === 'string' ? `"${v.replaceAll('"', '""')}"` : String(v);
}

/** One line (with its newline) for a reading `ts` (the hub's text) and `v`. */
export function line(device, sensor, ts, v, unit) {
  return `${field(device)},${field(sensor)},${ts},${value(v)},${field(unit ?? '')}\n`;
}

/** Offers `parts` (strings) as a file download named `name`. */
export function download(name, parts) {
  const url = URL.createObjectURL(new Blob(parts, { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A file name part from a time: `2026-11-21T10-00-00Z`. */
export function fileTime(ms) {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
}
