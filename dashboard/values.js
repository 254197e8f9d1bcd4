// How a reading's value is shown (docs/protocol.md §8: a number, true/false, or a string).
//
// Booleans read as states: "open"/"closed" for sensors whose name says they open (a
// door, a window, a lid, a valve...), "on"/"off" for every other one. Strings are shown
// as they are (always as text, never as markup).

import { setText } from './dom.js';

const OPENS = /door|window|lid|gate|hatch|valve|shutter/i;

/** 'number', 'boolean' or 'string'; null for a missing value. */
export function kindOf(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return 'boolean';
  return typeof v === 'string' ? 'string' : 'number';
}

/** Whether values of this kind are states (drawn as a timeline, shown as a chip). */
export function isState(kind) {
  return kind === 'boolean' || kind === 'string';
}

/** A value for display; `sensor` names what a boolean means. */
export function display(sensor, v) {
  if (typeof v === 'boolean') {
    const [yes, no] = OPENS.test(sensor) ? ['open', 'closed'] : ['on', 'off'];
    return v ? yes : no;
  }
  if (typeof v === 'string') return v;
  return formatValue(v);
}

/**
 * Shows a value in a text element: `–` when missing; a state (boolean or string) as a
 * chip (class `state`; `data-on` says true or false for a boolean).
 */
export function showValue(e, sensor, v) {
  const kind = kindOf(v);
  setText(e, kind === null ? '–' : display(sensor, v));
  e.classList.toggle('state', isState(kind));
  if (kind === 'boolean') e.dataset.on = String(v);
  else delete e.dataset.on;
}

/** A number for display: at most 6 significant digits, no float noise. */
export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e9 || a < 1e-4)) return v.toExponential(3);
  return String(Number(v.toPrecision(6)));
}
