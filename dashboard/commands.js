// The commands the page knows (docs/commands.md), per device: the newest few of each,
// from `GET /v1/commands` (the last day's, on every connection; a device's own when it
// is selected) and every live `{"command": {...}}` change (`{"commands": true}`).
//
// A command's state only moves forward (queued → sent → received → a terminal state,
// which never changes), so a copy read over HTTP never undoes a newer live change.
// A device is marked when its newest finished command did not succeed (failed,
// rejected or expired): `failedOf(device)`.

export const TERMINAL = new Set(['succeeded', 'failed', 'rejected', 'expired', 'canceled']);
export const UNSUCCESSFUL = new Set(['failed', 'rejected', 'expired']);
const STEP = { queued: 0, sent: 1, received: 2 };
const step = (state) => (TERMINAL.has(state) ? 3 : (STEP[state] ?? 0));

/** Commands kept per device (the panel shows these; older ones are in the API). */
export const KEPT_PER_DEVICE = 20;
/** What one connection reads of every device's commands. */
const RECENT_LIMIT = 500;

export class CommandBook {
  /** `onChange(device)`: that device's commands changed. */
  constructor(onChange) {
    this.byDevice = new Map(); // device → Map(id → command)
    this.onChange = onChange;
  }

  /** The last day's commands of every device (on every (re)connection). */
  async loadRecent(hub) {
    const page = await hub.get(`/v1/commands?from=-24h&limit=${RECENT_LIMIT}`);
    const touched = new Set();
    for (const c of page.commands ?? []) if (this.merge(c)) touched.add(c.device);
    for (const d of touched) this.onChange(d);
  }

  /** One device's newest commands (when it is selected). */
  async loadDevice(hub, device) {
    const page = await hub.get(`/v1/commands?device=${encodeURIComponent(device)}&limit=${KEPT_PER_DEVICE}`);
    let changed = false;
    for (const c of page.commands ?? []) changed = this.merge(c) || changed;
    if (changed) this.onChange(device);
  }

  /** A command from the live socket or an answer of the API. */
  apply(c) {
    if (this.merge(c)) this.onChange(c.device);
  }

  /** Keeps `c` unless a copy as far along is known; returns whether anything changed. */
  merge(c) {
    if (!c || typeof c.id !== 'string' || typeof c.device !== 'string') return false;
    let list = this.byDevice.get(c.device);
    if (!list) {
      list = new Map();
      this.byDevice.set(c.device, list);
    }
    const old = list.get(c.id);
    if (old && (TERMINAL.has(old.state) || step(old.state) > step(c.state))) return false;
    if (old && old.state === c.state && old.attempts === c.attempts) return false;
    list.set(c.id, c);
    if (list.size > KEPT_PER_DEVICE) {
      const oldest = this.of(c.device).at(-1);
      list.delete(oldest.id);
    }
    return true;
  }

  /** A device's known commands, newest first. */
  of(device) {
    const list = this.byDevice.get(device);
    if (!list) return [];
    return [...list.values()].sort((a, b) => Date.parse(b.created) - Date.parse(a.created) || (b.id > a.id ? 1 : -1));
  }

  /** The state of the device's newest finished command when it did not succeed, else null. */
  failedOf(device) {
    const done = this.of(device).find((c) => TERMINAL.has(c.state) && c.state !== 'canceled');
    return done && UNSUCCESSFUL.has(done.state) ? done.state : null;
  }
}
