// What an operator does with the selected device, under its sensors: its labels, the
// "Commands" panel (commands-panel.js) and its configuration (config-panel.js). Also
// the device list's operator marks: "out of sync" (its desired configuration is not
// applied yet) and "command failed" (its newest finished command did not succeed),
// written as text so they never depend on colour.

import { CommandBook } from './commands.js';
import { CommandsPanel } from './commands-panel.js';
import { ConfigPanel } from './config-panel.js';
import { $, el } from './dom.js';

export class DeviceOps {
  /** `devices`: the view's name → device model; `touch(device)` re-renders one. */
  constructor(hub, role, devices, touch) {
    this.hub = hub;
    this.devices = devices;
    this.touch = touch;
    this.book = new CommandBook((name) => this.commandsChanged(name));
    this.commands = new CommandsPanel(hub, role, this.book);
    this.config = new ConfigPanel(hub, role, (name, inSync) => this.synced(name, inSync));
    this.labelsKey = null;
    $('#device-ops').append(this.commands.root, this.config.root);
  }

  /** On every (re)connection: the last day's commands, for the marks. */
  connected() {
    this.book.loadRecent(this.hub).catch(() => {
      // Marks wait for the next connection; the panel reads its device's on its own.
    });
  }

  /** A live `{"command": {...}}` change. */
  command(c) {
    this.book.apply(c);
  }

  /** The selected device changed (null: none). */
  show(d) {
    this.labelsKey = null;
    this.commands.show(d?.name ?? null);
    this.config.show(d?.name ?? null);
  }

  /** The selected device's labels, redrawn only when they change. */
  renderLabels(d) {
    const entries = Object.entries(d.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    const key = JSON.stringify(entries);
    if (key === this.labelsKey) return;
    this.labelsKey = key;
    const box = $('#detail-labels');
    box.hidden = entries.length === 0;
    box.replaceChildren(
      ...entries.map(([k, v]) => {
        const li = el('li', 'label');
        li.dataset.label = `${k}=${v}`;
        li.append(el('span', 'lk', k), el('span', 'lv', v));
        return li;
      }),
    );
  }

  commandsChanged(name) {
    this.commands.changed(name);
    const d = this.devices.get(name);
    if (!d) return;
    const failed = this.book.failedOf(name);
    if (d.commandFailed !== failed) {
      d.commandFailed = failed;
      this.touch(d);
    }
  }

  synced(name, inSync) {
    const d = this.devices.get(name);
    if (d && d.inSync !== inSync) {
      d.inSync = inSync;
      this.touch(d);
    }
  }
}
