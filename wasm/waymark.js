// waymark.js: the Waymark browser SDK. The core's ClientSession (WebAssembly) does the protocol;
// this module is browser glue only: WebSocket, timers, IndexedDB, and one leader tab per user.
import createWaymarkCore from './waymark_core.js';

const SUBPROTOCOL = 'waymark.v1';
const DB_NAME = 'waymark';
const DB_VERSION = 1;
// Rows with a seq kept per conversation in IndexedDB, so a cached conversation reads offline.
// Own rows without one (queued, failed, stored) are always kept: they are the outbox's. Others'
// provisional rows are not kept: the relay sends them again on every subscribe while they are
// unsequenced, and one the root refused for good would otherwise stay forever.
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
// Core events only the leader tab acts on: answers to its own requests, persistence, tokens.
const LEADER_ONLY_EVENTS = new Set(['history', 'state', 'token']);
// A history() forwarded to a leader tab that never answers (none is up) fails after this.
const FORWARDED_HISTORY_TIMEOUT_MS = 15000;

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

// The core, loaded with this module: the rules below are its functions, usable at once.
const core = await createWaymarkCore();

// What is wrong with a conversation name, as a sentence for a person; null when it is valid.
export function convProblem(name) {
  return core.convProblem(String(name ?? '')) || null;
}

// What is wrong with a user name (the user of a dev:<name> token, a JWT's sub); null when valid.
export function userProblem(name) {
  return core.userProblem(String(name ?? '')) || null;
}

