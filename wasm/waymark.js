// waymark.js: the Waymark browser SDK. The core's ClientSession (WebAssembly) does the protocol;
// this module is browser glue only: WebSocket, timers, IndexedDB, and one leader tab per user.
import createWaymarkCore from './waymark_core.js';

const SUBPROTOCOL = 'waymark.v1';
const DB_NAME = 'waymark';
const DB_VERSION = 1;
// Rows with a seq kept per conversation in IndexedDB, so a cached conversation reads offline.
// Rows without one (queued, failed, stored) are always kept: they are the outbox's.
const CACHED_ROWS_PER_CONV = 200;
// How long connect() waits for a leader tab's snapshot before resolving with cached rows.
const SYNC_WAIT_MS = 1500;
// Without Web Locks: how long a tab listens for a leader before leading itself, and how often
// a leader says it is alive (a tab that crashed cannot say it is leaving; three silent beats
// and the others elect again).
const FALLBACK_ELECTION_MS = 300;
const FALLBACK_HEARTBEAT_MS = 1000;
// Forwarded calls remembered by the leader, so a call re-posted after a hand-over runs once.
const SERVED_CALLS_KEPT = 1000;
// A history() forwarded to a leader tab that never answers (none is up) fails after this.
const FORWARDED_HISTORY_TIMEOUT_MS = 15000;
// After the edge refuses the token, getToken is asked at once; if that fails (it throws, returns
// nothing or the refused token, or the edge refuses the new one too), it is asked again after
// a delay drawn from [ceiling/2, ceiling], ceiling = min(cap, base * 2^(n-1)) for the n-th
// retry since the last time the session was online: never a tight loop, never in lockstep.
const TOKEN_RETRY_BASE_MS = 1000;
const TOKEN_RETRY_CAP_MS = 60000;

// A tab's roles and the moves between them: the only place they are listed. _become() is the
// only place a role changes; reading this._role elsewhere is fine.
//   starting  the tab has not yet learnt whether another tab leads
//   follower  another tab owns the session; calls are forwarded to it, its events mirrored
//   leading   this tab is taking the session over (reading IndexedDB, importing)
//   leader    this tab owns the ClientSession, the socket and the IndexedDB writes
//   closed    close() ran; final
const ROLE_MOVES = {
  starting: ['follower', 'leading', 'closed'],
  follower: ['follower', 'leading', 'closed'],  // follower -> follower: a new election
  leading: ['leader', 'closed'],
  leader: ['follower', 'closed'],                // stepped down: two leaders without Web Locks
  closed: [],
};
// What client.role says of each (an app sees only whether this tab owns the session).
const PUBLIC_ROLE = { starting: 'follower', follower: 'follower', leading: 'follower', leader: 'leader', closed: 'closed' };

let corePromise = null;
function loadCore() {
  if (!corePromise) corePromise = createWaymarkCore();
  return corePromise;
}

function randomU32s(count) {
  const values = new Uint32Array(count);
  crypto.getRandomValues(values);
  return Array.from(values);
}

function randomHex(bytes) {
  return randomU32s(Math.ceil(bytes / 4))
    .map((v) => v.toString(16).padStart(8, '0'))
    .join('')
    .slice(0, bytes * 2);
}

function tokenRetryDelay(attempt) {
  const ceiling = Math.min(TOKEN_RETRY_CAP_MS, TOKEN_RETRY_BASE_MS * 2 ** Math.min(attempt - 1, 16));
  return Math.round(ceiling / 2 + (randomU32s(1)[0] / 2 ** 32) * (ceiling / 2));
}

function defaultUrl() {
  const secure = globalThis.location?.protocol === 'https:';
  return `${secure ? 'wss' : 'ws'}://${globalThis.location?.host ?? '127.0.0.1'}/ws`;
}

// The key a user's local data lives under, known before any welcome (offline after a reload).
// A JWT rotates (getToken) while its user stays, so it is keyed by tenant and subject; any
// other token (dev:<user>) is its own key.
function identityOf(token) {
  const parts = token.split('.');
  if (parts.length === 3) {
    try {
      const payload = JSON.parse(atob(parts[1].replace(/-/g, '+').replace(/_/g, '/')));
      if (typeof payload.sub === 'string') return `jwt:${payload.tnt ?? ''}/${payload.sub}`;
    } catch {
      // not a JWT after all
    }
  }
  return token;
}

function errorFrom(error) {
  const failure = new Error(error?.msg ?? error?.message ?? 'failed');
  if (error?.code) failure.code = error.code;
  return failure;
}

function copyRow(row) {
  return { ...row, times: { ...row.times } };
}

// ---- IndexedDB, promisified ----------------------------------------------------------------

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

