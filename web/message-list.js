// MessageList: one conversation's <ol> of messages, updated in place from the SDK's rows (keyed
// by message id, so a state change touches one line and scrolling and focus stay put).

import { ICONS, STATE_LABELS } from './icons.js';
import { bodyText, formatClock } from './names.js';
import { shownTime } from './timeline.js';

const LONG_TEXT_CHARS = 1500;    // a text this long may scroll inside its bubble...
const LONG_TEXT_LINES = 15;       // ...and so may one of more lines than this
const GROUP_MS = 5 * 60 * 1000;  // consecutive lines from one sender within this share a header
// A provisional row (row.provisional: stored by a relaying edge, no seq from the root yet).
const PROVISIONAL_TITLE = 'Provisional: not yet confirmed by the root, its place may still change';

export class MessageList {
  // annotate(row): an extra note for a line's foot (an announcement's read count), or ''.
  constructor(timeline, { onDetails, onRetry, annotate = () => '' }) {
    this.timeline = timeline;
    this.annotate = annotate;
    this.onDetails = onDetails;
    this.onRetry = onRetry;
    this.elements = new Map();  // id -> <li>
    this.renderedVersion = -1;
    this.selectedId = null;
    this.retried = new Set();   // ids retried here: a retry that fails again says so
    this.list = document.createElement('ol');
    this.list.className = 'msg-list';
    this.list.setAttribute('aria-label', `Messages in ${timeline.conv}`);
    // One listener for every line's buttons.
    this.list.addEventListener('click', (event) => {
      const button = event.target.closest('button[data-action]');
      const line = button?.closest('li.msg');
      if (!line) return;
      if (button.dataset.action === 'details') this.onDetails(line.dataset.id, button);
      else if (button.dataset.action === 'retry') {
        this.retried.add(line.dataset.id);
        this.onRetry(line.dataset.id);
        // A row the SDK would not put back (too large) stays failed without an event: redraw
        // now, so the line says it was tried again instead of looking like nothing happened.
        this.renderedVersion = -1;
        this.render();
      }
    });
  }

  select(id) {
    if (this.selectedId === id) return;
    this.elements.get(this.selectedId)?.classList.remove('selected');
    this.selectedId = id;
    this.elements.get(id)?.classList.add('selected');
  }

  render() {
    const timeline = this.timeline;
    if (timeline.version === this.renderedVersion) return;
    this.renderedVersion = timeline.version;
    const now = Date.now();
    let cursor = this.list.firstElementChild;
    let previous = null;
    for (const it of timeline.rows()) {
      const time = shownTime(it);
      const continued = previous !== null && previous.from === it.from && time != null &&
        previous.time != null && time - previous.time < GROUP_MS;
      previous = { from: it.from, time };
      let line = this.elements.get(it.id);
      if (!line) {
        line = this.createLine(it.id);
        this.elements.set(it.id, line);
      }
      const note = this.annotate(it);
      const key = `${JSON.stringify(it)}|${continued}|${note}|${this.retried.has(it.id)}`;
      if (line.dataset.key !== key) {
        line.dataset.key = key;
        this.updateLine(line, it, it.state, time, continued, now);
        line.querySelector('.msg-note').textContent = note;
      }
      if (line === cursor) cursor = cursor.nextElementSibling;
      else this.list.insertBefore(line, cursor);
    }
  }

  createLine(id) {
    const line = document.createElement('li');
    line.className = 'msg';
    line.dataset.id = id;
    line.innerHTML = `
      <div class="msg-head"><span class="msg-from"></span></div>
      <p class="msg-text"></p>
      <div class="msg-foot">
        <span class="msg-prov" hidden title="${PROVISIONAL_TITLE}"><span aria-hidden="true">Not yet confirmed</span><span class="visually-hidden">${PROVISIONAL_TITLE}.</span></span>
        <span class="msg-note"></span>
        <span class="msg-error"></span>
        <button type="button" class="msg-retry" data-action="retry" hidden>Retry</button>
        <button type="button" class="msg-meta" data-action="details">
          <time class="msg-time"></time><span class="msg-state"></span>
        </button>
      </div>`;
    if (id === this.selectedId) line.classList.add('selected');
    return line;
  }

  updateLine(line, it, state, time, continued, now) {
    line.dataset.state = state;
    line.dataset.seq = it.seq ?? '';
    line.classList.toggle('own', it.own);
    line.classList.toggle('provisional', Boolean(it.provisional));
    line.querySelector('.msg-prov').hidden = !it.provisional;
    line.classList.toggle('continued', continued);
    line.querySelector('.msg-from').textContent = it.from ?? '';
    const textEl = line.querySelector('.msg-text');
    textEl.textContent = bodyText(it.body);
    // A long text scrolls inside its bubble (app.css): a tab stop lets the keyboard scroll it.
    if (isLong(textEl.textContent)) textEl.tabIndex = 0;
    else textEl.removeAttribute('tabindex');

    const clock = time != null ? formatClock(time, now) : '';
    const timeEl = line.querySelector('.msg-time');
    timeEl.textContent = clock;
    if (time != null) timeEl.dateTime = new Date(time).toISOString();

    const stateEl = line.querySelector('.msg-state');
    const meta = line.querySelector('.msg-meta');
    if (it.own) {
      // A retryable refusal keeps the row queued with an error: say it is retrying.
      const label = state === 'queued' && it.error ? 'Queued: retrying' : STATE_LABELS[state];
      stateEl.innerHTML = `${ICONS[state] ?? ''}<span class="visually-hidden">${label}</span>`;
      stateEl.title = label;
      meta.setAttribute('aria-label', `${clock} ${label}. Show delivery details`);
    } else {
      stateEl.textContent = '';
      stateEl.removeAttribute('title');
      const unconfirmed = it.provisional ? ', not yet confirmed' : '';
      meta.setAttribute('aria-label', `${clock} from ${it.from ?? 'unknown'}${unconfirmed}. Show message details`);
    }

    const failed = state === 'failed';
    line.querySelector('.msg-retry').hidden = !failed;
    const errorEl = line.querySelector('.msg-error');
    const again = failed && this.retried.has(it.id) ? 'Tried again: ' : '';
    errorEl.textContent = failed || (state === 'queued' && it.error) ? `${again}${describeError(it.error)}` : '';
  }
}

// Longer than the bubble's 24em could show, or about so (a tab stop too many does no harm).
function isLong(text) {
  return text.length > LONG_TEXT_CHARS || text.split('\n').length > LONG_TEXT_LINES;
}

function describeError(error) {
  if (!error) return 'Not sent.';
  const code = error.code ?? error;
  if (code === 'too_large') return 'Too large to send.';
  // The edge's own sentence says which conversation and why (read-only, or no access at all).
  if (code === 'forbidden') return error.msg ? `Not sent: the server refused it: ${error.msg}.` : 'Not sent: not allowed in this conversation.';
  if (code === 'rate_limited') return 'Sending too fast, retrying.';
  if (code === 'unavailable') return 'Server busy, retrying.';
  return error.msg || `Not sent (${code}).`;
}
