// The selected device's configuration (docs/device-config.md): what is desired, what the
// device reports it applied, and whether they agree (`in_sync`, in words); an editor for
// the desired document that sends `If-Match` with the version it was loaded from, so an
// edit made meanwhile by someone else is refused (409) and said so instead of
// overwritten; and the history of versions, read when opened.
//
// The hub announces no configuration changes on the live socket, so while a device is
// shown its configuration is read again every few seconds (faster while it is not in
// sync); only the selected device is read. An edit in progress is never overwritten.

import { el, setText } from './dom.js';
import { clock } from './time.js';

const POLL_OUT_OF_SYNC_MS = 1500;
const POLL_IN_SYNC_MS = 10_000;
/** A desired configuration is a JSON object of at most 16 KiB. */
const MAX_DESIRED_BYTES = 16 * 1024;

/** The editor's text as a desired document, or what is wrong with it. */
export function parseDesired(text) {
  if (new TextEncoder().encode(text).length > MAX_DESIRED_BYTES) return { error: 'At most 16 KiB of JSON.' };
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { error: `Not valid JSON: ${e.message}` };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { error: 'The desired configuration must be a JSON object, e.g. {"interval_s": 5}.' };
  return { desired: v };
}

/** The sync state in words. */
export function syncText(cfg) {
  if (cfg.version === 0) return 'No desired configuration set.';
  if (cfg.in_sync) return `In sync: the device applied version ${cfg.version}.`;
  const has = cfg.reported_version ? `reports version ${cfg.reported_version}` : 'has reported none yet';
  return `Out of sync: version ${cfg.version} is desired, the device ${has}.`;
}

export class ConfigPanel {
  /** `onSync(device, inSync)`: what the hub said about a device's sync state. */
  constructor(hub, role, onSync) {
    this.hub = hub;
    this.role = role;
    this.onSync = onSync;
    this.device = null;
    this.cfg = null;
    this.editedFrom = null; // the version the editor's text started from
    this.timer = null;
    this.root = el('section', 'ops-panel ops-config');
    this.root.setAttribute('aria-labelledby', 'config-title');
    const title = el('h3', null, 'Configuration');
    title.id = 'config-title';
    this.sync = el('p', 'cfg-sync');
    this.sync.id = 'cfg-sync';
    this.sync.setAttribute('aria-live', 'polite');
    const pair = el('div', 'cfg-pair');
    this.desired = this.block(pair, 'Desired', 'cfg-desired');
    this.reported = this.block(pair, 'Reported by the device', 'cfg-reported');
    const note = role.reason();
    this.form = el('form', 'cfg-form');
    this.form.noValidate = true;
    const label = el('label', null, 'Edit the desired configuration (JSON object)');
    label.htmlFor = 'cfg-editor';
    this.editor = role.gate(el('textarea'));
    this.editor.id = 'cfg-editor';
    this.editor.rows = 3;
    this.editor.spellcheck = false;
    this.editor.addEventListener('input', () => {
      this.editor.dataset.dirty = 'true';
    });
    this.save = role.gate(el('button', 'act', 'Save'));
    this.save.type = 'submit';
    this.save.setAttribute('aria-describedby', note.id);
    this.reload = el('button', 'cfg-reload', 'Reload');
    this.reload.type = 'button';
    this.reload.addEventListener('click', () => this.fetch(true));
    this.form.append(label, this.editor, this.save, this.reload);
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.error = el('p', 'form-error');
    this.error.id = 'cfg-error';
    this.error.setAttribute('role', 'alert');
    this.error.hidden = true;
    this.history = el('details', 'cfg-history');
    this.history.append(el('summary', null, 'History'), el('ol', 'cfg-versions'));
    this.history.addEventListener('toggle', () => this.history.open && this.loadHistory());
    this.root.append(title, this.sync, pair, note, this.form, this.error, this.history);
  }

  block(parent, text, id) {
    const box = el('div', 'cfg-block');
    const pre = el('pre', 'cfg-doc');
    pre.id = id;
    pre.setAttribute('aria-label', text);
    box.append(el('h4', null, text), pre);
    parent.append(box);
    return pre;
  }