async function openDatabase() {
  if (!globalThis.indexedDB) return null;
  try {
    const open = indexedDB.open(DB_NAME, DB_VERSION);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore('state', { keyPath: 'scope' });
      db.createObjectStore('rows', { keyPath: ['scope', 'conv'] });
    };
    return await request(open);
  } catch {
    return null;  // private mode or storage off: run without persistence
  }
}

// Everything stored for one scope: {state, user} and the cached rows per conversation.
async function loadScope(db, scope) {
  if (!db) return { record: null, rows: [] };
  const tx = db.transaction(['state', 'rows'], 'readonly');
  const [record, rows] = await Promise.all([
    request(tx.objectStore('state').get(scope)),
    request(tx.objectStore('rows').getAll(IDBKeyRange.bound([scope], [scope, []]))),
  ]);
  return { record: record ?? null, rows };
}

// ---- the client ----------------------------------------------------------------------------

class WaymarkClient {
  constructor(options) {
    this.url = options.url ?? defaultUrl();
    this._token = options.token;
    this._device = options.device ?? '';
    this._getToken = options.getToken ?? null;
    this._tab = randomHex(8);
    this._listeners = new Map();    // event name -> Set of callbacks
    this._rows = new Map();         // conv -> Map(id -> row), insertion order = send order
    this._status = { connection: 'offline', user: '', present: {}, unread: {} };
    this._role = 'starting';        // see ROLE_MOVES; changed by _become() only
    this._pending = new Map();      // callId -> {method, args, resolve, reject}: forwarded, unanswered
    this._callCounter = 0;
    this._subs = new Map();         // conv -> after: this tab's subscriptions, re-sent to a new leader
    this._inbox = [];               // calls that arrived while this tab was becoming the leader
    this._served = new Map();       // "tab:callId" -> reply promise (leader)
    this._sockets = new Map();      // connection id -> WebSocket (leader)
    this._timer = null;
    this._historyWaiters = new Map();  // rid -> {resolve, reject} (leader)
    this._dirtyConvs = new Set();
    this._stateDirty = false;
    this._flushScheduled = false;
    this._flushing = null;
    this._persistWaiters = [];
    this._tracked = new Set();      // convs whose presence/unread followers mirror (leader)
    this._lockAbort = null;
    this._releaseLock = null;
    this._refreshingToken = false;  // a getToken() call is in flight (leader)
    this._tokenTimer = null;        // the next getToken() after a failed refresh (leader)
    this._tokenRetryAt = null;      // when that timer fires
    this._tokenAttempts = 0;        // refreshes since the session was last online
    this._unauthorized = false;     // the edge refused the token in use; no new one yet
    this._onWindowEvent = this._onWindowEvent.bind(this);
  }

  // ---- start-up ----

  async _init() {
    if (!this._token && this._getToken) this._token = await this._getToken();
    if (!this._token) throw new Error('connect: a token (or getToken) is required');
    this._scope = `${this.url}|${identityOf(this._token)}`;
    this._core = await loadCore();
    this._db = await openDatabase();
    const stored = await loadScope(this._db, this._scope);
    this._status.user = stored.record?.user ?? '';
    for (const entry of stored.rows) {
      const rows = this._convRows(entry.conv);
      for (const row of entry.rows) rows.set(row.id, row);
    }
    this._channel = globalThis.BroadcastChannel ? new BroadcastChannel(`waymark:${this._scope}`) : null;
    if (this._channel) this._channel.onmessage = (event) => this._onChannel(event.data);
    for (const name of ['online', 'offline', 'pagehide']) globalThis.addEventListener?.(name, this._onWindowEvent);
    globalThis.document?.addEventListener('visibilitychange', this._onWindowEvent);

    let settle;
    const ready = new Promise((resolve) => { settle = resolve; });
    this._settleReady = settle;
    if (globalThis.navigator?.locks) {
      this._electWithLocks();
    } else if (this._channel) {
      this._heartbeat = setInterval(() => this._onHeartbeat(), FALLBACK_HEARTBEAT_MS);
      this._electWithChannel();
    } else this._lead().catch((error) => this._fail(error));  // one tab is all there can be
    await ready;
  }

  _electWithLocks() {
    const name = `waymark:${this._scope}`;
    const hold = () => new Promise((resolve) => { this._releaseLock = resolve; });
    navigator.locks.request(name, { ifAvailable: true }, async (lock) => {
      if (!lock) {
        this._becomeFollower();
        this._lockAbort = new AbortController();
        navigator.locks
          .request(name, { signal: this._lockAbort.signal }, async () => {
            if (this._role === 'closed') return;
            await this._lead();
            return hold();
          })
          .catch(() => {});  // aborted by close()
        return;
      }
      await this._lead();
      return hold();
    }).catch((error) => this._fail(error));
  }