// Whether a row in `state` has gone through `step` on its way (queued ... read; failed has
// passed only queued): the core's state order, for lifecycle views.
export function rowStatePassed(state, step) {
  return core.rowStatePassed(String(state), String(step));
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

function defaultUrl() {
  const secure = globalThis.location?.protocol === 'https:';
  return `${secure ? 'wss' : 'ws'}://${globalThis.location?.host ?? '127.0.0.1'}/ws`;
}

// connect()'s `url`: one URL or a list of them (failover). Returns the list, in order.
function edgeUrls(url) {
  if (url === undefined || url === null) return [defaultUrl()];
  const urls = Array.isArray(url) ? url : [url];
  if (!urls.length || urls.some((entry) => typeof entry !== 'string' || !entry)) {
    throw new Error('connect: url must be a WebSocket URL or a non-empty list of them');
  }
  return [...urls];
}

// The part of the storage scope (IndexedDB, the lock, the BroadcastChannel) that names the
// edges: the URL itself for one, as before; for a list the distinct URLs in sorted order, so
// tabs that list the same edges in another order (to spread their load) share one session.
function edgesKey(urls) {
  return urls.length === 1 ? urls[0] : [...new Set(urls)].sort().join(' ');
}

function errorFrom(error) {
  const failure = new Error(error?.msg ?? error?.message ?? 'failed');
  if (error?.code) failure.code = error.code;
  return failure;
}

// One conversation's rows: the core's RowList (keyed by id, states only forward, ordered by
// seq and then by appearance), held in every tab, the leader's and the followers' alike.
class ConversationRows {
  constructor(conv) {
    this.list = new core.RowList(conv);
  }

  // Each returns the row afterwards (a fresh object), or null when the input was refused.
  applyEvent(event) {
    const text = event.type === 'message'
      ? this.list.applyMessage(JSON.stringify(event.msg), Boolean(event.own))
      : this.list.applyRow(JSON.stringify(event));
    return text ? JSON.parse(text) : null;
  }

  addHistory(msg, user) {
    const text = this.list.addHistory(JSON.stringify(msg), user);
    return text ? JSON.parse(text) : null;
  }

  restore(row) { return this.list.restore(JSON.stringify(row)); }

  replace(row) { return this.list.replace(JSON.stringify(row)); }

  get(id) {
    const text = this.list.row(id);
    return text ? JSON.parse(text) : null;
  }

  all() { return JSON.parse(this.list.rows()); }

  delete() { this.list.delete(); }
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
    // Failover: each new socket the core asks for goes to the next URL of the list (round
    // robin), so after a lost or failed connection the next attempt tries the next edge. When to
    // reconnect stays the core's (its backoff); the host only picks where.
    this._urls = edgeUrls(options.url);
    this._urlTurn = 0;              // how many sockets the leader opened: the next URL's turn
    this._urlInUse = this._urls[0]; // the URL of the current (or last) socket
    this._token = options.token;
    this._device = options.device ?? '';
    this._getToken = options.getToken ?? null;
    // hello.provisional: a relay's provisional msgs become rows (provisional: true) until sequenced.
    this._provisional = Boolean(options.provisional);
    this._tab = randomHex(8);
    this._listeners = new Map();    // event name -> Set of callbacks
    this._rows = new Map();         // conv -> ConversationRows
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
    this._onWindowEvent = this._onWindowEvent.bind(this);
  }

  // ---- start-up ----

  async _init() {
    if (!this._token && this._getToken) this._token = await this._getToken();
    if (!this._token) throw new Error('connect: a token (or getToken) is required');
    // A JWT rotates (getToken) while its user stays: the core keys it by tenant and subject.
    this._scope = `${edgesKey(this._urls)}|${core.localIdentityKey(this._token)}`;
    this._db = await openDatabase();
    const stored = await loadScope(this._db, this._scope);
    this._status.user = stored.record?.user ?? '';
    for (const entry of stored.rows) {
      const rows = this._convRows(entry.conv);
      for (const row of entry.rows) rows.restore(row);
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
      for (const row of entry.rows) rows.restore(row);  // what this tab saw is newer
    }
    if (stored.record?.user) this._status.user = this._status.user || stored.record.user;
    const [seedHigh, seedLow] = randomU32s(2);
    this._session = new core.WasmSession(this._token, this._device, seedHigh, seedLow, this._provisional);
    // With getToken, a refused token makes the core ask for a new one (a 'token' event).
    this._session.setTokenRefresh(Boolean(this._getToken));
    const now = Date.now();
    const saved = stored.record?.state ?? null;
    if (saved) {
      const problem = this._session.importState(saved, now);
      if (problem) console.warn('waymark: stored state dropped:', problem);
    }
    this._requeueOrphans(now);
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
  // leader closed before its write landed) go back into the outbox under the same id, body,
  // cts and trace: the edge stores an id once, so at worst it is acked as a dup.
  _requeueOrphans(now) {
    for (const [conv, rows] of this._rows) {
      for (const row of rows.all()) {
        if (!row.own || row.state !== 'queued' || row.seq != null || !row.trace) continue;
        this._session.requeue(conv, row.id, JSON.stringify(row.body ?? null), row.times.queued ?? now, row.trace, now);
      }
    }
  }

  // ---- the leader: driving the core ----

  _pump() {
    if (!this._session) return;
    for (const action of JSON.parse(this._session.takeIo())) this._perform(action);
    const events = JSON.parse(this._session.takeEvents());
    // Which edge: connecting and online name the URL of the socket just opened (also for the
    // follower tabs, which get these events as they are).
    for (const event of events) {
      if (event.type === 'connection' && event.state !== 'offline') event.url = this._urlInUse;
    }
    if (events.length) {
      const changed = this._apply(events);
      for (const conv of changed) this._dirtyConvs.add(conv);
      if (changed.size || events.some((event) => event.type === 'state')) this._schedulePersist();
      const shared = events.filter((event) => !LEADER_ONLY_EVENTS.has(event.type));
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
    const url = this._urls[this._urlTurn % this._urls.length];
    this._urlTurn += 1;
    this._urlInUse = url;
    let socket;
    try {
      socket = new WebSocket(url, SUBPROTOCOL);
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

  // The network is back or the tab is visible (explicit: the app said connectNow()). The core
  // decides what that means: skip the reconnect wait, or after a refused token ask for a new
  // one now (with getToken) or, without getToken, try the same token only when explicit.
  _reconnectNow(explicit = false) {
    if (!this._session) return;
    if (explicit) this._session.connectNow(Date.now());
    else this._session.wake(Date.now());
    this._pump();
  }

  // The core wants a new token (a 'token' event: the edge refused the one in use, or the wait
  // after a failed refresh is over): getToken's answer goes back to it. A good token reconnects
  // at once; anything else is retried on the core's schedule (its token backoff).
  _fetchToken() {
    const session = this._session;
    if (!session || !this._getToken) return;
    Promise.resolve()
      .then(() => this._getToken())
      .then((token) => {
        if (this._session !== session) return;  // closed or stepped down meanwhile
        const text = typeof token === 'string' ? token : '';
        if (!session.tokenFetched(text, Date.now())) {
          throw new Error(text ? 'getToken returned the token the edge refused' : 'getToken returned no token');
        }
        this._token = text;
        this._pump();
      })
      .catch((error) => {
        if (this._session !== session) return;
        console.warn('waymark: getToken failed:', error);
        session.tokenFetchFailed(Date.now(), `getToken failed: ${error?.message ?? String(error)}`);
        this._pump();
      });
  }

  // ---- events: the leader's from the core, a follower's from the leader ----

  // Applies core events to the rows and tells listeners; returns the conversations whose rows
  // changed. The rows, their states and their order are the core's RowList's.
  _apply(events) {
    const changedRows = new Map();  // "conv\nid" -> the row after the last event about it
    const applyToRows = (conv, event) => {
      const row = this._convRows(conv).applyEvent(event);
      if (row) changedRows.set(`${conv}\n${row.id}`, row);
    };
    for (const event of events) {
      switch (event.type) {
        case 'row':
          applyToRows(event.conv, event);
          break;
        case 'message': {
          applyToRows(event.msg.conv, event);
          this._emit('message', { ...event.msg, own: event.own });
          break;
        }
        case 'connection': {
          this._status.connection = event.state;
          if (this._session) this._status.user = this._session.user() || this._status.user;
          const connection = { state: event.state, nextRetryAt: event.nextRetryAt, reason: event.reason };
          if (event.needsToken) connection.needsToken = true;
          if (event.url) {
            this._urlInUse = event.url;
            connection.url = event.url;
          }
          this._emit('connection', connection);
          break;
        }
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
        case 'token':
          if (this._session) this._fetchToken();
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
    for (const row of changedRows.values()) {
      convs.add(row.conv);
      if (row.state !== undefined) this._emit('row', this._shown(row));
    }
    return convs;
  }

  // A row as apps get it: an own row names this user as its sender before its msg arrives.
  _shown(row) {
    if (row.own && !row.from) row.from = this.user;
    return row;
  }

  _convRows(conv) {
    let rows = this._rows.get(conv);
    if (!rows) {
      rows = new ConversationRows(conv);
      this._rows.set(conv, rows);
    }
    return rows;
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
    for (const [conv, list] of this._rows) rows[conv] = list.all();
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
    const rest = rows.filter((row) => row.seq == null && row.own);
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
      const list = this._convRows(conv);
      for (const row of rows) if (list.replace(row)) this._emit('row', this._shown(list.get(row.id)));
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

  // The edge URL of the current (or last) connection; the first of the list before any.
  get url() {
    return this._urlInUse;
  }

  // Every edge URL given to connect(), in the order they are tried.
  get urls() {
    return [...this._urls];
  }

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
    const id = core.messageIdFor(now, ...draws);
    const rows = this._convRows(conv);
    if (!rows.get(id)) {
      // Shown at once, as the leader's core will queue it (its row event then adds the trace).
      const row = rows.applyEvent({ type: 'row', conv, id, state: 'queued', own: true, at: now, body: body === undefined ? null : body });
      if (row) this._emit('row', this._shown(row));
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
    const page = this._role === 'leader'
      ? this._execute('history', args)
      : this._forward('history', args, FORWARDED_HISTORY_TIMEOUT_MS);
    return page.then((result) => {
      this._addHistory(conv, result.msgs);
      return result;
    });
  }

  // A history page's messages join this tab's rows (own: sequenced, others': delivered, unless
  // the row already says more); each added or filled row is told as a 'row' event.
  _addHistory(conv, msgs) {
    if (this._role === 'closed' || !msgs?.length) return;
    const rows = this._convRows(conv);
    for (const msg of msgs) {
      const row = rows.addHistory(msg, this.user);
      if (row) this._emit('row', this._shown(row));
    }
    if (this._role === 'leader') {
      this._dirtyConvs.add(conv);
      this._schedulePersist();
    }
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

  // The conversation's rows, as the core's RowList orders them: by seq, then those without one
  // (queued, failed, provisional) in the order they appeared. Fresh objects on every call.
  rows(conv) {
    const rows = this._rows.get(conv);
    return rows ? rows.all().map((row) => this._shown(row)) : [];
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
    for (const rows of this._rows.values()) rows.delete();
    this._rows.clear();
  }
}

export async function connect(options = {}) {
  const client = new WaymarkClient(options);
  await client._init();
  return client;
}
