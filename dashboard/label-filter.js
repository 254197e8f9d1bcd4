// The device list's label filter (protocol.md §14): `site:plant-a line:3` (or `=`)
// keeps the devices carrying every label given, as `GET /v1/devices?label=…` answers.
// The terms are checked before asking; the hub's refusal is shown as it says it. It is
// asked again on every (re)connection, so newly labelled devices appear.

import { $, setText } from './dom.js';

const KEY = /^[a-z][a-z0-9_]{0,31}$/;
/** At most this many labels are given at once (a device has at most 16). */
const MAX_TERMS = 16;

/** `"site:plant-a line=3"` → `[["site", "plant-a"], ["line", "3"]]`, or what is wrong. */
export function parseLabelTerms(text) {
  const terms = text.split(/[\s,]+/).filter(Boolean);
  if (terms.length > MAX_TERMS) return { error: `At most ${MAX_TERMS} labels at once.` };
  const pairs = [];
  for (const t of terms) {
    const m = /^([^:=]+)[:=](.+)$/.exec(t);
    if (!m) return { error: `"${t.slice(0, 40)}": write a label as key:value, e.g. site:plant-a.` };
    if (!KEY.test(m[1])) return { error: `"${m[1].slice(0, 40)}": a label key is lowercase letters, digits and _, starting with a letter.` };
    pairs.push([m[1], m[2]]);
  }
  return { pairs };
}

export class LabelFilter {
  /** `onNames(Set | null)`: the devices to show (null: every one). */
  constructor(hub, onNames) {
    this.hub = hub;
    this.onNames = onNames;
    this.pairs = [];
    this.input = $('#label-filter');
    this.status = $('#label-status');
    $('#label-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.apply();
    });
    this.input.addEventListener('search', () => this.apply());
  }

  async apply() {
    const parsed = parseLabelTerms(this.input.value);
    if (parsed.error) return this.show(parsed.error, true);
    this.pairs = parsed.pairs;
    await this.refresh();
  }

  /** Asks the hub again for the current terms (also on every reconnection). */
  async refresh() {
    if (this.pairs.length === 0) {
      this.onNames(null);
      return this.show('', false);
    }
    const q = this.pairs.map(([k, v]) => `label=${encodeURIComponent(`${k}:${v}`)}`).join('&');
    const shown = this.pairs.map(([k, v]) => `${k}:${v}`).join(' ');
    try {
      const list = await this.hub.getAll(`/v1/devices?${q}`);
      this.onNames(new Set(list.map((d) => d.name)));
      this.show(`${list.length} ${list.length === 1 ? 'device carries' : 'devices carry'} ${shown}`, false);
    } catch (e) {
      this.show(e.detail ? `The hub refused the filter: ${e.detail}` : e.message, true);
    }
  }

  show(text, bad) {
    setText(this.status, text);
    this.status.hidden = text === '';
    this.status.classList.toggle('form-error', bad);
    if (bad) this.input.setAttribute('aria-invalid', 'true');
    else this.input.removeAttribute('aria-invalid');
  }
}
