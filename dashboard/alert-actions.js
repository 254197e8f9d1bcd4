// Acknowledging and silencing an alert from the strip (protocol.md §16): one form under
// the strip (it survives the strip's redraws), opened by an alert's "Acknowledge…" or
// "Silence…" for that alert. Acknowledge takes a comment (`POST /v1/alerts/ack`);
// silence takes a pattern (the alert's series to start with), optionally only its rule,
// 1 h, 4 h or until a local time, and a comment (`POST /v1/silences`). Escape or
// "Cancel" closes it and gives focus back to the button that opened it.

import { $, setText } from './dom.js';

/** Comments are cut to this many characters before sending. */
const MAX_COMMENT = 500;

/** The silence form's fields as `POST /v1/silences` takes them, or what is wrong. */
export function silenceBody({ pattern, rule, span, until, comment }, now = Date.now()) {
  const p = pattern.trim();
  if (!/^[^/\s]+(\/[^/\s]+)?$/.test(p)) return { error: 'Pattern: DEVICE/SENSOR, with * for any, e.g. freezer-*/temperature.' };
  if (!comment.trim()) return { error: 'Say why in a comment (others will read it).' };
  const body = { pattern: p, comment: comment.trim().slice(0, MAX_COMMENT) };
  if (rule) body.rule = rule;
  if (span === 'until') {
    const t = Date.parse(until);
    if (!Number.isFinite(t)) return { error: 'Until: pick a date and time.' };
    if (t <= now) return { error: 'Until: pick a time in the future.' };
    body.until = new Date(t).toISOString();
  } else body.for = span;
  return { body };
}

export class AlertActions {
  /** `onDone()`: something changed (the strip and the silences are read again). */
  constructor(hub, role, onDone) {
    this.hub = hub;
    this.role = role;
    this.onDone = onDone;
    this.alert = null;
    this.mode = null;
    this.opener = null;
    this.box = $('#alert-form-box');
    this.form = $('#alert-form');
    this.error = $('#af-error');
    this.done = $('#alert-done');
    this.submitButton = role.gate($('#af-submit'));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    $('#af-cancel').addEventListener('click', () => this.close());
    this.box.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.close();
    });
    $('#af-until').addEventListener('focus', () => {
      this.form.querySelector('input[name="af-for"][value="until"]').checked = true;
    });
  }

  ack(a, opener) {
    this.open(a, 'ack', opener);
  }

  silence(a, opener) {
    this.open(a, 'silence', opener);
  }

  open(a, mode, opener) {
    this.alert = a;
    this.mode = mode;
    this.opener = opener;
    const series = a.sensor ? `${a.device}/${a.sensor}` : a.device;
    this.box.dataset.mode = mode;
    setText($('#alert-form-title'), `${mode === 'ack' ? 'Acknowledge' : 'Silence'} ${a.rule} on ${series}`);
    for (const id of ['#af-pattern-field', '#af-rule-field', '#af-for-field']) $(id).hidden = mode !== 'silence';
    $('#af-pattern').value = series; // DEVICE alone covers every alert of it, offline ones included
    setText($('#af-rule-text'), `only the rule ${a.rule}`);
    $('#af-rule').checked = true;
    const until = new Date(Date.now() + 8 * 3600e3);
    until.setMinutes(until.getMinutes() - until.getTimezoneOffset(), 0, 0);
    $('#af-until').value = until.toISOString().slice(0, 16);
    $('#af-comment').value = '';
    this.submitButton.textContent = mode === 'ack' ? 'Acknowledge' : 'Silence';
    this.showError('');
    this.done.hidden = true;
    this.box.hidden = false;
    $('#af-comment').focus();
  }

  close() {
    this.box.hidden = true;
    const back = this.opener;
    this.alert = null;
    this.opener = null;
    if (back?.isConnected && !back.disabled) back.focus();
  }

  showError(text) {
    setText(this.error, text);
    this.error.hidden = text === '';
  }

  async submit() {
    const a = this.alert;
    if (!a || !this.role.canAct) return;
    const comment = $('#af-comment').value;
    let path;
    let body;
    if (this.mode === 'ack') {
      if (!comment.trim()) return this.invalid('Say what was done in a comment (others will read it).');
      path = '/v1/alerts/ack';
      body = { rule: a.rule, device: a.device, comment: comment.trim().slice(0, MAX_COMMENT) };
      if (a.sensor) body.sensor = a.sensor;
    } else {
      const span = this.form.querySelector('input[name="af-for"]:checked')?.value ?? '1h';
      const rule = $('#af-rule').checked ? a.rule : undefined;
      const parsed = silenceBody({ pattern: $('#af-pattern').value, rule, span, until: $('#af-until').value, comment });
      if (parsed.error) return this.invalid(parsed.error);
      path = '/v1/silences';
      body = parsed.body;
    }
    this.showError('');
    this.submitButton.dataset.busy = 'true';
    this.submitButton.disabled = true;
    try {
      await this.hub.send('POST', path, body);
      const series = a.sensor ? `${a.device}/${a.sensor}` : a.device;
      setText(this.done, this.mode === 'ack' ? `Acknowledged ${a.rule} on ${series}.` : `Silenced ${body.pattern}.`);
      this.done.hidden = false;
      this.close();
      this.onDone();
    } catch (e) {
      if (e.status === 404 && this.mode === 'ack') this.showError('This alert is no longer firing: nothing to acknowledge.');
      else this.showError(e.detail ? `The hub refused: ${e.detail}` : e.message);
    } finally {
      this.submitButton.dataset.busy = 'false';
      this.role.apply(this.submitButton);
    }
  }

  invalid(text) {
    this.showError(text);
    $('#af-comment').focus();
  }
}
