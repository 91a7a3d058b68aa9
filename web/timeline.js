// Timeline: one conversation's messages as the app shows them, merged from the SDK's rows,
// live msg frames and history pages, keyed by message id. Pure data: no DOM, no SDK calls.

const RANK = { queued: 0, stored: 1, sequenced: 2, delivered: 3, read: 4 };
const STEPS = ['queued', 'stored', 'sequenced', 'delivered', 'read'];

export class Timeline {
  constructor(conv, me) {
    this.conv = conv;
    this.me = me;
    this.byId = new Map();      // id -> item
    this.othersDelivered = 0;   // highest delivered receipt from another user (covers own msgs)
    this.othersRead = 0;
    this.historyState = 'idle'; // idle | loading | error
    this.more = true;           // older history may exist below the lowest known seq
    this.loadedOnce = false;    // the newest page was asked for since the timeline was opened
    this.version = 0;           // bumps on every change, so a view can skip a no-op render
    this.sorted = null;         // cached order, cleared when a seq or a new item appears
  }

  item(id) {
    let it = this.byId.get(id);
    if (!it) {
      it = { id, conv: this.conv, seq: undefined, from: undefined, body: undefined, ts: undefined,
             cts: undefined, trace: undefined, own: false, rowState: undefined, error: null,
             times: {}, arrival: this.byId.size, rev: 0 };
      this.byId.set(id, it);
      this.sorted = null;
    }
    return it;
  }

  get(id) { return this.byId.get(id); }

  // A row from the SDK is authoritative for its state: it may go failed -> queued on retry.
  applyRow(row) {
    const it = this.item(row.id);
    if (row.seq != null && it.seq !== row.seq) { it.seq = row.seq; this.sorted = null; }
    if (row.from != null) it.from = row.from;
    if (row.body !== undefined) it.body = row.body;
    if (row.trace) it.trace = row.trace;
    if (row.ts != null) it.ts = row.ts;
    it.own = Boolean(row.own) || it.from === this.me;
    if (it.own && it.from == null) it.from = this.me;
    it.rowState = row.state;
    it.error = row.error ?? null;
    for (const [step, at] of Object.entries(row.times ?? {})) if (at != null) it.times[step] = at;
    this.touch(it);
    return it;
  }

  // A msg frame, live or from a history page: fills in what a row does not carry (ts, cts).
  applyMsg(msg) {
    const it = this.item(msg.id);
    if (msg.seq != null && it.seq !== msg.seq) { it.seq = msg.seq; this.sorted = null; }
    it.from = msg.from;
    if (msg.body !== undefined) it.body = msg.body;
    if (msg.ts != null) it.ts = msg.ts;
    if (msg.cts != null) it.cts = msg.cts;
    if (msg.trace) it.trace = msg.trace;
    it.own = it.own || msg.from === this.me;
    this.touch(it);
    return it;
  }

  // Another user's receipt covers every own message at or below its seq. Returns the items
  // whose shown state changed.
  applyReceipt({ user, seq, kind }) {
    if (user === this.me) return [];
    const before = new Map();
    for (const it of this.byId.values()) if (it.own && it.seq != null) before.set(it, this.state(it));
    if (kind === 'read') this.othersRead = Math.max(this.othersRead, seq);
    this.othersDelivered = Math.max(this.othersDelivered, seq);
    const changed = [];
    for (const [it, was] of before) if (this.state(it) !== was) { this.touch(it); changed.push(it); }
    return changed;
  }

  // The state shown: the row's, raised by receipts seen here (history items have no row).
  state(it) {
    let state = it.rowState ?? (it.own ? 'sequenced' : 'delivered');
    if (state === 'failed' || state === 'queued' || !it.own || it.seq == null) return state;
    if (it.seq <= this.othersRead) return 'read';
    if (it.seq <= this.othersDelivered && RANK[state] < RANK.delivered) return 'delivered';
    return state;
  }

  // Times of each step; a history item falls back to its client send time and edge time.
  times(it) {
    const times = { ...it.times };
    if (times.queued == null && it.own && it.cts != null) times.queued = it.cts;
    if (times.sequenced == null && it.ts != null) times.sequenced = it.ts;
    return times;
  }

  // The time a message line shows: when the edge took it, else the earliest time known here.
  shownTime(it) {
    if (it.ts != null) return it.ts;
    for (const step of STEPS) if (it.times[step] != null) return it.times[step];
    return it.cts ?? it.times.failed;
  }

  touch(it) { it.rev += 1; this.version += 1; }

  // Sequenced messages by seq, then the ones still waiting for a seq in the order they appeared.
  items() {
    if (!this.sorted) {
      this.sorted = [...this.byId.values()].sort((a, b) => {
        if (a.seq != null && b.seq != null) return a.seq - b.seq;
        if (a.seq != null) return -1;
        if (b.seq != null) return 1;
        return (a.times.queued ?? 0) - (b.times.queued ?? 0) || a.arrival - b.arrival;
      });
    }
    return this.sorted;
  }

  lowestSeq() {
    let low;
    for (const it of this.byId.values()) if (it.seq != null && (low === undefined || it.seq < low)) low = it.seq;
    return low;
  }

  highestSeq() {
    let high = 0;
    for (const it of this.byId.values()) if (it.seq != null && it.seq > high) high = it.seq;
    return high;
  }
}

export const LIFECYCLE_STEPS = STEPS;