  // Without Web Locks: listen for a leader; lead when none answers. Two tabs that both lead
  // settle it by tab id (see 'leader' in _onChannel); ids make their duplicate sends harmless.
  _electWithChannel() {
    this._leaderSeenAt = Date.now();
    this._becomeFollower();
    this._post({ type: 'who', tab: this._tab });
    clearTimeout(this._electionTimer);
    this._electionTimer = setTimeout(() => {
      if (this._role === 'follower' && !this._leaderTab) this._lead().catch((error) => this._fail(error));
    }, FALLBACK_ELECTION_MS);
  }

  _onHeartbeat() {
    if (this._role === 'leader') {
      this._post({ type: 'leader', tab: this._tab });
    } else if (this._role === 'follower' && Date.now() - this._leaderSeenAt > 3 * FALLBACK_HEARTBEAT_MS) {
      this._electWithChannel();
    }
  }

  // Moves this tab to `role` if ROLE_MOVES allows it from the current one; false if not.
  _become(role) {
    if (!ROLE_MOVES[this._role].includes(role)) return false;
    this._role = role;
    return true;
  }

  _fail(error) {
    console.error('waymark:', error);
    this._settleReady?.();
  }

  _becomeFollower() {
    if (!this._become('follower')) return;
    this._leaderTab = null;
    this._post({ type: 'join', tab: this._tab });
    setTimeout(() => this._settleReady?.(), SYNC_WAIT_MS);
  }

  // Takes over the ClientSession: the persisted state (and anything the old leader announced
  // but may not have persisted) is imported before start, then this tab's own calls run.
  async _lead() {
    if (!this._become('leading')) return;  // closed, or leading already
    const stored = await loadScope(this._db, this._scope);
    if (this._role !== 'leading') return;  // closed meanwhile
    for (const entry of stored.rows) {
      const rows = this._convRows(entry.conv);
      for (const row of entry.rows) if (!rows.has(row.id)) rows.set(row.id, row);
    }
    if (stored.record?.user) this._status.user = this._status.user || stored.record.user;
    const [seedHigh, seedLow] = randomU32s(2);
    this._session = new this._core.WasmSession(this._token, this._device, seedHigh, seedLow);
    const now = Date.now();
    const saved = stored.record?.state ?? null;
    const state = this._withOrphans(saved);
    if (state) {
      let problem = this._session.importState(state, now);
      if (problem && state !== saved && saved) problem = this._session.importState(saved, now);
      if (problem) console.warn('waymark: stored state dropped:', problem);
    }
    this._become('leader');
    this._leaderTab = this._tab;
    for (const [conv, after] of this._subs) this._session.subscribe(conv, after ?? -1, now);
    this._session.start(now);
    this._pump();
    this._post({ type: 'leader', tab: this._tab });
    // This tab's own calls that no leader answered, then calls other tabs sent meanwhile.
    const own = [...this._pending.entries()];
    this._pending.clear();
    for (const [, call] of own) {
      Promise.resolve()
        .then(() => this._execute(call.method, call.args))
        .then(call.resolve, call.reject);
    }
    const inbox = this._inbox;
    this._inbox = [];
    for (const message of inbox) this._serve(message);
    this._settleReady?.();
  }

  // Own queued rows this tab saw announced whose outbox entry the stored state lacks (the old
  // leader closed before its write landed) go back into the outbox, in the core's export_state
  // format, under the same id: the edge stores an id once, so at worst it is acked as a dup.
  _withOrphans(state) {
    const orphans = [];
    let parsed = null;
    try {
      parsed = state ? JSON.parse(state) : null;
    } catch {
      parsed = null;
    }
    const known = new Set((parsed?.outbox ?? []).map((entry) => `${entry.conv}\n${entry.id}`));
    for (const [conv, rows] of this._rows) {
      for (const row of rows.values()) {
        if (!row.own || row.state !== 'queued' || row.seq != null || !row.trace) continue;
        if (known.has(`${conv}\n${row.id}`)) continue;
        orphans.push({ conv, id: row.id, body: row.body ?? null, cts: row.times.queued ?? Date.now(), trace: row.trace, failed: false });
      }
    }
    if (!orphans.length) return state;
    const merged = parsed && typeof parsed === 'object' ? parsed : { v: 1, convs: {} };
    merged.outbox = [...(merged.outbox ?? []), ...orphans];
    return JSON.stringify(merged);
  }

  // ---- the leader: driving the core ----

  _pump() {
    if (!this._session) return;
    for (const action of JSON.parse(this._session.takeIo())) this._perform(action);
    const events = JSON.parse(this._session.takeEvents());
    if (events.length) {
      const changed = this._apply(events);
      for (const conv of changed) this._dirtyConvs.add(conv);
      if (changed.size || events.some((event) => event.type === 'state')) this._schedulePersist();
      const shared = events.filter((event) => event.type !== 'history' && event.type !== 'state');
      if (shared.length) this._post({ type: 'events', events: shared, status: this._statusFor(shared) });
    }
    this._armTimer();
  }

