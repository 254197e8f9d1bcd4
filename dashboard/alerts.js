// The strip of firing alerts (docs/protocol.md §9): severity, rule, series, since, value.
//
// On every (re)connection the page reads GET /v1/alerts (the current states; only
// `firing` ones are shown) and asks the live socket for `{"alerts": true}`; each
// `{"alert": {...}}` event then adds (`firing`) or removes (`resolved`) an entry.
// Events that arrive while the list loads are applied after it. Clicking an alert
// opens its series around the moment it fired. Devices with a firing alert are marked
// in the device list (`onMarks`). A hub without alerts (404) hides the strip.
//
// Each alert also says, in words, who acknowledged it (the live `acknowledged` event or
// `acknowledged` of GET /v1/alerts) and whether a silence holds it (`silenced_by`), and
// offers "Acknowledge…" and "Silence…" (alert-actions.js opens their form), disabled
// with the reason for a token that may not act (role.js).

import { ago } from './device-list.js';
import { el, setText } from './dom.js';
import { display } from './values.js';

const RANK = { critical: 0, error: 1, warning: 2, info: 3 };
const rank = (s) => RANK[s] ?? 4;

export class AlertStrip {
  /** `actions`: alert-actions.js; `silences`: silences.js (what a `silenced_by` id is). */
  constructor(box, { onOpen, onMarks, role, actions, silences }) {
    this.box = box;
    this.onOpen = onOpen;
    this.onMarks = onMarks;
    this.role = role;
    this.actions = actions;
    this.silences = silences;
    this.note = role.reason('needs-op a-needs-op');
    this.note.id = 'alerts-needs-op';
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
    const old = this.firing.get(key);
    // A firing event of the same firing (an announcement when a silence ended) keeps its acknowledgement.
    const same = old && old.since === a.since && !('acknowledged' in a) ? old.acknowledged : null;
    const ack = a.acknowledged ?? (a.state === 'acknowledged' ? { by: a.by ?? null, comment: a.comment ?? '', ts: a.ts } : same);
    if (a.state === 'firing') this.firing.set(key, { ...a, acknowledged: ack });
    else if (a.state === 'acknowledged') {
      // A live event carries the acknowledgement; an entry of GET /v1/alerts the whole alert.
      if (old) this.firing.set(key, { ...old, acknowledged: ack });
      else if (a.since) this.firing.set(key, { ...a, acknowledged: ack });
    } else this.firing.delete(key);
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
      ...list.map((a) => this.entry(a, now)),
      this.note,
    );
  }

  /** One alert: the button that opens its series, its acknowledgement and silence in words, its actions. */
  entry(a, now) {
    const box = el('div', 'alert-entry');
    box.append(this.opener(a, now));
    const ack = a.acknowledged;
    if (ack) {
      box.dataset.acknowledged = 'true';
      const by = ack.by ? ` by ${ack.by}` : '';
      box.append(el('span', 'a-ack', `✓ acknowledged${by}${ack.comment ? `: “${ack.comment}”` : ''}`));
    }
    // Silenced while that silence is in force (silences.js lists those; an ended one is not).
    const s = a.silenced_by === null || a.silenced_by === undefined ? null : this.silences.byId(a.silenced_by);
    if (s) {
      box.dataset.silenced = 'true';
      box.append(el('span', 'a-silenced', s.until ? `silenced until ${new Date(s.until).toLocaleString()}` : 'silenced'));
    }
    const series = a.sensor ? `${a.device}/${a.sensor}` : a.device;
    const ackButton = this.role.gate(el('button', 'act a-act', ack ? 'Acknowledged' : 'Acknowledge…'));
    ackButton.dataset.action = 'ack';
    ackButton.setAttribute('aria-label', `Acknowledge ${a.rule} on ${series}`);
    if (ack) {
      ackButton.dataset.busy = 'true'; // stays disabled: acknowledged until it resolves
      ackButton.disabled = true;
      ackButton.title = 'Already acknowledged; the next firing starts unacknowledged again.';
    }
    ackButton.addEventListener('click', () => this.actions.ack(a, ackButton));
    const silenceButton = this.role.gate(el('button', 'act a-act', 'Silence…'));
    silenceButton.dataset.action = 'silence';
    silenceButton.setAttribute('aria-label', `Silence ${a.rule} on ${series}`);
    silenceButton.addEventListener('click', () => this.actions.silence(a, silenceButton));
    for (const b of [ackButton, silenceButton]) {
      b.type = 'button';
      b.setAttribute('aria-describedby', 'alerts-needs-op');
    }
    box.append(ackButton, silenceButton);
    return box;
  }

  /** The button that opens an alert's series. */
  opener(a, now) {
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
  }
}
