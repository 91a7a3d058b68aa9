// ConnectionBanner: the header's status chip and the banner under it, from the SDK's
// connection events and the browser's own online/offline signal, with a reconnect countdown.

const REASONS = {
  closed: 'The connection closed.',
  dead: 'The server stopped answering.',
  'bye:shutdown': 'The server is restarting.',
  'bye:lagging': 'The connection fell behind.',
  unauthorized: 'The server refused this sign-in.',
  error: 'The connection failed.',
};

export class ConnectionBanner {
  // elements: {banner, title, countdown, detail, retry, chip, chipText}
  constructor(elements, { onRetryNow }) {
    this.el = elements;
    this.sdk = { state: 'connecting' };
    this.browserOnline = navigator.onLine;
    this.wasOnline = false;   // a "back online" note only makes sense after a loss
    this.tick = null;
    this.backTimer = null;
    this.announced = '';
    elements.retry.addEventListener('click', () => onRetryNow());
  }

  setConnection(event) {
    const before = this.shownState();
    this.sdk = { ...event };
    this.render(before);
  }

  setBrowserOnline(online) {
    const before = this.shownState();
    this.browserOnline = online;
    this.render(before);
  }

  // The SDK may keep a socket open through an emulated or flaky "offline"; the browser's signal
  // is what the user experiences, so it wins.
  shownState() {
    if (!this.browserOnline) return 'offline';
    return this.sdk.state ?? 'connecting';
  }

  render(before) {
    const state = this.shownState();
    const { banner, title, countdown, detail, retry, chip, chipText } = this.el;
    chip.dataset.state = state;
    chipText.textContent = state === 'online' ? 'Online' : state === 'offline' ? 'Offline' : 'Connecting';
    clearInterval(this.tick);
    this.tick = null;

    if (state === 'online') {
      banner.dataset.state = 'online';
      retry.hidden = true;
      countdown.textContent = '';
      if (before !== 'online' && this.wasOnline) {
        this.announce('Back online.');
        detail.textContent = 'Queued messages are being sent.';
        banner.hidden = false;
        clearTimeout(this.backTimer);
        this.backTimer = setTimeout(() => { if (this.shownState() === 'online') banner.hidden = true; }, 2500);
      } else if (before !== 'online') {
        banner.hidden = true;
      }
      this.wasOnline = true;
      return;
    }

    clearTimeout(this.backTimer);
    banner.hidden = false;
    banner.dataset.state = state;
    if (state === 'connecting') {
      this.announce(this.wasOnline ? 'Reconnecting…' : 'Connecting…');
      detail.textContent = '';
      countdown.textContent = '';
      retry.hidden = true;
      return;
    }

    this.announce(this.browserOnline ? 'Offline.' : 'Offline: no network.');
    detail.textContent = this.browserOnline
      ? (REASONS[this.sdk.reason] ?? (this.sdk.reason ? `Reason: ${this.sdk.reason}.` : ''))
      : 'Messages you send wait here and go out when the network is back.';
    retry.hidden = false;
    this.updateCountdown();
    if (this.sdk.nextRetryAt != null) this.tick = setInterval(() => this.updateCountdown(), 1000);
  }

  updateCountdown() {
    const at = this.sdk.nextRetryAt;
    if (at == null) { this.el.countdown.textContent = ''; return; }
    const seconds = Math.ceil((at - Date.now()) / 1000);
    this.el.countdown.textContent = seconds > 0 ? `Reconnecting in ${seconds} s` : 'Reconnecting…';
  }

  // The polite live region changes only with the state, not with every countdown second.
  announce(text) {
    if (this.announced === text) return;
    this.announced = text;
    this.el.title.textContent = text;
  }

  dispose() {
    clearInterval(this.tick);
    clearTimeout(this.backTimer);
  }
}