  _armTimer() {
    clearTimeout(this._timer);
    this._timer = null;
    if (!this._session) return;
    const deadline = this._session.nextDeadline();
    if (deadline < 0) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!this._session) return;
      this._session.onTimer(Date.now());
      this._pump();
    }, Math.max(0, deadline - Date.now()));
  }

  _perform(action) {
    if (action.type === 'open') {
      this._openSocket(action.conn);
    } else if (action.type === 'write') {
      const socket = this._sockets.get(action.conn);
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(action.text);
    } else if (action.type === 'close') {
      const socket = this._sockets.get(action.conn);
      this._sockets.delete(action.conn);
      if (socket) this._dropSocket(socket, action.code);
    }
  }

  _openSocket(conn) {
    let socket;
    try {
      socket = new WebSocket(this.url, SUBPROTOCOL);
    } catch {
      setTimeout(() => this._socketClosed(conn, null, -1), 0);  // a bad url: report it as a close
      return;
    }
    this._sockets.set(conn, socket);
    socket.onopen = () => {
      if (this._sockets.get(conn) !== socket) return;
      this._session.onOpen(conn, Date.now());
      this._pump();
    };
    socket.onmessage = (event) => {
      if (this._sockets.get(conn) !== socket || typeof event.data !== 'string') return;
      this._session.onFrame(conn, event.data, Date.now());
      this._pump();
    };
    // The close code matters: 4001 means the edge refused the token.
    socket.onclose = (event) => this._socketClosed(conn, socket, event.code ?? -1);
  }

  _socketClosed(conn, socket, code = -1) {
    if (socket && this._sockets.get(conn) !== socket) return;
    this._sockets.delete(conn);
    if (!this._session) return;
    this._session.onClose(conn, Date.now(), code);
    this._pump();
  }

  _dropSocket(socket, code = 1000) {
    socket.onopen = socket.onmessage = socket.onclose = null;
    try {
      socket.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000);
    } catch {
      // already closed
    }
  }

  _onWindowEvent(event) {
    if (event.type === 'pagehide') {
      if (this._role !== 'leader') return;
      this._flush();  // best effort: the tab is going away
      if (!globalThis.navigator?.locks) this._post({ type: 'resign', tab: this._tab });  // locks free themselves
      return;
    }
    if (this._role !== 'leader' || !this._session) return;
    if (event.type === 'offline') {
      // The browser says the network is gone: a socket that looks open would only time out.
      for (const [conn, socket] of [...this._sockets]) {
        this._dropSocket(socket);
        this._socketClosed(conn, null, -1);
      }
      return;
    }
    if (event.type === 'visibilitychange' && document.visibilityState !== 'visible') return;
    this._reconnectNow();
  }

  // The network is back, the tab is visible, or the app said connectNow(). After the edge
  // refused the token, reconnecting with it would only be refused again: with getToken a new
  // one is asked for now (skipping the wait: a fetch that failed offline may work now);
  // without it, only the app's explicit connectNow() tries the same token again.
  _reconnectNow(explicit = false) {
    if (!this._session) return;
    if (this._unauthorized && this._getToken) {
      if (this._refreshingToken) return;
      clearTimeout(this._tokenTimer);
      this._tokenTimer = null;
      this._tokenRetryAt = null;
      this._refreshToken();
      return;
    }
    if (this._unauthorized && !explicit) return;
    this._session.connectNow(Date.now());
    this._pump();
  }

  // The core stopped because the edge refused the token (err unauthorized, bye token_expired,
  // close 4001). Returns when getToken will be asked, if that is later than now.
  _onUnauthorized() {
    this._unauthorized = true;
    if (!this._getToken) return null;  // a fixed token: stay offline, the app decides
    if (this._refreshingToken || this._tokenTimer) return this._tokenRetryAt;
    const attempt = this._tokenAttempts++;
    if (attempt === 0) {
      this._refreshToken();
      return null;
    }
    return this._retryTokenLater(attempt);
  }

  _retryTokenLater(attempt) {
    const delay = tokenRetryDelay(attempt);
    this._tokenRetryAt = Date.now() + delay;
    this._tokenTimer = setTimeout(() => {
      this._tokenTimer = null;
      this._tokenRetryAt = null;
      this._refreshToken();
    }, delay);
    return this._tokenRetryAt;
  }

  // Asks getToken for a new token; a good one goes into the next hello, and the session
  // reconnects with it at once. A failure is retried later (see TOKEN_RETRY_BASE_MS).
  _refreshToken() {
    if (!this._getToken || this._refreshingToken || !this._session) return;
    const session = this._session;
    const refused = this._token;
    this._refreshingToken = true;
    Promise.resolve()
      .then(() => this._getToken())
      .then((token) => {
        if (typeof token !== 'string' || !token) throw new Error('getToken returned no token');
        if (token === refused) throw new Error('getToken returned the token the edge refused');
        return token;
      })
      .then(
        (token) => {
          this._refreshingToken = false;
          if (this._session !== session) return;  // closed or stepped down meanwhile
          this._token = token;
          this._unauthorized = false;
          session.setToken(token);
          session.connectNow(Date.now());
          this._pump();
        },
        (error) => {
          this._refreshingToken = false;
          if (this._session !== session) return;
          console.warn('waymark: getToken failed:', error);
          const nextRetryAt = this._retryTokenLater(this._tokenAttempts++);
          const message = error?.message ?? String(error);
          this._announce({ type: 'connection', state: 'offline', reason: `unauthorized: getToken failed: ${message}`, nextRetryAt });
        },
      );
  }

  // An event of the SDK's own, told to this tab's listeners and to the followers like the
  // core's events are.
  _announce(event) {
    this._apply([event]);
    this._post({ type: 'events', events: [event], status: this._statusFor([event]) });
  }

  // ---- events: the leader's from the core, a follower's from the leader ----

  // Applies core events to the rows and tells listeners; returns the conversations whose rows
  // changed. Rows are a Map keyed by id, nothing more: order and states are the core's.
  _apply(events) {
    const changedRows = new Set();
    for (const event of events) {
      switch (event.type) {
        case 'row':
          changedRows.add(this._upsertRow(event));
          break;
        case 'message': {
          changedRows.add(this._upsertMessage(event));
          this._emit('message', { ...event.msg, own: event.own });
          break;
        }
        case 'connection':
          this._status.connection = event.state;
          if (this._session) this._status.user = this._session.user() || this._status.user;
          if (this._session && event.state === 'online') {
            this._tokenAttempts = 0;
            this._unauthorized = false;
          }
          if (this._session && event.state === 'offline' && event.reason.startsWith('unauthorized')) {
            // Followers get this same object: they see when the next getToken() is due.
            const retryAt = this._onUnauthorized();
            if (retryAt != null && event.nextRetryAt == null) event.nextRetryAt = retryAt;
          }
          this._emit('connection', { state: event.state, nextRetryAt: event.nextRetryAt, reason: event.reason });
          break;
        case 'presence':
          this._tracked.add(event.conv);
          this._emit('presence', { conv: event.conv, user: event.user, on: event.on });
          break;
        case 'typing':
          this._emit('typing', { conv: event.conv, user: event.user, on: event.on });
          break;
        case 'receipt':
          this._emit('receipt', { conv: event.conv, user: event.user, seq: event.seq, kind: event.kind });
          break;
        case 'unread':
          this._tracked.add(event.conv);
          this._status.unread[event.conv] = event.count;
          this._emit('unread', { conv: event.conv, count: event.count });
          break;
        case 'cursor':
          this._emit('cursor', { conv: event.conv, seq: event.seq });
          break;
        case 'history': {
          const waiter = this._historyWaiters.get(event.rid);
          if (!waiter) break;
          this._historyWaiters.delete(event.rid);
          if (event.error) waiter.reject(errorFrom(event.error));
          else waiter.resolve({ msgs: event.msgs, more: event.more });
          break;
        }
        case 'error':
          this._emit('error', { code: event.error.code, msg: event.error.msg, rid: event.rid });
          break;
        default:
          break;
      }
    }
    const convs = new Set();
    for (const row of changedRows) {
      convs.add(row.conv);
      this._emit('row', copyRow(row));
    }
    return convs;
  }

  _convRows(conv) {
    let rows = this._rows.get(conv);
    if (!rows) {
      rows = new Map();
      this._rows.set(conv, rows);
    }
    return rows;
  }

  _newRow(conv, id, own) {
    return { conv, id, from: own ? this.user : '', body: null, state: undefined, times: {}, trace: null, own };
  }

  _upsertRow(event) {
    const rows = this._convRows(event.conv);
    let row = rows.get(event.id);
    if (!row) {
      row = this._newRow(event.conv, event.id, event.own);
      rows.set(event.id, row);
    }
    row.state = event.state;
    row.own = event.own;
    if (row.own && !row.from) row.from = this.user;
    if (event.seq != null) row.seq = event.seq;
    if ('body' in event) row.body = event.body;
    if (event.trace) row.trace = event.trace;
    if (event.error) row.error = event.error;
    else delete row.error;
    if (event.at != null && row.times[event.state] == null) row.times[event.state] = event.at;
    return row;
  }

  _upsertMessage(event) {
    const msg = event.msg;
    const rows = this._convRows(msg.conv);
    let row = rows.get(msg.id);
    if (!row) {
      row = this._newRow(msg.conv, msg.id, event.own);
      rows.set(msg.id, row);
    }
    if (msg.seq != null) row.seq = msg.seq;
    row.from = msg.from;
    row.body = msg.body;
    row.ts = msg.ts;
    if (msg.trace) row.trace = msg.trace;
    row.own = event.own;
    return row;
  }

  // What followers mirror of the leader's queries after these events.
  _statusFor(events) {
    const status = { connection: this._status.connection, user: this.user, present: {}, unread: {} };
    for (const event of events) {
      if (event.type === 'presence') status.present[event.conv] = this.present(event.conv);
      if (event.type === 'unread') status.unread[event.conv] = event.count;
    }
    return status;
  }

  _snapshot() {
    const rows = {};
    for (const [conv, map] of this._rows) rows[conv] = [...map.values()];
    const status = { connection: this._status.connection, user: this.user, present: {}, unread: {} };
    for (const conv of new Set([...this._tracked, ...this._subs.keys()])) {
      status.present[conv] = this.present(conv);
      status.unread[conv] = this.unread(conv);
    }
    return { rows, status };
  }

  _mirror(status) {
    if (status.user) this._status.user = status.user;
    this._status.connection = status.connection;
    Object.assign(this._status.present, status.present);
    Object.assign(this._status.unread, status.unread);
  }

  // ---- persistence (leader) ----

  _schedulePersist() {
    this._stateDirty = true;
    if (this._flushScheduled) return;
    this._flushScheduled = true;
    queueMicrotask(() => {
      this._flushScheduled = false;
      this._flush();
    });
  }

  // Resolves once everything done before this call is in IndexedDB.
  _persisted() {
    if (!this._db) return Promise.resolve();
    return new Promise((resolve) => {
      this._persistWaiters.push(resolve);
      this._schedulePersist();
    });
  }

  async _flush() {
    if (!this._db || !this._session) {
      for (const resolve of this._persistWaiters.splice(0)) resolve();
      return;
    }
    if (this._flushing) {
      await this._flushing;  // one write at a time, the next one takes what piled up
      if (this._flushing) return this._flushing;
    }
    if (!this._stateDirty && !this._dirtyConvs.size && !this._persistWaiters.length) return;
    const waiters = this._persistWaiters.splice(0);
    const convs = [...this._dirtyConvs];
    this._dirtyConvs.clear();
    this._stateDirty = false;
    const record = { scope: this._scope, state: this._session.exportState(), user: this.user, savedAt: Date.now() };
    const write = (async () => {
      try {
        const tx = this._db.transaction(['state', 'rows'], 'readwrite');
        tx.objectStore('state').put(record);
        const store = tx.objectStore('rows');
        for (const conv of convs) store.put({ scope: this._scope, conv, rows: this._cachedRows(conv) });
        await finished(tx);
      } catch (error) {
        console.warn('waymark: could not persist:', error);
      }
    })();
    this._flushing = write;
    await write;
    this._flushing = null;
    for (const resolve of waiters) resolve();
    if (this._stateDirty || this._dirtyConvs.size || this._persistWaiters.length) this._flush();
  }

  _cachedRows(conv) {
    const rows = this.rows(conv);
    const sequenced = rows.filter((row) => row.seq != null);
    const rest = rows.filter((row) => row.seq == null);
    return [...sequenced.slice(-CACHED_ROWS_PER_CONV), ...rest];
  }

  // ---- tabs: forwarding calls to the leader ----

  _post(message) {
    try {
      this._channel?.postMessage(message);
    } catch (error) {
      console.warn('waymark: broadcast failed:', error);
    }
  }

  // Posts a call for the leader; kept until answered (and re-posted to a new leader), or
  // until timeoutMs when given.
  _forward(method, args, timeoutMs = 0) {
    return new Promise((resolve, reject) => {
      const callId = ++this._callCounter;
      let timer = null;
      const settle = (fn) => (value) => {
        clearTimeout(timer);
        fn(value);
      };
      this._pending.set(callId, { method, args, resolve: settle(resolve), reject: settle(reject) });
      if (timeoutMs) {
        timer = setTimeout(() => {
          if (!this._pending.delete(callId)) return;
          reject(errorFrom({ code: 'unavailable', msg: `${method}: no leader tab answered` }));
        }, timeoutMs);
      }
      if (this._role === 'follower') this._post({ type: 'call', tab: this._tab, callId, method, args });
    });
  }

  // Runs a call here; only the leader may. Sends forwarded by other tabs carry their ids.
  _execute(method, args) {
    const session = this._session;
    const now = Date.now();
    let result;
    switch (method) {
      case 'send': {
        // A row with a trace came from the core: this send already ran before a hand-over.
        if (args.id && this._rows.get(args.conv)?.get(args.id)?.trace) {
          result = this._persisted().then(() => args.id);
          break;
        }
        const body = JSON.stringify(args.body === undefined ? null : args.body);
        const id = args.id
          ? session.sendWithId(args.conv, body, args.now, args.id)
          : session.send(args.conv, body, now);
        if (!id) throw new Error('send: body is not JSON');
        if (args.id && id !== args.id) console.error('waymark: forwarded send got id', id, 'expected', args.id);
        this._pump();
        result = args.id ? this._persisted().then(() => id) : id;
        break;
      }
      case 'subscribe':
        this._tracked.add(args.conv);
        // Any time: made during the handshake, the core sends it after the welcome.
        session.subscribe(args.conv, args.after ?? -1, now);
        break;
      case 'unsubscribe':
        session.unsubscribe(args.conv, now);
        break;
      case 'markRead':
        session.markRead(args.conv, args.seq, now);
        break;
      case 'setTyping':
        session.setTyping(args.conv, Boolean(args.on), now);
        break;
      case 'retry':
        result = session.retry(args.conv, args.id, now);
        break;
      case 'connectNow':
        this._reconnectNow(true);
        break;
      case 'history':
        result = new Promise((resolve, reject) => {
          const rid = session.requestHistory(args.conv, args.before ?? -1, args.after ?? -1, args.limit ?? 0, now);
          this._historyWaiters.set(rid, { resolve, reject });
        });
        break;
      default:
        throw new Error(`unknown call ${method}`);
    }
    this._pump();
    return result;
  }

  _serve(message) {
    const key = `${message.tab}:${message.callId}`;
    let reply = this._served.get(key);
    if (!reply) {
      reply = Promise.resolve().then(() => this._execute(message.method, message.args));
      this._served.set(key, reply);
      if (this._served.size > SERVED_CALLS_KEPT) this._served.delete(this._served.keys().next().value);
    }
    reply.then(
      (value) => this._post({ type: 'reply', to: message.tab, callId: message.callId, ok: true, value }),
      (error) => this._post({ type: 'reply', to: message.tab, callId: message.callId, ok: false, error: { message: error.message, code: error.code } }),
    );
  }

  _onChannel(message) {
    if (!message || typeof message !== 'object' || message.tab === this._tab) return;
    switch (message.type) {
      case 'call':
        if (this._role === 'leader') this._serve(message);
        else if (this._role === 'leading') this._inbox.push(message);
        break;
      case 'reply': {
        if (message.to !== this._tab) break;
        const call = this._pending.get(message.callId);
        if (!call) break;
        this._pending.delete(message.callId);
        if (message.ok) call.resolve(message.value);
        else call.reject(errorFrom({ msg: message.error?.message, code: message.error?.code }));
        break;
      }
      case 'events':
        if (this._role !== 'follower') break;
        this._mirror(message.status);
        this._apply(message.events);
        break;
      case 'join':
      case 'who':
        if (this._role === 'leader') {
          if (message.type === 'who') this._post({ type: 'leader', tab: this._tab });
          else this._post({ type: 'sync', to: message.tab, snapshot: this._snapshot() });
        }
        break;
      case 'sync':
        if (message.to === this._tab && this._role === 'follower') this._adopt(message.snapshot);
        break;
      case 'leader':
        if (this._role === 'leader') {
          // Only without Web Locks can two tabs lead; the lower tab id keeps the session.
          if (message.tab < this._tab) this._stepDown();
          break;
        }
        if (this._role !== 'follower') break;
        this._leaderSeenAt = Date.now();
        if (message.tab === this._leaderTab) break;  // a heartbeat
        this._leaderTab = message.tab;
        this._post({ type: 'join', tab: this._tab });
        for (const [conv, after] of this._subs) this._post({ type: 'call', tab: this._tab, callId: ++this._callCounter, method: 'subscribe', args: { conv, after } });
        for (const [callId, call] of this._pending) this._post({ type: 'call', tab: this._tab, callId, method: call.method, args: call.args });
        break;
      case 'resign':
        if (this._role === 'follower' && message.tab === this._leaderTab && !globalThis.navigator?.locks) {
          this._leaderTab = null;
          setTimeout(() => this._electWithChannel(), Math.floor(Math.random() * FALLBACK_ELECTION_MS));
        }
        break;
      default:
        break;
    }
  }

  // A leader's snapshot replaces what this follower showed.
  _adopt(snapshot) {
    const connection = this._status.connection;
    this._mirror(snapshot.status);
    for (const [conv, rows] of Object.entries(snapshot.rows)) {
      const map = this._convRows(conv);
      for (const row of rows) {
        const before = map.get(row.id);
        if (before && JSON.stringify(before) === JSON.stringify(row)) continue;
        map.set(row.id, row);
        this._emit('row', copyRow(row));
      }
    }
    if (this._status.connection !== connection) this._emit('connection', { state: this._status.connection, reason: 'leader tab' });
    this._settleReady?.();
  }

  async _stepDown() {
    if (this._role !== 'leader') return;
    await this._flush();
    this._stopSession();
    this._becomeFollower();
  }

  _stopSession() {
    clearTimeout(this._timer);
    this._timer = null;
    clearTimeout(this._tokenTimer);
    this._tokenTimer = null;
    this._tokenRetryAt = null;
    this._tokenAttempts = 0;
    this._unauthorized = false;
    for (const socket of this._sockets.values()) this._dropSocket(socket);
    this._sockets.clear();
    for (const waiter of this._historyWaiters.values()) waiter.reject(errorFrom({ code: 'unavailable', msg: 'closed' }));
    this._historyWaiters.clear();
    this._session?.delete();
    this._session = null;
  }

  _emit(type, payload) {
    const listeners = this._listeners.get(type);
    if (!listeners) return;
    for (const listener of [...listeners]) {
      try {
        listener(payload);
      } catch (error) {
        console.error(`waymark: a '${type}' listener threw:`, error);
      }
    }
  }

  _call(method, args) {
    if (this._role === 'closed') throw new Error('waymark: client is closed');
    if (this._role === 'leader') return this._execute(method, args);
    return this._forward(method, args);
  }

  // ---- the public API ----

  get user() {
    return (this._session && this._session.user()) || this._status.user;
  }

  get role() {
    return PUBLIC_ROLE[this._role];
  }

  send(conv, body) {
    if (this._role === 'closed') throw new Error('waymark: client is closed');
    if (this._role === 'leader') return this._execute('send', { conv, body });
    // Another tab owns the session: pick the id's randomness here so the id is known at once.
    const now = Date.now();
    const draws = randomU32s(4);
    const id = this._core.messageIdFor(now, ...draws);
    const rows = this._convRows(conv);
    if (!rows.has(id)) {
      const row = this._newRow(conv, id, true);
      Object.assign(row, { state: 'queued', body: body === undefined ? null : body, times: { queued: now } });
      rows.set(id, row);
      this._emit('row', copyRow(row));
    }
    this._forward('send', { conv, body, now, id }).catch((error) => console.warn('waymark: send:', error));
    return id;
  }

  subscribe(conv, { after } = {}) {
    this._subs.set(conv, after ?? null);
    this._quietly(this._call('subscribe', { conv, after }));
  }

  unsubscribe(conv) {
    this._subs.delete(conv);
    this._quietly(this._call('unsubscribe', { conv }));
  }

  markRead(conv, seq) {
    this._quietly(this._call('markRead', { conv, seq }));
  }

  setTyping(conv, on) {
    this._quietly(this._call('setTyping', { conv, on }));
  }

  history(conv, { before, after, limit } = {}) {
    const args = { conv, before, after, limit };
    if (this._role === 'closed') return Promise.reject(new Error('waymark: client is closed'));
    // The core times out its own request; a forwarded one needs a bound of its own.
    if (this._role === 'leader') return this._execute('history', args);
    return this._forward('history', args, FORWARDED_HISTORY_TIMEOUT_MS);
  }

  retry(conv, id) {
    this._quietly(this._call('retry', { conv, id }));
  }

  connectNow() {
    this._quietly(this._call('connectNow', {}));
  }

  _quietly(result) {
    if (result && typeof result.catch === 'function') result.catch((error) => console.warn('waymark:', error));
  }

  on(type, callback) {
    let listeners = this._listeners.get(type);
    if (!listeners) {
      listeners = new Set();
      this._listeners.set(type, listeners);
    }
    listeners.add(callback);
    return () => listeners.delete(callback);
  }

  // The conversation's rows: by the seq the core gave, then those without one in send order.
  rows(conv) {
    const rows = [...(this._rows.get(conv)?.values() ?? [])].filter((row) => row.state !== undefined);
    const sequenced = rows.filter((row) => row.seq != null).sort((a, b) => a.seq - b.seq);
    const rest = rows.filter((row) => row.seq == null);
    return [...sequenced, ...rest].map(copyRow);
  }

  connectionState() {
    return this._session ? this._session.connectionState() : this._status.connection;
  }

  present(conv) {
    if (this._session) return JSON.parse(this._session.present(conv));
    return [...(this._status.present[conv] ?? [])];
  }

  unread(conv) {
    if (this._session) return this._session.unread(conv);
    return this._status.unread[conv] ?? 0;
  }

  async close() {
    if (this._role === 'closed') return;
    const wasLeader = this._role === 'leader';
    if (wasLeader) {
      this._session.close(Date.now());
      this._pump();
      await this._flush();
      this._stopSession();
    }
    this._become('closed');
    clearTimeout(this._electionTimer);
    clearInterval(this._heartbeat);
    for (const call of this._pending.values()) call.reject(new Error('waymark: client closed'));
    this._pending.clear();
    if (wasLeader) this._post({ type: 'resign', tab: this._tab });
    this._lockAbort?.abort();
    this._releaseLock?.();
    for (const name of ['online', 'offline', 'pagehide']) globalThis.removeEventListener?.(name, this._onWindowEvent);
    globalThis.document?.removeEventListener('visibilitychange', this._onWindowEvent);
    this._channel?.close();
    this._db?.close();
  }
}

export async function connect(options = {}) {
  const client = new WaymarkClient(options);
  await client._init();
  return client;
}
