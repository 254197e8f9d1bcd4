// The range picker above the charts: live presets (15 min … 30 days), a from/to pair
// (local time), earlier/later, and "reset zoom". It sets the shared TimeRange's base
// range; the charts' gestures change its view.

import { $, setText } from './dom.js';
import { MAX_SPAN_MS, PRESETS } from './range.js';
import { clock } from './time.js';

export class RangePicker {
  constructor(range) {
    this.range = range;
    this.presets = [...document.querySelectorAll('[data-range]')];
    for (const b of this.presets) {
      b.addEventListener('click', () => range.setBase(presetMs(b.dataset.range)));
    }
    $('#pan-back').addEventListener('click', () => range.pan(-0.5));
    $('#pan-fwd').addEventListener('click', () => range.pan(0.5));
    $('#range-reset').addEventListener('click', () => range.reset());
    $('#range-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.apply();
    });
  }

  apply() {
    const fromIn = $('#range-from');
    const toIn = $('#range-to');
    const from = new Date(fromIn.value).getTime();
    const to = toIn.value ? new Date(toIn.value).getTime() : Date.now();
    let problem = '';
    if (!Number.isFinite(from) || !Number.isFinite(to)) problem = 'Enter a date and time.';
    else if (from >= to) problem = '"From" must be before "to".';
    else if (to - from > MAX_SPAN_MS) problem = 'At most 30 days.';
    fromIn.setCustomValidity(problem);
    if (problem) {
      fromIn.reportValidity();
      return;
    }
    const now = Date.now();
    if (to >= now) this.range.setBase(now - from);
    else this.range.setBase(to - from, to);
  }

  render() {
    const r = this.range;
    for (const b of this.presets) {
      const on = r.live && !r.zoomed && r.base.to === null && presetMs(b.dataset.range) === r.base.spanMs;
      b.setAttribute('aria-pressed', String(on));
    }
    const [from, to] = r.bounds();
    for (const [input, t] of [
      [$('#range-from'), from],
      [$('#range-to'), to],
    ]) {
      if (document.activeElement !== input) input.value = localInput(t);
    }
    $('#range-to').placeholder = r.live ? 'now' : '';
    $('#range-reset').disabled = !r.zoomed;
    $('#pan-fwd').disabled = r.live;
    const days = (to - from) / 86400e3;
    const when = (t) => (days >= 1 ? new Date(t).toLocaleString() : clock(t));
    setText($('#range-text'), r.live ? `live · last ${describe(to - from)}` : `${when(from)} – ${when(to)}`);
  }
}

function presetMs(name) {
  return new Map(PRESETS).get(name);
}

/** A span in words: `15 min`, `6 h`, `7 d`. */
function describe(ms) {
  if (ms >= 86400e3 && ms % 86400e3 === 0) return `${ms / 86400e3} d`;
  if (ms >= 3600e3 && ms % 3600e3 === 0) return `${ms / 3600e3} h`;
  if (ms >= 60e3) return `${Math.round(ms / 60e3)} min`;
  return `${Math.round(ms / 1000)} s`;
}

/** Unix ms → the value of a `datetime-local` input (local time, seconds). */
function localInput(t) {
  const d = new Date(t);
  const two = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}
