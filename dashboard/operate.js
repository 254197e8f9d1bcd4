// The operator's side of the page, wired in one place: what the token may do (role.js),
// the device view's labels, commands and configuration (device-ops.js), the device
// list's label filter (label-filter.js), and acknowledging and silencing from the alert
// strip (alert-actions.js, silences.js). `connected()` runs on every (re)connection of
// the live socket, `command(c)` for every live `{"command": {...}}`.

import { AlertActions } from './alert-actions.js';
import { DeviceOps } from './device-ops.js';
import { LabelFilter } from './label-filter.js';
import { Role } from './role.js';
import { SilenceList } from './silences.js';

export class Operate {
  /** `view`: its `devices`, `list`, `alerts` and `touch(device)` (view.js). */
  constructor(hub, view) {
    this.hub = hub;
    this.role = new Role();
    this.silences = new SilenceList(hub, this.role, () => view.alerts?.changed());
    this.alertActions = new AlertActions(hub, this.role, () => {
      view.alerts.load(hub);
      this.silences.load();
    });
    this.device = new DeviceOps(hub, this.role, view.devices, (d) => view.touch(d));
    this.labels = new LabelFilter(hub, (names) => view.list.allow(names));
  }

  connected() {
    this.role.probe(this.hub);
    this.device.connected();
    this.silences.load();
    this.labels.refresh();
  }

  command(c) {
    this.device.command(c);
  }
}
