// HandoffPanel: the strip pinned at the top of a handoff channel: a form for the outgoing
// person's note, the newest note (open items, risks, owner), who read it when, who acknowledged
// it when, and the owner's Acknowledge button. The rules are handoff.js's; this only draws.

import { formatClock } from './names.js';

export class HandoffPanel {
  // root: index.html #handoff-panel; onPost({openItems, risks, owner}) -> problem or null;
  // onAck(handoffId).
  constructor(root, { onPost, onAck }) {
    this.root = root;
    this.toggle = root.querySelector('.ho-write');
    this.form = root.querySelector('.ho-form');
    this.error = root.querySelector('.ho-error');
    this.card = root.querySelector('.ho-card');
    this.ackButton = root.querySelector('.ho-ack');
    this.toggle.addEventListener('click', () => this.showForm(this.form.hidden));
    this.form.querySelector('.ho-cancel').addEventListener('click', () => this.showForm(false));
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const field = (name) => this.form.querySelector(`[name="${name}"]`).value;
      const problem = onPost({ openItems: field('open_items'), risks: field('risks'), owner: field('owner') });
      this.error.textContent = problem ?? '';
      if (problem) return;
      this.form.reset();
      this.showForm(false);
    });
    this.ackButton.addEventListener('click', () => { if (this.handoffId) onAck(this.handoffId); });
    this.key = '';
  }

  showForm(show) {
    this.form.hidden = !show;
    this.toggle.setAttribute('aria-expanded', String(show));
    this.error.textContent = '';
    if (show) this.form.querySelector('textarea').focus();
    else this.toggle.focus();
  }

  // shown: the open conversation is a handoff channel; handoff: latestHandoff() or null;
  // canWrite: the token may post here; awaitingMe: the note is mine to acknowledge.
  render({ shown, handoff, canWrite, awaitingMe }) {
    const key = JSON.stringify([shown, handoff, canWrite, awaitingMe]);
    if (key === this.key) return;
    this.key = key;
    this.root.hidden = !shown;
    if (!shown) return;
    this.toggle.hidden = !canWrite;
    if (!canWrite) this.form.hidden = true;
    this.handoffId = handoff?.id ?? null;
    this.card.hidden = !handoff;
    this.ackButton.hidden = !awaitingMe || !canWrite;
    if (!handoff) return;
    const now = Date.now();
    const at = (ms) => (ms != null ? formatClock(ms, now) : 'not yet stored');
    this.card.querySelector('.ho-head').textContent = `Handoff from ${handoff.from} to ${handoff.owner}, ${at(handoff.at)}`;
    const list = (selector, items) => {
      const ul = this.card.querySelector(selector);
      ul.replaceChildren(...items.map((item) => Object.assign(document.createElement('li'), { textContent: item })));
      ul.previousElementSibling.hidden = ul.hidden = items.length === 0;
    };
    list('.ho-items', handoff.openItems);
    list('.ho-risks', handoff.risks);
    this.card.querySelector('.ho-reads').textContent = handoff.reads.length
      ? handoff.reads.map((read) => `Read by ${read.user} at ${at(read.at)}`).join('; ')
      : 'Not read yet';
    this.card.querySelector('.ho-acks').textContent = handoff.acks.length
      ? handoff.acks.map((ack) => `Acknowledged by ${ack.user} at ${at(ack.at)}`).join('; ')
      : `Waiting for ${handoff.owner} to acknowledge`;
  }
}