  show(device) {
    clearTimeout(this.timer);
    this.device = device;
    this.cfg = null;
    this.editedFrom = null;
    this.editor.value = '';
    delete this.editor.dataset.dirty;
    this.history.open = false;
    this.showError('');
    setText(this.sync, device ? 'Reading the configuration…' : '');
    setText(this.desired, '');
    setText(this.reported, '');
    if (device) this.fetch(false);
  }

  showError(text) {
    setText(this.error, text);
    this.error.hidden = text === '';
  }

  /** Reads the configuration; `fresh`: also replace the editor's text. Schedules the next read. */
  async fetch(fresh) {
    clearTimeout(this.timer);
    const device = this.device;
    if (!device) return;
    try {
      const { body } = await this.hub.send('GET', `/v1/devices/${encodeURIComponent(device)}/config`);
      if (device !== this.device) return;
      this.showConfig(body, fresh);
      if (fresh) {
        this.showError('');
        delete this.root.dataset.conflict;
      }
    } catch (e) {
      if (device !== this.device) return;
      setText(this.sync, `Could not read the configuration: ${e.detail || e.message}`);
    }
    const wait = this.cfg && !this.cfg.in_sync ? POLL_OUT_OF_SYNC_MS : POLL_IN_SYNC_MS;
    this.timer = setTimeout(() => this.fetch(false), wait);
  }

  showConfig(cfg, fresh) {
    this.cfg = cfg;
    this.root.dataset.inSync = String(cfg.in_sync);
    this.root.dataset.version = String(cfg.version);
    setText(this.sync, syncText(cfg));
    setText(this.desired, JSON.stringify(cfg.desired ?? {}, null, 2));
    const rep = cfg.reported_version ? `${JSON.stringify(cfg.reported ?? {}, null, 2)}` : '(nothing reported yet)';
    setText(this.reported, rep);
    if (fresh || this.editor.dataset.dirty !== 'true') {
      this.editor.value = JSON.stringify(cfg.desired ?? {}, null, 2);
      this.editedFrom = cfg.version;
      delete this.editor.dataset.dirty;
    }
    this.onSync(this.device, cfg.version === 0 ? null : cfg.in_sync);
    if (this.history.open) this.loadHistory();
  }

  async submit() {
    if (!this.device || !this.role.canAct) return;
    const parsed = parseDesired(this.editor.value);
    if (parsed.error) {
      this.editor.setAttribute('aria-invalid', 'true');
      this.editor.setAttribute('aria-describedby', this.error.id);
      this.showError(parsed.error);
      this.editor.focus();
      return;
    }
    this.editor.removeAttribute('aria-invalid');
    this.showError('');
    const device = this.device;
    const headers = this.editedFrom === null ? {} : { 'If-Match': `"${this.editedFrom}"` };
    this.save.dataset.busy = 'true';
    this.save.disabled = true;
    try {
      const { body } = await this.hub.send('PUT', `/v1/devices/${encodeURIComponent(device)}/config`, { desired: parsed.desired }, headers);
      delete this.editor.dataset.dirty;
      if (device === this.device) {
        this.showConfig(body, true);
        this.fetch(false);
      }
    } catch (e) {
      if (e.status === 409) {
        this.root.dataset.conflict = 'true';
        this.showError(
          `Changed by someone else since you loaded version ${this.editedFrom}: reload to see their version, then edit again. Your text is kept until you reload.`,
        );
        this.reload.focus();
      } else this.showError(e.detail ? `The hub refused: ${e.detail}` : e.message);
    } finally {
      this.save.dataset.busy = 'false';
      this.role.apply(this.save);
    }
  }

  async loadHistory() {
    const device = this.device;
    const list = this.history.querySelector('.cfg-versions');
    try {
      const rows = await this.hub.get(`/v1/devices/${encodeURIComponent(device)}/config/history`);
      if (device !== this.device) return;
      list.replaceChildren(
        ...rows.map((h) => {
          const li = el('li', 'cfg-version');
          const who = h.kind === 'desired' ? `set${h.by ? ` by ${h.by}` : ''}` : 'applied by the device';
          li.append(
            el('span', null, `${h.kind} v${h.version} · ${who} · ${clock(Date.parse(h.ts))}`),
            el('code', null, JSON.stringify(h.document)),
          );
          return li;
        }),
      );
    } catch (e) {
      list.replaceChildren(el('li', 'form-error', `Could not read the history: ${e.detail || e.message}`));
    }
  }
}
