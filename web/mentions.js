// Mentions: whether a message names the signed-in user (@name), and the browser notification
// for one that arrives while the tab is hidden. Permission is asked only from the "notify me of
// mentions" button's click (a user gesture), never on load.

// The characters of a user name (the core's user rule: [A-Za-z0-9._@-]).
const NAME_CHAR = /[A-Za-z0-9._@-]/;

// Whether `text` mentions `user`: "@user" not inside a longer name, so "@ann" does not mention
// "anne" nor "ann.b"; a sentence's full stop after it ("thanks @ann.") still counts. Names
// compare without regard to case: "@Ann" is meant for ann.
export function mentions(text, user) {
  if (typeof text !== 'string' || !user) return false;
  const wanted = user.toLowerCase();
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    if (at > 0 && NAME_CHAR.test(text[at - 1])) continue;  // part of a word or an e-mail address
    let end = at + 1;
    while (end < text.length && NAME_CHAR.test(text[end])) end += 1;
    const name = text.slice(at + 1, end).replace(/\.+$/, '');
    if (name.toLowerCase() === wanted) return true;
  }
  return false;
}

const prefKey = (user) => `waymark.notify.${user}`;

// The button's states and what it says; `Notification.permission` decides, with the user's own
// choice (kept per user in localStorage) on top of a granted permission.
export class MentionNotifier {
  // button: the toggle (aria-pressed); onOpen(conv): show that conversation (a click on the
  // notification).
  constructor(button, me, { onOpen }) {
    this.button = button;
    this.me = me;
    this.onOpen = onOpen;
    this.onClick = () => this.toggle();
    button.addEventListener('click', this.onClick);
    this.render();
  }

  get supported() { return typeof window.Notification === 'function'; }

  get permission() { return this.supported ? window.Notification.permission : 'denied'; }

  get enabled() {
    return this.permission === 'granted' && localStorage.getItem(prefKey(this.me)) === 'on';
  }

  async toggle() {
    if (!this.supported) return;
    if (this.enabled) {
      localStorage.setItem(prefKey(this.me), 'off');
    } else {
      let permission = this.permission;
      if (permission === 'default') permission = await window.Notification.requestPermission();
      if (permission === 'granted') localStorage.setItem(prefKey(this.me), 'on');
    }
    this.render();
  }

  render() {
    const { button } = this;
    const blocked = !this.supported || this.permission === 'denied';
    button.hidden = !this.supported;
    button.setAttribute('aria-pressed', String(this.enabled));
    button.dataset.state = blocked ? 'blocked' : this.enabled ? 'on' : 'off';
    const label = blocked ? 'Mention notifications are blocked in this browser'
      : this.enabled ? 'Mention notifications on' : 'Notify me of mentions';
    button.title = label;
    button.querySelector('.visually-hidden').textContent = label;
  }

  // A message the SDK delivered (each seq once): notify when it mentions this user, is someone
  // else's, and the tab is hidden. One notification per conversation (its tag), replaced by
  // the next mention there, so tabs of one profile that all hear the message show it once.
  message(msg) {
    if (!this.enabled || document.visibilityState !== 'hidden') return;
    if (!msg || msg.from === this.me) return;
    const text = msg.body?.text;
    if (!mentions(text, this.me)) return;
    const notification = new window.Notification(`${msg.from} in #${msg.conv}`, {
      body: text.length > 200 ? `${text.slice(0, 199)}…` : text,
      tag: `waymark-mention-${msg.conv}`,
      icon: '/icon-192.png',
    });
    notification.onclick = () => {
      window.focus();
      this.onOpen(msg.conv);
      notification.close();
    };
  }

  dispose() {
    this.button.removeEventListener('click', this.onClick);
  }
}
