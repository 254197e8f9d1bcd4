// What is silenced (protocol.md §16): `GET /v1/silences` on every connection, after
// every change made here, and every 30 s (the hub announces no silence changes live);
// the ones still in force are listed under the alert strip with their pattern, rule,
// end, comment and author, each with "Unsilence" (`DELETE /v1/silences/ID`) for a
// token that may act. The strip asks `byId` what an alert's `silenced_by` is.

import { $, el, setText } from './dom.js';

const REFRESH_MS = 30_000;

export class SilenceList {
  /** `onChange()`: the list changed (the strip redraws its "silenced" notes). */
  constructor(hub, role, onChange) {
    this.hub = hub;
    this.role = role;
    this.onChange = onChange;
    this.list = [];
    this.box = $('#silences');
    this.items = $('#silence-list');
    this.error = $('#silence-error');
    this.note = role.reason('needs-op');
    this.note.id = 'silences-needs-op';
    this.box.append(this.note);
    this.timer = null;
  }

  byId(id) {
    return this.list.find((s) => String(s.id) === String(id)) ?? null;
  }

  async load() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), REFRESH_MS);
    let answer;
    try {
      answer = await this.hub.get('/v1/silences');
    } catch {
      return; // a hub without silences, or unreachable: the list stays as it is
    }
    const all = Array.isArray(answer) ? answer : (answer?.silences ?? []);
    const now = Date.now();
    this.list = all.filter((s) => !s.until || Date.parse(s.until) > now);
    this.render();
    this.onChange();
  }

  render() {
    this.box.hidden = this.list.length === 0;
    setText($('#silences-title'), `${this.list.length} silenced`);
    this.items.replaceChildren(...this.list.map((s) => this.item(s)));
  }

  item(s) {
    const li = el('li', 'silence');
    li.dataset.id = String(s.id);
    li.dataset.pattern = s.pattern;
    const rule = s.rule ? ` · rule ${s.rule}` : ' · every rule';
    const until = s.until ? ` · until ${new Date(s.until).toLocaleString()}` : '';
    const by = s.by ? ` · by ${s.by}` : '';
    li.append(el('span', 's-what', `${s.pattern}${rule}${until}${by}`));
    if (s.comment) li.append(el('span', 's-comment', `“${s.comment}”`));
    const b = this.role.gate(el('button', 'act s-unsilence', 'Unsilence'));
    b.type = 'button';
    b.setAttribute('aria-label', `Unsilence ${s.pattern}`);
    b.setAttribute('aria-describedby', this.note.id);
    b.addEventListener('click', () => this.unsilence(s, b));
    li.append(b);
    return li;
  }

  async unsilence(s, button) {
    button.dataset.busy = 'true';
    button.disabled = true;
    try {
      await this.hub.send('DELETE', `/v1/silences/${encodeURIComponent(s.id)}`);
      setText(this.error, '');
      this.error.hidden = true;
    } catch (e) {
      if (e.status !== 404) {
        setText(this.error, e.detail ? `The hub refused: ${e.detail}` : e.message);
        this.error.hidden = false;
      }
    } finally {
      button.dataset.busy = 'false';
      this.role.apply(button);
    }
    await this.load();
  }
}
