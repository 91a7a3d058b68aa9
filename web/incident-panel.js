// IncidentPanel: the strip pinned at the top of an incident's conversation: its severity,
// status and who acknowledged it, the status updates newest first, and (for those who may post)
// the controls to post an update or resolve. The rules are incident.js's; this only draws.

import { formatClock } from './names.js';
import { STATUSES } from './incident.js';

export class IncidentPanel {
  // root: the panel's element (index.html #incident-panel); callbacks get the user's choices.
  constructor(root, { onStatus, onResolve, onExport }) {
    this.root = root;
    this.summary = root.querySelector('.inc-summary');
    this.acks = root.querySelector('.inc-acks');
    this.updates = root.querySelector('.inc-updates');
    this.form = root.querySelector('.inc-update-form');
    this.statusField = root.querySelector('.inc-status-field');
    this.noteField = root.querySelector('.inc-note-field');
    this.resolveButton = root.querySelector('.inc-resolve');
    this.exportButton = root.querySelector('.inc-export');
    this.progress = root.querySelector('.inc-progress');
    this.statusField.replaceChildren(...STATUSES.filter((s) => s !== 'resolved').map((status) => new Option(status, status)));
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      onStatus(this.statusField.value, this.noteField.value);
      this.noteField.value = '';
    });
    this.resolveButton.addEventListener('click', () => onResolve(this.noteField.value));
    this.exportButton.addEventListener('click', () => onExport());
    this.key = '';
  }

  // state: incidentState(rows) or null (not an incident: the panel hides); acks: user names;
  // canWrite: the token may post here; exporting: a resolution waits to be stored.
  render({ state, acks, canWrite, exporting }) {
    const key = JSON.stringify([state, acks, canWrite, exporting]);
    if (key === this.key) return;
    this.key = key;
    this.root.hidden = !state;
    if (!state) return;
    const now = Date.now();
    this.root.dataset.status = state.status;
    this.root.dataset.severity = state.severity;
    this.summary.innerHTML = '<span class="inc-sev"></span> <strong class="inc-title"></strong> <span class="inc-status"></span>';
    this.summary.querySelector('.inc-sev').textContent = state.severity;
    this.summary.querySelector('.inc-title').textContent = state.title;
    this.summary.querySelector('.inc-status').textContent = `Status: ${state.status}`;
    this.acks.textContent = acks.length ? `Acknowledged by ${acks.join(', ')}` : 'Not acknowledged yet: responders acknowledge by reading the declaration.';
    this.updates.replaceChildren(...state.updates.slice().reverse().map((update) => {
      const li = document.createElement('li');
      li.className = 'inc-update';
      li.dataset.status = update.status;
      li.innerHTML = '<span class="inc-update-status"></span> <span class="inc-update-note"></span> <span class="inc-update-meta"></span>';
      li.querySelector('.inc-update-status').textContent = update.status;
      li.querySelector('.inc-update-note').textContent = update.note;
      li.querySelector('.inc-update-meta').textContent = `${update.from}${update.at != null ? `, ${formatClock(update.at, now)}` : ''}`;
      return li;
    }));
    this.form.hidden = !canWrite || state.resolved;
    this.resolveButton.hidden = !canWrite || state.resolved || exporting;
    this.exportButton.hidden = !state.resolved || exporting;
    this.progress.textContent = exporting ? 'Resolving: the timeline downloads once the resolution is stored.' : '';
  }
}
