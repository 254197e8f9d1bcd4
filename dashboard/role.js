// Whether this page's token may act (send and cancel commands, set desired
// configuration, acknowledge and silence alerts: an operator or admin token), learned
// from the hub without a dedicated endpoint: `DELETE /v1/commands/ID` of an id that
// cannot exist is refused with 403 before the id is looked at when the token may not
// cancel commands, and answered 404 when it may (nothing exists, nothing changes).
//
// Every action control registers here (`gate`). Until the answer is known, and for a
// viewer token, each is disabled (never hidden) and described by a visible reason
// ("needs an operator token"); the top bar says which role the page has, in words.

import { $, setText } from './dom.js';
import { AuthError } from './hub.js';

/** An id in the command id's shape that the hub never hands out. */
const PROBE_ID = 'c_role-probe-not-a-command';
export const NEEDS_OPERATOR = 'needs an operator token';
const CHECKING = 'checking what this token may do…';
/** Controls removed from the page are forgotten once this many are tracked. */
const MAX_TRACKED = 200;

export class Role {
  constructor() {
    /** 'unknown' until probed, then 'operator' or 'viewer'. */
    this.role = 'unknown';
    this.controls = new Set();
    this.notes = new Set();
  }

  get canAct() {
    return this.role === 'operator';
  }

  /** Asks the hub once (again after a failure: the next call retries). */
  async probe(hub) {
    if (this.role !== 'unknown') return;
    try {
      await hub.send('DELETE', `/v1/commands/${PROBE_ID}`);
      this.set('operator');
    } catch (e) {
      if (e instanceof AuthError && e.status === 403) this.set('viewer');
      else if (e.status === 404 || e.status === 409 || e.status === 400) this.set('operator');
    }
  }

  set(role) {
    this.role = role;
    document.body.dataset.role = role;
    const badge = $('#role');
    if (badge) {
      badge.hidden = false;
      badge.dataset.role = role;
      setText(badge, role === 'operator' ? 'operator: may act' : 'viewer: read-only');
      badge.title =
        role === 'operator'
          ? 'This token may send commands, set configuration and acknowledge or silence alerts.'
          : 'This token may only read. Acting needs an operator token: telehub token add NAME --role operator';
    }
    for (const c of this.controls) if (c.isConnected) this.apply(c);
    else this.controls.delete(c);
    // A few notes, each kept for the page's life (the strip's is out of the page while nothing fires).
    for (const n of this.notes) this.note(n);
  }

  /** Registers an action control: enabled only for an operator, with the reason otherwise. */
  gate(control) {
    if (this.controls.size > MAX_TRACKED) for (const c of this.controls) if (!c.isConnected) this.controls.delete(c);
    this.controls.add(control);
    this.apply(control);
    return control;
  }

  /** A visible line saying why a panel's actions are disabled (empty for an operator). */
  reason(className = 'needs-op') {
    const n = document.createElement('p');
    n.className = className;
    n.id = `needs-op-${++Role.nextId}`;
    this.notes.add(n);
    this.note(n);
    return n;
  }

  note(n) {
    n.hidden = this.canAct;
    setText(n, this.role === 'unknown' ? CHECKING : `Read-only: every action here ${NEEDS_OPERATOR}.`);
  }

  apply(c) {
    const blocked = !this.canAct;
    if (c.dataset.busy === 'true') return;
    c.disabled = blocked;
    if (blocked) c.title = this.role === 'unknown' ? CHECKING : NEEDS_OPERATOR;
    else if (c.title === NEEDS_OPERATOR || c.title === CHECKING) c.title = '';
  }
}
Role.nextId = 0;
