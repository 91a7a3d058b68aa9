// The Waymark team web app: sign-in, conversations with unread badges, messages with delivery
// states, typing, presence, the connection banner and the lifecycle panel, over /sdk/waymark.js;
// offline.js keeps it loadable without a network (sw.js), mentions.js notifies of @mentions,
// access.js reads the token's claims so the composer says where the user may not post;
// incident.js holds the incident workflow's rules and incident-panel.js draws its pinned strip;
// handoff.js and handoff-panel.js do the same for shift handoffs; announcements.js counts
// who read each announcement of a broadcast channel.

import { isAnnouncementConv, readCount, readCountText } from './announcements.js';
import { composerNote, convAccess, expiresAt, namedConvs, tokenClaims } from './access.js';
import { ConnectionBanner } from './connection-banner.js';
import { ackBody, awaitsAckFrom, handoffBody, handoffProblem, isHandoffConv, latestHandoff, listLines } from './handoff.js';
import { HandoffPanel } from './handoff-panel.js';
import { ICONS } from './icons.js';
import {
  acknowledgedBy, declarationProblem, declaredBody, exportFileName, incidentConv, incidentState, statusBody, timelineText,
} from './incident.js';
import { IncidentPanel } from './incident-panel.js';
import { LifecyclePanel } from './lifecycle-panel.js';
import { MentionNotifier } from './mentions.js';
import { MessageList } from './message-list.js';
import { typingSentence } from './names.js';
import { registerServiceWorker } from './offline.js';
import { Timeline } from './timeline.js';
import { TypingBoard, TypingSender } from './typing.js';

const DEFAULT_CONVS = ['incidents', 'ops', 'handoff'];
const HISTORY_PAGE = 50;
const HISTORY_TIMEOUT_MS = 15_000;
const NEAR_EDGE_PX = 120;  // this close to the top loads older history; to the bottom, sticks
const USER_KEY = 'waymark.user';
const TOKEN_KEY = 'waymark.token';  // a JWT sign-in (absent: a dev sign-in by name)
const convsKey = (user) => `waymark.convs.${user}`;
const lastKey = (user) => `waymark.last.${user}`;

const $ = (id) => document.getElementById(id);

// Loaded on demand so the sign-in screen works, and says so, when the SDK cannot be fetched.
let sdkModule = null;
async function loadSdk() {
  sdkModule ??= import('/sdk/waymark.js');
  try {
    return await sdkModule;
  } catch (error) {
    sdkModule = null;
    throw error;
  }
}

