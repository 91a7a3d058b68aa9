// A development stand-in for /sdk/waymark.js with the same API, all in memory, with a scripted
// peer "bot" who receives, reads, types and answers. Never loaded by index.html: a dev check
// serves it in place of /sdk/waymark.js (e.g. a Playwright page.route), to work on the UI alone.

const STEP_MS = { sequence: 120, deliver: 500, read: 1500, reply: 2600 };

export async function connect({ token } = {}) {
  const user = String(token ?? '').replace(/^dev:/, '') || 'anonymous';
  return new FakeClient(user);
}

class FakeClient {
  constructor(user) {
    this.user = user;
    this.listeners = new Map();
    this.convs = new Map();
    this.state = { state: 'connecting', reason: '' };
    this.timers = new Set();
    this.later(200, () => this.setState({ state: 'online', reason: '' }));
    this.onOffline = () => this.setState({ state: 'offline', reason: 'closed', nextRetryAt: Date.now() + 8000 });
    this.onOnline = () => this.connectNow();
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  emit(name, value) { for (const fn of this.listeners.get(name) ?? []) fn(value); }

  later(ms, fn) {
    const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
  }

  setState(next) {
    this.state = next;
    this.emit('connection', { ...next });
    if (next.state === 'online') this.flush();
  }

  conv(name) {
    let c = this.convs.get(name);
    if (!c) {
      // Seeded history so scrolling up has something to load.
      const log = [];
      const start = Date.now() - 3600_000;
      for (let seq = 1; seq <= 120; seq += 1) {
        const from = seq % 3 === 0 ? this.user : seq % 2 ? 'bot' : 'carol';
        log.push({ conv: name, seq, id: `seed-${seq}`, from, ts: start + seq * 20_000, cts: start + seq * 20_000 - 40,
          trace: fakeTrace(), body: { text: `${name} message ${seq}` } });
      }
      c = { log, rows: new Map(), present: new Set([this.user, 'bot']), read: 120, unread: 0, subscribed: false };
      this.convs.set(name, c);
    }
    return c;
  }

  subscribe(name) {
    const c = this.conv(name);
    c.subscribed = true;
    this.later(50, () => this.emit('presence', { conv: name, user: 'bot', on: true }));
  }

  rows(name) { return [...this.conv(name).rows.values()].map((r) => structuredClone(r)); }

  row(name, id, patch) {
    const c = this.conv(name);
    const row = c.rows.get(id);
    Object.assign(row, patch);
    row.times[row.state] ??= Date.now();
    this.emit('row', structuredClone(row));
  }

  send(name, body) {
    const c = this.conv(name);
    const id = `fake${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const row = { conv: name, id, from: this.user, body, state: 'queued', times: { queued: Date.now() },
      trace: fakeTrace(), own: true };
    c.rows.set(id, row);
    this.emit('row', structuredClone(row));
    if (typeof body?.text === 'string' && body.text.startsWith('/fail')) {
      this.later(100, () => this.row(name, id, { state: 'failed', error: { code: 'forbidden', msg: 'conv: no access' } }));
    } else if (this.state.state === 'online') {
      this.deliver(name, id);
    }
    return id;
  }

  flush() {
    for (const [name, c] of this.convs) for (const row of c.rows.values()) if (row.state === 'queued') this.deliver(name, row.id);
  }

  deliver(name, id) {
    const c = this.conv(name);
    this.later(STEP_MS.sequence, () => {
      const row = c.rows.get(id);
      const seq = c.log.length + 1;
      const msg = { conv: name, seq, id, from: this.user, ts: Date.now(), cts: row.times.queued, trace: row.trace, body: row.body };
      c.log.push(msg);
      this.row(name, id, { state: 'sequenced', seq });
      this.emit('message', msg);
      this.later(STEP_MS.deliver, () => {
        this.emit('receipt', { conv: name, user: 'bot', seq, kind: 'delivered' });
        this.row(name, id, { state: 'delivered' });
        this.emit('typing', { conv: name, user: 'bot', on: true });
      });
      this.later(STEP_MS.read, () => {
        this.emit('receipt', { conv: name, user: 'bot', seq, kind: 'read' });
        this.row(name, id, { state: 'read' });
      });
      this.later(STEP_MS.reply, () => {
        this.emit('typing', { conv: name, user: 'bot', on: false });
        this.incoming(name, 'bot', `echo: ${row.body?.text ?? ''}`);
      });
    });
  }

  incoming(name, from, text) {
    const c = this.conv(name);
    const seq = c.log.length + 1;
    const msg = { conv: name, seq, id: `in${seq}`, from, ts: Date.now(), cts: Date.now() - 30, trace: fakeTrace(), body: { text } };
    c.log.push(msg);
    c.rows.set(msg.id, { conv: name, id: msg.id, seq, from, body: msg.body, state: 'delivered',
      times: { delivered: Date.now() }, trace: msg.trace, own: false });
    this.emit('message', msg);
    this.emit('row', structuredClone(c.rows.get(msg.id)));
    c.unread += 1;
    this.emit('unread', { conv: name, count: c.unread });
  }

  markRead(name, seq) {
    const c = this.conv(name);
    if (seq <= c.read) return;
    c.read = seq;
    for (const row of c.rows.values()) if (!row.own && row.seq <= seq && row.state !== 'read') this.row(name, row.id, { state: 'read' });
    c.unread = c.log.filter((m) => m.seq > seq && m.from !== this.user).length;
    this.emit('unread', { conv: name, count: c.unread });
  }

  setTyping(name, on) { console.debug('fake sdk: typing', name, on); }

  async history(name, { before, limit = 50 } = {}) {
    const c = this.conv(name);
    await new Promise((resolve) => this.later(150, resolve));
    const top = before != null ? before - 1 : c.log.length;
    const from = Math.max(1, top - limit + 1);
    return { msgs: c.log.filter((m) => m.seq >= from && m.seq <= top).map((m) => ({ ...m })), more: from > 1 };
  }

  retry(name, id) {
    const row = this.conv(name).rows.get(id);
    if (!row || row.state !== 'failed') return false;
    this.row(name, id, { state: 'queued', error: undefined, body: { text: 'retried' } });
    this.deliver(name, id);
    return true;
  }

  connectNow() {
    if (!navigator.onLine) return;
    this.setState({ state: 'connecting', reason: '' });
    this.later(300, () => this.setState({ state: 'online', reason: '' }));
  }

  close() {
    for (const t of this.timers) clearTimeout(t);
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('online', this.onOnline);
    this.listeners.clear();
  }

  connectionState() { return this.state.state; }
  present(name) { return [...this.conv(name).present]; }
  unread(name) { return this.conv(name).unread; }
}

function fakeTrace() {
  const hex = (n) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `00-${hex(16)}-${hex(8)}-01`;
}
