// The strip of firing alerts (docs/protocol.md §9): severity, rule, series, since, value.
//
// On every (re)connection the page reads GET /v1/alerts (the current states; only
// `firing` ones are shown) and asks the live socket for `{"alerts": true}`; each
// `{"alert": {...}}` event then adds (`firing`) or removes (`resolved`) an entry.
// Events that arrive while the list loads are applied after it. Clicking an alert
// opens its series around the moment it fired. Devices with a firing alert are marked
// in the device list (`onMarks`). A hub without alerts (404) hides the strip.

import { ago } from './device-list.js';
import { el, setText } from './dom.js';
import { display } from './values.js';

const RANK = { critical: 0, error: 1, warning: 2, info: 3 };
const rank = (s) => RANK[s] ?? 4;

export class AlertStrip {
  constructor(box, { onOpen, onMarks }) {
    this.box = box;
    this.onOpen = onOpen;
    this.onMarks = onMarks;
    this.firing = new Map();
    this.loading = null; // events seen while GET /v1/alerts is in flight
    this.dirty = true;
  }

  /** GET /v1/alerts; called on every (re)connection. */
  async load(hub) {
    this.loading = [];
    let list;
    try {
      list = await hub.get('/v1/alerts');
    } catch {
      // A hub without alerts, or one that failed: the strip stays as it is.
      this.loading = null;
      return;
    }
    const seen = this.loading;
    this.loading = null;
    this.firing.clear();
    for (const a of list) this.apply(a);
    for (const a of seen) this.apply(a);
    this.changed();
  }

  /** A live `{"alert": {...}}` event. */
  event(a) {
    if (this.loading) this.loading.push(a);
    this.apply(a);
    this.changed();
  }

  apply(a) {
    const key = `${a.rule}\u0000${a.device}\u0000${a.sensor ?? ''}`;
    if (a.state === 'firing') this.firing.set(key, a);
    else this.firing.delete(key);
  }

  changed() {
    this.dirty = true;
    const marks = new Map();
    for (const a of this.firing.values()) {
      const old = marks.get(a.device);
      if (old === undefined || rank(a.severity) < rank(old)) marks.set(a.device, a.severity ?? 'alert');
    }
    this.onMarks(marks);
  }

  /** Rebuilds the strip when alerts changed; refreshes the ages otherwise. */
  render(now) {
    if (!this.dirty) {
      for (const b of this.box.querySelectorAll('.alert')) setText(b.querySelector('.a-since'), ago(Number(b.dataset.since), now));
      return;
    }
    this.dirty = false;
    const list = [...this.firing.values()].sort(
      (a, b) => rank(a.severity) - rank(b.severity) || Date.parse(b.since) - Date.parse(a.since),
    );
    this.box.hidden = list.length === 0;
    this.box.replaceChildren(
      el('h2', 'a-title', `${list.length} firing`),
      ...list.map((a) => {
        const b = el('button', 'alert');
        b.type = 'button';
        b.dataset.severity = a.severity ?? '';
        b.dataset.rule = a.rule;
        b.dataset.device = a.device;
        b.dataset.since = String(Date.parse(a.since));
        if (a.sensor) b.dataset.sensor = a.sensor;
        const series = a.sensor ? `${a.device}/${a.sensor}` : a.device;
        b.title = `Open ${series} around ${new Date(a.since).toLocaleString()}`;
        const value = a.value === null || a.value === undefined ? '' : display(a.sensor ?? '', a.value);
        b.append(
          el('span', 'a-sev', a.severity ?? 'alert'),
          el('span', 'a-rule', a.rule),
          el('span', 'a-series', series),
          el('span', 'a-since', ago(Date.parse(a.since), now)),
          el('span', 'a-value', value),
        );
        b.addEventListener('click', () => this.onOpen(a));
        return b;
      }),
    );
  }
}
