// LifecyclePanel: the side panel showing one message's path queued -> stored -> sequenced ->
// delivered -> read with the time of each step, its seq, id and trace id; it follows live changes.

import { LIFECYCLE_STEPS, stepTimes } from './timeline.js';
import { bodyText, formatDelta, formatPrecise, traceIdOf } from './names.js';

const OWN_STEPS = {
  queued: ['Queued', 'In this tab’s outbox'],
  stored: ['Stored', 'Durably stored by a relaying edge'],
  sequenced: ['Sequenced', 'Committed and numbered by the edge'],
  delivered: ['Delivered', 'Reached another member'],
  read: ['Read', 'Seen by another member'],
};
const OTHERS_STEPS = {
  queued: ['Sent', 'Left the sender’s device (its clock)'],
  stored: ['Stored', 'Durably stored by a relaying edge'],
  sequenced: ['Sequenced', 'Committed and numbered by the edge'],
  delivered: ['Delivered', 'Reached this tab'],
  read: ['Read', 'Seen by you'],
};

export class LifecyclePanel {
  // statePassed(state, step): whether a row in `state` has gone through `step` (the SDK's
  // rowStatePassed: the core's state order).
  constructor(panel, { onClose, statePassed }) {
    this.panel = panel;
    this.onClose = onClose;
    this.statePassed = statePassed;
    this.steps = panel.querySelector('.lc-steps');
    this.facts = panel.querySelector('.lc-facts');
    this.summary = panel.querySelector('.lc-summary');
    this.heading = panel.querySelector('#lifecycle-title');
    this.current = null;  // {timeline, id}
    panel.querySelector('.lc-close').addEventListener('click', () => this.onClose());
    panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') { event.stopPropagation(); this.onClose(); }
    });
  }

  get openId() { return this.current?.id ?? null; }

  show(timeline, id) {
    this.current = { timeline, id };
    this.panel.hidden = false;
    this.refresh();
    this.heading.focus();
  }

  hide() {
    this.current = null;
    this.panel.hidden = true;
  }

  refresh() {
    if (!this.current) return;
    const { timeline, id } = this.current;
    const it = timeline.get(id);
    if (!it) return;
    const state = it.state;
    const times = stepTimes(it);
    const names = it.own ? OWN_STEPS : OTHERS_STEPS;
    const start = times.queued ?? times.sequenced;

    this.summary.textContent = `${it.own ? 'You' : it.from ?? 'Someone'} in ${timeline.conv}: “${clip(bodyText(it.body), 80)}”`;
    this.steps.replaceChildren(...LIFECYCLE_STEPS.map((step) => {
      const li = document.createElement('li');
      li.dataset.step = step;
      const at = times[step];
      // "stored" only happens behind a relaying edge; a direct edge goes straight to sequenced.
      const done = at != null || this.statePassed(state, step);
      const skipped = at == null && step === 'stored' && done && state !== 'stored';
      li.className = skipped ? 'skipped' : done ? 'done' : 'pending';
      const [label, hint] = names[step];
      const timeText = at != null ? formatPrecise(at) : skipped ? 'skipped' : done ? 'time not known' : 'waiting';
      const delta = at != null && start != null && step !== 'queued' ? formatDelta(at - start) : '';
      li.innerHTML = '<span class="lc-dot" aria-hidden="true"></span><span class="lc-name"></span>' +
        '<span class="lc-hint"></span><span class="lc-time"></span><span class="lc-delta"></span>';
      li.querySelector('.lc-name').textContent = label;
      li.querySelector('.lc-hint').textContent = hint;
      const timeEl = li.querySelector('.lc-time');
      timeEl.textContent = timeText;
      if (at != null) timeEl.dataset.ms = String(at);
      li.querySelector('.lc-delta').textContent = delta;
      return li;
    }));
    if (state === 'failed') {
      const li = document.createElement('li');
      li.dataset.step = 'failed';
      li.className = 'failed';
      li.innerHTML = '<span class="lc-dot" aria-hidden="true"></span><span class="lc-name">Failed</span><span class="lc-hint"></span>';
      li.querySelector('.lc-hint').textContent = it.error?.msg || it.error?.code || 'Refused';
      this.steps.append(li);
    }

    const facts = [
      ['State', state, 'state'],
      ['Seq', it.seq ?? 'not yet', 'seq'],
      ['Message id', it.id, 'id'],
      ['Trace id', traceIdOf(it.trace) ?? 'not yet', 'trace-id'],
      ['traceparent', it.trace ?? 'not yet', 'traceparent'],
      ['From', it.from ?? '', 'from'],
    ];
    if (it.cts != null) facts.push(['Client time (cts)', formatPrecise(it.cts), 'cts']);
    if (it.ts != null) facts.push(['Edge time (ts)', formatPrecise(it.ts), 'ts']);
    this.facts.replaceChildren(...facts.flatMap(([label, value, key]) => {
      const dt = document.createElement('dt');
      dt.textContent = label;
      const dd = document.createElement('dd');
      dd.dataset.fact = key;
      const code = document.createElement('code');
      code.textContent = String(value);
      dd.append(code);
      return [dt, dd];
    }));
  }
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
