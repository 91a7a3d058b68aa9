// Typing: TypingSender throttles this user's typing signals; TypingBoard remembers who else is
// typing where, expiring each entry on its own in case the "off" never arrives.

// Sends on at most once per refreshMs while keys keep coming (receivers show "typing" for 6 s
// unless refreshed, docs/protocol.md), and off after idleMs without input or when told to stop.
export class TypingSender {
  constructor(setTyping, { refreshMs = 3000, idleMs = 4000, now = () => Date.now() } = {}) {
    this.setTyping = setTyping;
    this.refreshMs = refreshMs;
    this.idleMs = idleMs;
    this.now = now;
    this.conv = null;     // the conversation "on" was last sent for, null when off
    this.sentAt = 0;
    this.idleTimer = null;
  }

  // Call on every edit of the composer of `conv`; hasText false means the box was emptied.
  input(conv, hasText) {
    if (!hasText) { this.stop(); return; }
    if (this.conv !== null && this.conv !== conv) this.stop();
    const now = this.now();
    if (this.conv === null || now - this.sentAt >= this.refreshMs) {
      this.conv = conv;
      this.sentAt = now;
      this.setTyping(conv, true);
    }
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.stop(), this.idleMs);
  }

  // The message was sent, the conversation changed, or the user left: say off once.
  stop() {
    clearTimeout(this.idleTimer);
    this.idleTimer = null;
    if (this.conv === null) return;
    const conv = this.conv;
    this.conv = null;
    this.setTyping(conv, false);
  }
}

export class TypingBoard {
  constructor(onChange, { ttlMs = 7000 } = {}) {
    this.onChange = onChange;  // (conv) => void
    this.ttlMs = ttlMs;
    this.timers = new Map();   // conv -> Map(user -> timeout)
  }

  set(conv, user, on) {
    let users = this.timers.get(conv);
    if (!users) { users = new Map(); this.timers.set(conv, users); }
    clearTimeout(users.get(user));
    if (on) users.set(user, setTimeout(() => this.set(conv, user, false), this.ttlMs));
    else if (!users.delete(user)) return;
    this.onChange(conv);
  }

  users(conv) { return [...(this.timers.get(conv)?.keys() ?? [])].sort(); }

  clear() {
    for (const users of this.timers.values()) for (const t of users.values()) clearTimeout(t);
    this.timers.clear();
  }
}
