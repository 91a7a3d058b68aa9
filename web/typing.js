// Typing: TypingSender throttles this user's typing signals; TypingBoard remembers who else is
// typing where, from the SDK's typing events alone.

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

// Who else is typing where, exactly as the SDK's typing events say: the core turns another
// user's "on" off by itself when it is not refreshed in time (typing_expiry_ms), and when the
// connection drops, so there is no timer here.
export class TypingBoard {
  constructor(onChange) {
    this.onChange = onChange;  // (conv) => void
    this.typing = new Map();   // conv -> Set(user)
  }

  set(conv, user, on) {
    let users = this.typing.get(conv);
    if (!users) { users = new Set(); this.typing.set(conv, users); }
    if (on === users.has(user)) return;
    if (on) users.add(user);
    else users.delete(user);
    this.onChange(conv);
  }

  users(conv) { return [...(this.typing.get(conv) ?? [])].sort(); }

  clear() { this.typing.clear(); }
}
