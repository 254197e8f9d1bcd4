// The selected device's "Commands" panel (docs/commands.md): its recent commands with
// their states, which change live (commands.js), a form to send one (a name and its
// parameters as a JSON object, both checked before anything is sent; the hub's refusal
// shown as it says it), and "Cancel" for those not finished yet. Every state is written
// out in words; colour only repeats it.

import { el, setText } from './dom.js';
import { TERMINAL } from './commands.js';
import { clock } from './time.js';

/** The sensor-name rule command names follow (protocol.md §13). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** `params` is a JSON object of at most 8 KiB. */
const MAX_PARAMS_BYTES = 8 * 1024;
/** Parameters, results and errors are cut to this many characters in the list. */
const SHOWN_CHARS = 80;

/** A command form's fields as the API takes them, or the first thing wrong with them. */
export function parseCommandForm(name, paramsText) {
  const n = name.trim();
  if (!n) return { error: 'Give the command a name, e.g. set_interval.' };
  if (!NAME.test(n)) {
    return { error: 'A command name is 1–64 letters, digits, ".", "_", ":" or "-", starting with a letter or digit.' };
  }
  const text = paramsText.trim() || '{}';
  if (new TextEncoder().encode(text).length > MAX_PARAMS_BYTES) return { error: 'Parameters: at most 8 KiB of JSON.' };
  let params;
  try {
    params = JSON.parse(text);
  } catch (e) {
    return { error: `Parameters are not valid JSON: ${e.message}` };
  }
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    return { error: 'Parameters must be a JSON object, e.g. {"seconds": 10}.' };
  }
  return { name: n, params };
}

const cut = (s) => (s.length > SHOWN_CHARS ? `${s.slice(0, SHOWN_CHARS - 1)}…` : s);

export class CommandsPanel {
  constructor(hub, role, book) {
    this.hub = hub;
    this.role = role;
    this.book = book;
    this.device = null;
    this.root = el('section', 'ops-panel ops-commands');
    this.root.setAttribute('aria-labelledby', 'commands-title');
    const title = el('h3', null, 'Commands');
    title.id = 'commands-title';
    const note = role.reason();
    this.form = el('form', 'cmd-form');
    this.form.noValidate = true;
    this.form.autocomplete = 'off';
    this.name = this.field('cmd-name', 'Command', el('input'));
    this.name.placeholder = 'set_interval';
    this.params = this.field('cmd-params', 'Parameters (JSON object)', el('textarea'));
    this.params.rows = 2;
    this.params.value = '{}';
    this.params.spellcheck = false;
    this.sendButton = role.gate(el('button', 'act', 'Send'));
    this.sendButton.type = 'submit';
    this.sendButton.setAttribute('aria-describedby', note.id);
    this.form.append(this.sendButton);
    this.error = el('p', 'form-error');
    this.error.id = 'cmd-error';
    this.error.setAttribute('role', 'alert');
    this.error.hidden = true;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.list = el('ol', 'cmd-list');
    this.list.setAttribute('aria-label', 'Recent commands, newest first');
    this.empty = el('p', 'muted', 'No commands sent to this device yet.');
    this.root.append(title, note, this.form, this.error, this.list, this.empty);
  }

  /** A labelled form field (`id`, visible label text). */
  field(id, text, input) {
    input.id = id;
    input.name = id;
    this.role.gate(input);
    const label = el('label', null, text);
    label.htmlFor = id;
    const box = el('div', 'field');
    box.append(label, input);
    this.form.append(box);
    return input;
  }

  /** Shows `device`'s commands (null: none selected) and reads its newest from the hub. */
  show(device) {
    this.device = device;
    this.showError('');
    this.render();
    if (device) this.book.loadDevice(this.hub, device).catch((e) => this.showError(`Could not read the commands: ${e.message}`));
  }

  showError(text) {
    setText(this.error, text);
    this.error.hidden = text === '';
  }

  async submit() {
    if (!this.device || !this.role.canAct) return;
    const parsed = parseCommandForm(this.name.value, this.params.value);
    this.name.removeAttribute('aria-invalid');
    this.params.removeAttribute('aria-invalid');
    if (parsed.error) {
      this.showError(parsed.error);
      const bad = parsed.error.startsWith('Parameters') ? this.params : this.name;
      bad.setAttribute('aria-invalid', 'true');
      bad.setAttribute('aria-describedby', this.error.id);
      bad.focus();
      return;
    }
    this.showError('');
    const device = this.device;
    await this.busy(this.sendButton, 'Sending…', async () => {
      const { body } = await this.hub.send('POST', `/v1/devices/${encodeURIComponent(device)}/commands`, parsed);
      this.book.apply(body);
    });
  }

  async cancel(c, button) {
    await this.busy(button, 'Canceling…', async () => {
      try {
        const { body } = await this.hub.send('DELETE', `/v1/commands/${encodeURIComponent(c.id)}`);
        this.book.apply(body);
      } catch (e) {
        if (e.status !== 409) throw e;
        // Finished meanwhile: show how.
        this.book.apply(await this.hub.get(`/v1/commands/${encodeURIComponent(c.id)}`));
        throw new Error(`${c.name} had already finished; it was not canceled`);
      }
    });
  }

  /** Runs `work` with `button` disabled and saying `text`; a refusal is shown. */
  async busy(button, text, work) {
    const label = button.textContent;
    button.dataset.busy = 'true';
    button.disabled = true;
    button.textContent = text;
    try {
      await work();
    } catch (e) {
      this.showError(e.detail ? `The hub refused: ${e.detail}` : e.message);
    } finally {
      button.dataset.busy = 'false';
      button.textContent = label;
      this.role.apply(button);
    }
  }

  /** The book changed for `device`. */
  changed(device) {
    if (device === this.device) this.render();
  }

  render() {
    const list = this.device ? this.book.of(this.device) : [];
    this.empty.hidden = list.length > 0;
    this.list.replaceChildren(...list.map((c) => this.item(c)));
  }

  item(c) {
    const li = el('li', 'cmd');
    li.dataset.id = c.id;
    li.dataset.state = c.state;
    const state = el('span', 'cmd-state', c.state);
    state.dataset.state = c.state;
    const when = c.finished ?? c.received ?? c.sent ?? c.created;
    const params = JSON.stringify(c.params ?? {});
    li.append(
      el('span', 'cmd-name', c.name),
      el('code', 'cmd-params', cut(params)),
      state,
      el('span', 'cmd-when muted', `${clock(Date.parse(when))}${c.attempts > 1 ? ` · ${c.attempts} attempts` : ''}`),
    );
    if (c.error) li.append(el('span', 'cmd-error', cut(c.error)));
    else if (c.result) li.append(el('code', 'cmd-result', cut(JSON.stringify(c.result))));
    if (!TERMINAL.has(c.state)) {
      const b = this.role.gate(el('button', 'act cmd-cancel', 'Cancel'));
      b.type = 'button';
      b.setAttribute('aria-label', `Cancel ${c.name} (${c.state})`);
      b.addEventListener('click', () => this.cancel(c, b));
      li.append(b);
    }
    return li;
  }
}
