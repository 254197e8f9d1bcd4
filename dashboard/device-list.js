// The device list, virtualised: with 10,000 devices only the rows in view (plus a few
// above and below) exist in the document. Rows have one fixed height; a spacer gives
// the list its full height, and a small pool of row elements is moved and re-bound to
// whichever devices are in view as the list scrolls or its order changes.
//
// Keyboard: the list is one tab stop (a listbox); ↑/↓, Page Up/Down, Home/End move the
// selection, which shows that device. Device names and units go in as text only.

import { el, setText } from './dom.js';
import { showUnit } from './units.js';
import { showValue } from './values.js';

const ROW_HEIGHT = 54;
const OVERSCAN = 6;
const collator = new Intl.Collator(undefined, { numeric: true });

export function ago(ms, now) {
  if (ms === null || !Number.isFinite(ms)) return 'never seen';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return 'just now';
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A device's description and location (GET /v1/devices) as one line: "Press 2 · Hall 3 (52.52, 13.4)". */
export function aboutText(x) {
  const l = x.location;
  const where = l ? [l.name, l.lat != null ? `(${l.lat}, ${l.lon})` : null].filter(Boolean).join(' ') : null;
  return [x.description, where].filter(Boolean).join(' · ');
}

export class DeviceList {
  /** `devices`: name → device model; `onSelect(name)`; `onChange()` asks for a frame. */
  constructor(container, devices, { onSelect, onChange }) {
    this.box = container;
    this.devices = devices;
    this.onSelect = onSelect;
    this.onChange = onChange;
    this.order = []; // every name, sorted
    this.shown = []; // the names that pass the filter, sorted
    this.filterText = '';
    this.allowed = null; // the names the label filter lets through (null: all)
    this.selected = null;
    this.rows = new Map(); // name → bound row
    this.free = [];
    this.nextId = 0;
    this.layoutDirty = true;
    this.spacer = el('div', 'device-spacer');
    this.box.append(this.spacer);
    this.box.tabIndex = 0;
    this.box.setAttribute('role', 'listbox');
    this.box.addEventListener('scroll', () => this.relayout(), { passive: true });
    this.box.addEventListener('keydown', (e) => this.key(e));
    new ResizeObserver(() => this.relayout()).observe(this.box);
  }

  relayout() {
    this.layoutDirty = true;
    this.onChange();
  }

  add(name) {
    this.order.splice(sortedIndex(this.order, name), 0, name);
    if (this.matches(name)) this.shown.splice(sortedIndex(this.shown, name), 0, name);
    this.relayout();
  }

  /** Replaces the whole order at once (the first device list: one sort, not n inserts). */
  addAll(names) {
    this.order.push(...names);
    this.order.sort(collator.compare);
    this.shown = this.order.filter((n) => this.matches(n));
    this.relayout();
  }

  remove(name) {
    const i = this.order.indexOf(name);
    if (i >= 0) this.order.splice(i, 1);
    const j = this.shown.indexOf(name);
    if (j >= 0) this.shown.splice(j, 1);
    this.unbind(name);
    this.relayout();
  }

  matches(name) {
    if (this.allowed && !this.allowed.has(name)) return false;
    return !this.filterText || name.toLowerCase().includes(this.filterText);
  }

  filter(text) {
    this.filterText = text.trim().toLowerCase();
    this.refilter();
  }

  /** Only these names (a Set; null: every device), from the label filter. */
  allow(names) {
    this.allowed = names;
    this.refilter();
  }

  refilter() {
    this.shown = this.order.filter((n) => this.matches(n));
    this.relayout();
  }

  select(name) {
    const old = this.rows.get(this.selected);
    this.selected = name;
    if (old) old.root.setAttribute('aria-selected', 'false');
    const row = this.rows.get(name);
    if (row) row.root.setAttribute('aria-selected', 'true');
    this.reveal(name);
  }

  /** Scrolls a device's row into view. */
  reveal(name) {
    const i = this.shown.indexOf(name);
    if (i < 0) return;
    const top = i * ROW_HEIGHT;
    if (top < this.box.scrollTop) this.box.scrollTop = top;
    else if (top + ROW_HEIGHT > this.box.scrollTop + this.box.clientHeight) {
      this.box.scrollTop = top + ROW_HEIGHT - this.box.clientHeight;
    }
    this.relayout();
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.box.clientHeight / ROW_HEIGHT) - 1);
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -Infinity, End: Infinity };
    let i = this.shown.indexOf(this.selected);
    if (e.key in moves) {
      i = i < 0 ? 0 : Math.min(this.shown.length - 1, Math.max(0, i + moves[e.key]));
    } else if (e.key !== 'Enter' && e.key !== ' ') {
      return;
    }
    e.preventDefault();
    const name = this.shown[i];
    if (name !== undefined) this.onSelect(name);
  }

  /** Binds rows to the devices in view; returns the devices that got a row just now. */
  layout() {
    this.layoutDirty = false;
    this.spacer.style.height = `${this.shown.length * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(this.box.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.shown.length, Math.ceil((this.box.scrollTop + this.box.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const wanted = new Set(this.shown.slice(first, last));
    for (const name of [...this.rows.keys()]) if (!wanted.has(name)) this.unbind(name);
    const fresh = [];
    for (let i = first; i < last; i++) {
      const name = this.shown[i];
      let row = this.rows.get(name);
      if (!row) {
        row = this.bind(name);
        fresh.push(this.devices.get(name));
      }
      if (row.index !== i) {
        row.index = i;
        row.root.style.transform = `translateY(${i * ROW_HEIGHT}px)`;
      }
    }
    if (this.rows.has(this.selected)) this.box.setAttribute('aria-activedescendant', this.rows.get(this.selected).root.id);
    else this.box.removeAttribute('aria-activedescendant');
    return fresh;
  }

  bind(name) {
    const row = this.free.pop() ?? this.newRow();
    const d = this.devices.get(name);
    row.name = name;
    row.index = -1;
    row.root.dataset.device = name;
    row.root.setAttribute('aria-selected', String(name === this.selected));
    row.name_.textContent = name;
    row.root.title = d?.about ?? '';
    row.values.replaceChildren();
    row.chips.clear();
    row.root.hidden = false;
    d.row = row;
    this.rows.set(name, row);
    return row;
  }

  unbind(name) {
    const row = this.rows.get(name);
    if (!row) return;
    this.rows.delete(name);
    const d = this.devices.get(name);
    if (d) d.row = null;
    row.root.hidden = true;
    this.free.push(row);
  }

  newRow() {
    const root = el('div', 'device');
    root.id = `device-row-${this.nextId++}`;
    root.setAttribute('role', 'option');
    const head = el('div', 'device-head');
    const dot = el('span', 'dot');
    const name_ = el('span', 'name');
    const mark = el('span', 'alert-mark');
    mark.setAttribute('aria-label', 'alert firing');
    const ops = el('span', 'ops-mark');
    ops.hidden = true;
    const seen = el('span', 'seen');
    head.append(dot, name_, mark, ops, seen);
    const values = el('div', 'values');
    root.append(head, values);
    const row = { root, dot, name_, mark, ops, seen, values, chips: new Map(), name: null, index: -1 };
    root.addEventListener('click', () => this.onSelect(row.name));
    this.box.append(root);
    return row;
  }

  /** Updates a bound row's text from its device. */
  render(d, now) {
    const r = d.row;
    if (r.root.dataset.online !== String(d.online)) r.root.dataset.online = d.online;
    const alert = d.alert ?? '';
    if ((r.root.dataset.alert ?? '') !== alert) {
      if (alert) r.root.dataset.alert = alert;
      else delete r.root.dataset.alert;
      r.mark.title = alert ? `${alert} alert firing` : '';
    }
    renderOpsMark(r.ops, r.root, d);
    setText(r.seen, d.online ? ago(d.lastSeen, now) : `offline · ${ago(d.lastSeen, now)}`);
    for (const s of d.sensors.values()) {
      let chip = r.chips.get(s.name);
      if (!chip) {
        const root = el('span', 'chip');
        root.dataset.sensor = s.name;
        const v = el('span', 'v', '–');
        const u = el('span', 'u');
        root.append(el('span', 'k', s.name), v, u);
        r.values.append(root);
        chip = { v, u, version: -1 };
        r.chips.set(s.name, chip);
      }
      if (chip.version !== s.version) {
        chip.version = s.version;
        showValue(chip.v, s.name, s.value);
        showUnit(chip.u, s.unit);
      }
      if (s.ts !== null) chip.v.title = ago(s.ts, now);
    }
  }
}

function sortedIndex(list, name) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (collator.compare(list[mid], name) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A row's operator marks, in words: "out of sync" (its desired configuration is not
 * applied yet) and "command failed" (its newest finished command did not succeed).
 */
function renderOpsMark(mark, row, d) {
  const parts = [];
  if (d.inSync === false) parts.push('⟳ out of sync');
  if (d.commandFailed) parts.push(`✗ command ${d.commandFailed}`);
  const text = parts.join(' · ');
  if (mark.textContent !== text) {
    mark.textContent = text;
    mark.hidden = text === '';
    mark.title = [
      d.inSync === false ? 'Its desired configuration is not applied yet.' : '',
      d.commandFailed ? `Its newest finished command ended ${d.commandFailed}.` : '',
    ]
      .filter(Boolean)
      .join(' ');
  }
  if (d.inSync === false) row.dataset.sync = 'false';
  else delete row.dataset.sync;
  if (d.commandFailed) row.dataset.commandFailed = d.commandFailed;
  else delete row.dataset.commandFailed;
}