function deviceId() {
  let id = sessionStorage.getItem('waymark.device');
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(4));
    id = `tab-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
    sessionStorage.setItem('waymark.device', id);
  }
  return id;
}

// The conversation and user name rules are the core's: the SDK's convProblem / userProblem.
// A JWT's user sees the default conversations the token covers, then those it names, then the
// ones joined here; a dev user every default one.
function savedConvs(user, sdk, claims) {
  let valid = [];
  try {
    const list = JSON.parse(localStorage.getItem(convsKey(user)) ?? '[]');
    valid = Array.isArray(list) ? list.filter((c) => typeof c === 'string' && !sdk.convProblem(c)) : [];
  } catch {
    // a damaged list: start from the defaults
  }
  const defaults = DEFAULT_CONVS.filter((conv) => convAccess(claims, conv) !== 'none');
  const named = namedConvs(claims).filter((conv) => !sdk.convProblem(conv));
  return [...new Set([...defaults, ...named, ...valid])];
}

// Everything that belongs to one signed-in user; dispose() undoes it on sign-out.
class Session {
  constructor(sdk, client, me, claims) {
    this.sdk = sdk;
    this.client = client;
    this.me = me;
    this.claims = claims;  // what the token says the user may do (access.js); the edge decides
    this.convs = savedConvs(me, sdk, claims);
    this.active = null;
    this.timelines = new Map();  // conv -> Timeline
    this.lists = new Map();      // conv -> MessageList
    this.unread = new Map();     // conv -> count
    this.markedRead = new Map(); // conv -> highest seq this tab marked read
    this.drafts = new Map();     // conv -> unsent composer text
    this.readCursors = new Map(); // conv -> Map(user -> highest seq they read), from receipts
    this.readLog = new Map();     // conv -> [{user, seq, at}]: each rise of a read cursor, when heard
    this.pendingExport = null;   // {conv, id}: a resolution whose timeline downloads once stored
    this.stickToBottom = true;
    this.renderQueued = false;
    this.detailsOpener = null;   // the button that opened the lifecycle panel, to refocus
    this.abort = new AbortController();
    this.unsubscribers = [];

    this.typingSender = new TypingSender((conv, on) => this.client.setTyping(conv, on));
    this.typingBoard = new TypingBoard((conv) => { if (conv === this.active) this.renderTyping(); });
    this.banner = new ConnectionBanner({
      banner: $('banner'), title: $('banner-title'), countdown: $('banner-countdown'),
      detail: $('banner-detail'), retry: $('banner-retry'), chip: $('conn-chip'), chipText: $('conn-chip-text'),
    }, { onRetryNow: () => this.client.connectNow() });
    this.panel = new LifecyclePanel($('lifecycle'), {
      onClose: () => this.closeDetails(),
      statePassed: (state, step) => sdk.rowStatePassed(state, step),
    });
    this.incidentPanel = new IncidentPanel($('incident-panel'), {
      onStatus: (status, note) => this.postStatus(status, note),
      onResolve: (note) => this.resolveIncident(note),
      onExport: () => this.exportTimeline(this.active),
    });
    this.handoffPanel = new HandoffPanel($('handoff-panel'), {
      onPost: (fields) => this.postHandoff(fields),
      onAck: (id) => { if (this.mayWrite(this.active)) this.client.send(this.active, ackBody(id)); },
    });
    this.notifier = new MentionNotifier($('notify-toggle'), me, { onOpen: (conv) => this.open(conv, { focus: true }) });
  }

  start() {
    const c = this.client;
    const on = (name, fn) => { const off = c.on(name, fn); if (typeof off === 'function') this.unsubscribers.push(off); };
    // Rows carry their state as the SDK gives it (others' receipts already raised own rows).
    on('row', (row) => this.onChange(row.conv));
    on('unread', ({ conv, count }) => { this.unread.set(conv, count); this.renderBadges(); });
    on('typing', ({ conv, user, on: typing }) => { if (user !== this.me) this.typingBoard.set(conv, user, typing); });
    on('presence', ({ conv }) => { if (conv === this.active) this.renderMembers(); });
    on('message', (msg) => this.notifier.message(msg));
    on('receipt', ({ conv, user, seq, kind }) => {
      if (kind !== 'read') return;
      let cursors = this.readCursors.get(conv);
      if (!cursors) this.readCursors.set(conv, cursors = new Map());
      if (seq <= (cursors.get(user) ?? 0)) return;
      cursors.set(user, seq);
      if (!this.readLog.has(conv)) this.readLog.set(conv, []);
      this.readLog.get(conv).push({ user, seq, at: Date.now() });
      if (isAnnouncementConv(conv)) this.timeline(conv).touch();  // the lines' read counts change
      if (conv === this.active) this.scheduleRender();
    });
    on('connection', (event) => {
      this.banner.setConnection(event);
      // The edge refused the token (expired, revoked secret): only a new sign-in helps. The
      // outbox stays in IndexedDB under the same user and goes out after it.
      if (event.state === 'offline' && event.needsToken && this.claims && !this.claims.dev) {
        signOut(`Signed out: ${event.reason ?? 'the server refused the sign-in'}. Sign in again.`);
        return;
      }
      if (event.state !== 'online') return;
      this.renderMembers();
      this.refreshUnread();
      // A history request that failed while the connection was down is worth one more try.
      const tl = this.active && this.timeline(this.active);
      if (tl && (tl.historyState === 'error' || !tl.loadedOnce)) this.loadOlder(this.active);
    });
    const state = c.connectionState();
    this.banner.setConnection(typeof state === 'string' ? { state } : { ...state });

    const signal = this.abort.signal;
    window.addEventListener('online', () => { this.banner.setBrowserOnline(true); this.client.connectNow(); }, { signal });
    window.addEventListener('offline', () => this.banner.setBrowserOnline(false), { signal });
    document.addEventListener('visibilitychange', () => {
      this.renderBadges();
      this.maybeMarkRead();
      if (document.visibilityState === 'visible') this.client.connectNow();
    }, { signal });
    // Page Lifecycle: a frozen page (a phone asleep, a background tab) runs no timers, so the
    // SDK's reconnect wait was frozen with it; on resume, reconnect and catch up at once. On
    // freeze nothing is needed: the outbox is in IndexedDB already, and the socket may go.
    document.addEventListener('resume', () => this.client.connectNow(), { signal });
    window.addEventListener('focus', () => this.maybeMarkRead(), { signal });
    this.wireDom(signal);

    for (const conv of this.convs) this.subscribe(conv);
    this.renderConvList();
    const last = localStorage.getItem(lastKey(this.me));
    const first = this.convs.includes(last) ? last : this.convs[0];
    if (first) this.open(first, { focus: false });
    else this.renderComposer();  // a token that names no conversation: join one by name
  }

  wireDom(signal) {
    const scroller = $('scroller');
    scroller.addEventListener('scroll', () => {
      this.stickToBottom = distanceFromBottom(scroller) < NEAR_EDGE_PX;
      if (scroller.scrollTop < NEAR_EDGE_PX) this.loadOlder(this.active);
      this.maybeMarkRead();
    }, { signal, passive: true });
    $('load-older').addEventListener('click', () => this.loadOlder(this.active), { signal });

    const input = $('composer-input');
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.sendDraft();
      }
    }, { signal });
    input.addEventListener('input', () => {
      autosize(input);
      this.typingSender.input(this.active, input.value.length > 0);
    }, { signal });
    input.addEventListener('blur', () => this.typingSender.stop(), { signal });
    $('composer').addEventListener('submit', (event) => { event.preventDefault(); this.sendDraft(); }, { signal });

    $('conv-list').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-conv]');
      if (button) this.open(button.dataset.conv, { focus: true });
    }, { signal });

    $('join-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const field = $('join-name');
      const name = field.value.trim();
      const problem = this.sdk.convProblem(name);
      $('join-error').textContent = problem ?? '';
      field.setAttribute('aria-invalid', problem ? 'true' : 'false');
      if (problem) { field.focus(); return; }
      field.value = '';
      this.addConv(name);
      this.open(name, { focus: true });
    }, { signal });

    $('declare-open').addEventListener('click', () => this.showDeclare(!!$('declare-form').hidden), { signal });
    $('declare-cancel').addEventListener('click', () => this.showDeclare(false), { signal });
    $('declare-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.declareIncident($('declare-name').value, $('declare-severity').value);
    }, { signal });
    $('join-name').addEventListener('input', () => {
      if (!$('join-error').textContent) return;
      $('join-error').textContent = '';
      $('join-name').setAttribute('aria-invalid', 'false');
    }, { signal });

    $('nav-toggle').addEventListener('click', () => setDrawer(!document.body.classList.contains('drawer-open')), { signal });
    $('scrim').addEventListener('click', () => setDrawer(false), { signal });
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return;
      if (document.body.classList.contains('drawer-open')) { setDrawer(false); $('nav-toggle').focus(); }
      else if (!$('lifecycle').hidden) this.closeDetails();
    }, { signal });
  }

  // Lists, subscribes and remembers a conversation joined here (not the defaults or the token's).
  addConv(name) {
    if (this.convs.includes(name)) return;
    this.convs.push(name);
    localStorage.setItem(convsKey(this.me), JSON.stringify(this.convs.filter((c) => !DEFAULT_CONVS.includes(c) && !namedConvs(this.claims).includes(c))));
    this.subscribe(name);
    this.renderConvList();
  }

  showDeclare(show) {
    $('declare-form').hidden = !show;
    $('declare-open').setAttribute('aria-expanded', String(show));
    $('declare-error').textContent = '';
    if (show) $('declare-name').focus();
    else $('declare-open').focus();
  }

  // An incident gets a conversation of its own; its first message is the declaration.
  declareIncident(title, severity) {
    const conv = incidentConv(title, Date.now());
    const problem = declarationProblem({ title, severity }) ?? this.sdk.convProblem(conv) ??
      (this.mayWrite(conv) ? null : `Your sign-in may not create #${conv}.`);
    $('declare-error').textContent = problem ?? '';
    $('declare-name').setAttribute('aria-invalid', problem ? 'true' : 'false');
    if (problem) { $('declare-name').focus(); return; }
    this.addConv(conv);
    this.client.send(conv, declaredBody({ title, severity, conv }));
    $('declare-name').value = '';
    $('declare-form').hidden = true;
    $('declare-open').setAttribute('aria-expanded', 'false');
    this.open(conv, { focus: true });
  }

  postStatus(status, note) {
    if (!this.active || !this.mayWrite(this.active)) return;
    this.client.send(this.active, statusBody(status, note));
    this.stickToBottom = true;
  }

  // Resolving posts the status; the timeline downloads once that message is stored and back
  // with the edge's time, so the file ends with it (offline, that is when the network is back).
  resolveIncident(note) {
    const conv = this.active;
    if (!conv || !this.mayWrite(conv)) return;
    const id = this.client.send(conv, statusBody('resolved', note));
    this.pendingExport = { conv, id };
    this.stickToBottom = true;
    this.scheduleRender();
  }

  exportTimeline(conv) {
    const rows = this.timeline(conv).rows();
    const state = incidentState(rows);
    if (!state) return;
    const blob = new Blob([timelineText(conv, state, rows)], { type: 'text/plain;charset=utf-8' });
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = exportFileName(conv);
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  }

  // A problem to show in the form, or null once posted.
  postHandoff({ openItems, risks, owner }) {
    const note = { openItems: listLines(openItems), risks: listLines(risks), owner: owner.trim() };
    const problem = handoffProblem(note, this.me) ?? this.sdk.userProblem(note.owner) ??
      (this.mayWrite(this.active) ? null : composerNote(convAccess(this.claims, this.active), this.active));
    if (problem) return problem;
    this.client.send(this.active, handoffBody(note));
    this.stickToBottom = true;
    return null;
  }

  renderHandoff() {
    const conv = this.active;
    const shown = isHandoffConv(conv);
    const handoff = shown ? latestHandoff(this.timeline(conv).rows(), this.readLog.get(conv)) : null;
    this.handoffPanel.render({ shown, handoff, canWrite: this.mayWrite(conv), awaitingMe: awaitsAckFrom(handoff, this.me) });
  }

  renderIncident() {
    const conv = this.active;
    const rows = this.timeline(conv).rows();
    const state = incidentState(rows);
    this.incidentPanel.render({
      state,
      acks: acknowledgedBy(state, this.readCursors.get(conv) ?? new Map()),
      canWrite: this.mayWrite(conv),
      exporting: this.pendingExport?.conv === conv,
    });
  }

  subscribe(conv) {
    this.client.subscribe(conv);
    this.timeline(conv);
    this.unread.set(conv, this.client.unread(conv) ?? 0);
  }

  timeline(conv) {
    let tl = this.timelines.get(conv);
    if (!tl) {
      tl = new Timeline(conv, () => this.client.rows(conv));
      this.timelines.set(conv, tl);
      this.lists.set(conv, new MessageList(tl, {
        onDetails: (id, button) => this.openDetails(conv, id, button),
        onRetry: (id) => this.client.retry(conv, id),
        // The poster of an announcement sees how many have read it.
        annotate: (row) => (isAnnouncementConv(conv) && row.own && row.seq != null
          ? readCountText(readCount(row.seq, this.readCursors.get(conv), this.me)) : ''),
      }));
    }
    return tl;
  }

  // Every SDK event about a conversation's rows lands here.
  onChange(conv) {
    this.timeline(conv).touch();
    const pending = this.pendingExport;
    // The message itself (with the edge's time, ts) follows its ack (seq): the file waits for
    // it, so every line has the edge's time and every user exports the same file.
    const resolution = pending?.conv === conv ? this.timeline(conv).get(pending.id) : null;
    if (resolution?.ts != null || resolution?.state === 'failed') {
      this.pendingExport = null;  // a refused resolution shows on its row; nothing to export
      if (resolution.ts != null) this.exportTimeline(conv);
    }
    if (conv !== this.active) return;
    this.scheduleRender();
  }

  open(conv, { focus }) {
    if (this.active !== conv) {
      this.typingSender.stop();
      if (this.active) this.drafts.set(this.active, $('composer-input').value);
      if (this.panel.openId) this.closeDetails({ refocus: false });
      this.active = conv;
      localStorage.setItem(lastKey(this.me), conv);
      const tl = this.timeline(conv);
      $('list-host').replaceChildren(this.lists.get(conv).list);
      $('chat-title').textContent = `#${conv}`;
      document.title = `#${conv} · Waymark`;
      const input = $('composer-input');
      input.value = this.drafts.get(conv) ?? '';
      input.placeholder = `Message #${conv}`;
      $('composer-label').textContent = `Message #${conv}`;
      this.renderComposer();
      autosize(input);
      this.stickToBottom = true;
      this.renderConvList();
      this.renderMembers();
      this.renderTyping();
      this.renderNow();
      if (!tl.loadedOnce) this.loadOlder(conv);
    }
    setDrawer(false);
    if (focus) (this.mayWrite(conv) ? $('composer-input') : $('chat-title')).focus();
  }

  mayWrite(conv) {
    return convAccess(this.claims, conv) === 'write';
  }

  // A conversation the token only reads (or does not name) gets no composer: it says why.
  renderComposer() {
    const conv = this.active;
    const note = conv ? composerNote(convAccess(this.claims, conv), conv) : 'Join a conversation to read or post.';
    const input = $('composer-input');
    input.disabled = Boolean(note);
    $('composer').querySelector('button[type="submit"]').disabled = Boolean(note);
    if (note) input.placeholder = 'Read-only';
    $('composer-note').textContent = note;
    $('composer-note').hidden = !note;
  }

  sendDraft() {
    const input = $('composer-input');
    const text = input.value;
    if (!text.trim() || !this.active || !this.mayWrite(this.active)) return;
    this.typingSender.stop();
    this.client.send(this.active, { text });
    input.value = '';
    this.drafts.delete(this.active);
    autosize(input);
    this.stickToBottom = true;
    this.scheduleRender();
  }

  async loadOlder(conv) {
    const tl = this.timeline(conv);
    if (tl.historyState === 'loading' || (tl.loadedOnce && !tl.more)) return;
    // Offline, a request could only fail or hang; the 'online' handler asks again.
    if (this.connectionState() !== 'online') return;
    tl.historyState = 'loading';
    this.renderHistoryTop();
    const before = tl.lowestSeq();
    let page;
    try {
      const request = this.client.history(conv, before != null ? { before, limit: HISTORY_PAGE } : { limit: HISTORY_PAGE });
      page = await withTimeout(request, HISTORY_TIMEOUT_MS, 'no answer from the server');
    } catch (error) {
      tl.historyState = 'error';
      tl.historyError = error?.message ?? String(error);
      if (conv === this.active) this.renderHistoryTop();
      return;
    }
    tl.historyState = 'idle';
    tl.loadedOnce = true;
    tl.touch();  // the page's messages are rows now (the SDK added them)
    const lowest = tl.lowestSeq();
    tl.more = Boolean(page.more) && lowest !== 1;
    if (conv !== this.active) return;
    // Keep the lines the user was looking at in place while older ones appear above them, and
    // keep screen readers from announcing a page of old lines as if they had just arrived.
    const scroller = $('scroller');
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    $('list-host').setAttribute('aria-busy', 'true');
    this.renderNow({ keepBottomOffset: this.stickToBottom ? null : fromBottom });
    $('list-host').setAttribute('aria-busy', 'false');
    // A short page that leaves nothing to scroll would never trigger the next load.
    if (tl.more && scroller.scrollHeight <= scroller.clientHeight + NEAR_EDGE_PX) this.loadOlder(conv);
  }

  connectionState() {
    const state = this.client.connectionState();
    return typeof state === 'string' ? state : state?.state;
  }

  scheduleRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => { this.renderQueued = false; this.renderNow(); });
  }

  renderNow({ keepBottomOffset = null } = {}) {
    const conv = this.active;
    if (!conv) return;
    const tl = this.timeline(conv);
    const list = this.lists.get(conv);
    list.render();
    $('empty').hidden = tl.rows().length > 0 || tl.historyState === 'loading' || !tl.loadedOnce;
    this.renderHistoryTop();
    const scroller = $('scroller');
    if (keepBottomOffset != null) scroller.scrollTop = scroller.scrollHeight - keepBottomOffset;
    else if (this.stickToBottom) scroller.scrollTop = scroller.scrollHeight;
    this.panel.refresh();
    this.renderIncident();
    this.renderHandoff();
    this.renderMembers();
    this.maybeMarkRead();
  }

  renderHistoryTop() {
    const tl = this.timeline(this.active);
    const button = $('load-older');
    const status = $('history-status');
    const hasRows = tl.rows().length > 0;
    const canLoad = tl.loadedOnce && tl.more && hasRows;
    button.hidden = !(canLoad || tl.historyState === 'error') || tl.historyState === 'loading';
    button.textContent = tl.historyState === 'error' ? 'Try loading older messages again' : 'Load older messages';
    if (tl.historyState === 'loading') status.textContent = 'Loading older messages…';
    else if (tl.historyState === 'error') status.textContent = `Could not load older messages: ${tl.historyError}`;
    else status.textContent = tl.loadedOnce && !tl.more && hasRows ? `This is the beginning of #${this.active}.` : '';
  }

  // Read means seen: the conversation is open, the tab visible and the newest lines on screen.
  maybeMarkRead() {
    const conv = this.active;
    if (!conv || document.visibilityState !== 'visible') return;
    if (distanceFromBottom($('scroller')) > NEAR_EDGE_PX) return;
    const high = this.timeline(conv).highestSeq();
    if (high <= (this.markedRead.get(conv) ?? 0)) return;
    this.markedRead.set(conv, high);
    this.client.markRead(conv, high);
  }

  refreshUnread() {
    for (const conv of this.convs) this.unread.set(conv, this.client.unread(conv) ?? 0);
    this.renderBadges();
  }

  renderConvList() {
    const items = this.convs.map((conv) => {
      const li = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'conv';
      button.dataset.conv = conv;
      if (conv === this.active) button.setAttribute('aria-current', 'page');
      button.innerHTML = '<span class="conv-hash" aria-hidden="true">#</span><span class="conv-name"></span>' +
        '<span class="badge" hidden><span class="badge-count"></span><span class="visually-hidden"> unread</span></span>';
      button.querySelector('.conv-name').textContent = conv;
      li.append(button);
      return li;
    });
    $('conv-list').replaceChildren(...items);
    this.renderBadges();
  }

  renderBadges() {
    let total = 0;
    const looking = document.visibilityState === 'visible';
    for (const button of $('conv-list').querySelectorAll('button[data-conv]')) {
      // The open conversation is being read: its count is about to drop to zero anyway.
      const conv = button.dataset.conv;
      const count = conv === this.active && looking ? 0 : this.unread.get(conv) ?? 0;
      total += count;
      const badge = button.querySelector('.badge');
      badge.hidden = count === 0;
      badge.querySelector('.badge-count').textContent = count > 99 ? '99+' : String(count);
      button.classList.toggle('has-unread', count > 0);
    }
    const title = this.active ? `#${this.active} · Waymark` : 'Waymark';
    document.title = total > 0 ? `(${total}) ${title}` : title;
    $('nav-toggle').classList.toggle('has-unread', total > 0);
  }

  // Members: whoever is here now, then everyone who has written, each with a presence dot.
  renderMembers() {
    const conv = this.active;
    if (!conv) return;
    const present = new Set(this.client.present(conv) ?? []);
    present.add(this.me);
    const known = new Set(present);
    for (const row of this.timeline(conv).rows()) if (row.from) known.add(row.from);
    const users = [...known].sort((a, b) => (present.has(b) - present.has(a)) || a.localeCompare(b));
    const key = `${conv}|${users.map((u) => `${u}:${present.has(u)}`).join(',')}`;
    if (key === this.membersKey) return;
    this.membersKey = key;
    $('members').replaceChildren(...users.map((user) => {
      const li = document.createElement('li');
      li.className = 'member';
      li.dataset.user = user;
      li.dataset.present = String(present.has(user));
      li.innerHTML = '<span class="presence-dot" aria-hidden="true"></span><span class="member-name"></span><span class="visually-hidden"></span>';
      li.querySelector('.member-name').textContent = user === this.me ? `${user} (you)` : user;
      li.querySelector('.visually-hidden').textContent = present.has(user) ? ', here now' : ', away';
      return li;
    }));
  }

  renderTyping() {
    $('typing').textContent = typingSentence(this.typingBoard.users(this.active));
  }

  openDetails(conv, id, opener) {
    this.detailsOpener = opener;
    this.lists.get(conv).select(id);
    document.body.classList.add('panel-open');
    this.panel.show(this.timeline(conv), id);
  }

  closeDetails({ refocus = true } = {}) {
    if (this.active) this.lists.get(this.active)?.select(null);
    this.panel.hide();
    document.body.classList.remove('panel-open');
    if (refocus && this.detailsOpener?.isConnected) this.detailsOpener.focus();
    this.detailsOpener = null;
  }

  dispose() {
    this.typingSender.stop();
    this.typingBoard.clear();
    this.banner.dispose();
    this.notifier.dispose();
    this.abort.abort();
    for (const off of this.unsubscribers) off();
    this.panel.hide();
    document.body.classList.remove('panel-open', 'drawer-open');
    this.client.close();
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function distanceFromBottom(scroller) {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
}

function autosize(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${textarea.scrollHeight + 2}px`;
}

// The phone-width drawer; on wider screens the sidebar is always there and this is a no-op.
function setDrawer(open) {
  const wasOpen = document.body.classList.contains('drawer-open');
  document.body.classList.toggle('drawer-open', open);
  $('nav-toggle').setAttribute('aria-expanded', String(open));
  $('scrim').hidden = !open;
  if (open && !wasOpen) ($('conv-list').querySelector('[aria-current]') ?? $('join-name')).focus();
}

// ---- sign-in and sign-out -----------------------------------------------------------------

let session = null;

function showSignIn(name = '', error = '', { tokenError = false } = {}) {
  $('app').hidden = true;
  $('signin').hidden = false;
  document.title = 'Sign in · Waymark';
  const field = $('signin-name');
  field.value = name;
  $('signin-error').textContent = error;
  field.setAttribute('aria-invalid', error && !tokenError ? 'true' : 'false');
  $('signin-token').setAttribute('aria-invalid', tokenError ? 'true' : 'false');
  if (tokenError) {
    $('token-signin').open = true;
    $('signin-token').focus();
  } else {
    field.focus();
  }
}

function forgetSignIn() {
  localStorage.removeItem(USER_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

// The SDK, or null after telling the sign-in screen why it could not be loaded.
async function sdkOrSignIn(name) {
  try {
    return await loadSdk();
  } catch (error) {
    forgetSignIn();
    showSignIn(name, `Could not start: ${error?.message ?? error}`);
    return null;
  }
}

// A user name the core accepts (dev:<name> is the token), else the sign-in screen says why.
async function signInIfValid(name) {
  const sdk = await sdkOrSignIn(name);
  if (!sdk) return;
  const problem = sdk.userProblem(name);
  if (problem) {
    forgetSignIn();
    showSignIn(name, problem);
    return;
  }
  localStorage.removeItem(TOKEN_KEY);
  signIn(sdk, name, `dev:${name}`);
}

// A JWT sign-in: the token is checked by the edge; here only that it can be read, names a valid
// user and has not expired yet, so the sign-in screen can say what is wrong with it.
async function signInWithToken(token) {
  const claims = tokenClaims(token);
  const problem = !claims || claims.dev ? 'This is not an access token (a JWT: three parts separated by dots).'
    : (expiresAt(claims) ?? Infinity) <= Date.now() ? `This token expired at ${new Date(expiresAt(claims)).toLocaleString()}.`
      : null;
  if (problem) {
    forgetSignIn();
    showSignIn('', problem, { tokenError: true });
    return;
  }
  const sdk = await sdkOrSignIn('');
  if (!sdk) return;
  const userProblem = sdk.userProblem(claims.user);
  if (userProblem) {
    forgetSignIn();
    showSignIn('', `The token's user: ${userProblem}`, { tokenError: true });
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  signIn(sdk, claims.user, token);
}

async function signIn(sdk, name, token) {
  localStorage.setItem(USER_KEY, name);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = name;
  $('conv-list').replaceChildren();
  $('members').replaceChildren();
  $('list-host').replaceChildren();
  $('chat-title').textContent = '';
  const banner = $('banner');
  banner.hidden = false;
  banner.dataset.state = 'connecting';
  $('banner-title').textContent = 'Connecting…';
  let client;
  try {
    // provisional: behind a relaying edge cut off from the root, others' messages show at once,
    // labelled "Not yet confirmed" (message-list.js) until the root's order arrives.
    client = await sdk.connect({ token, device: deviceId(), provisional: true });
  } catch (error) {
    forgetSignIn();
    showSignIn(name, `Could not start: ${error?.message ?? error}`);
    return;
  }
  if (localStorage.getItem(USER_KEY) !== name) { client.close(); return; }  // signed out meanwhile
  session = new Session(sdk, client, client.user || name, tokenClaims(token));
  session.start();
}

function signOut(error = '') {
  const wasToken = localStorage.getItem(TOKEN_KEY) != null;
  session?.dispose();
  session = null;
  forgetSignIn();
  $('signin-token').value = '';
  showSignIn('', error, { tokenError: Boolean(error) && wasToken });
}

function main() {
  $('nav-toggle').querySelector('.nav-icon').innerHTML = ICONS.menu;
  document.querySelector('.send-icon').innerHTML = ICONS.send;
  document.querySelector('.close-icon').innerHTML = ICONS.close;
  document.querySelector('.bell-icon').innerHTML = ICONS.bell;
  registerServiceWorker({ banner: $('update-banner'), button: $('update-reload') });

  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('signin-token').value.trim();
    if (token) signInWithToken(token);
    else signInIfValid($('signin-name').value.trim());
  });
  $('signout').addEventListener('click', () => signOut());

  const rememberedToken = localStorage.getItem(TOKEN_KEY);
  const remembered = localStorage.getItem(USER_KEY);
  if (rememberedToken) signInWithToken(rememberedToken);
  else if (remembered) signInIfValid(remembered);
  else showSignIn();
}

main();
