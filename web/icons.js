// Inline SVG icons: emoji fonts are not everywhere, and SVG follows currentColor for contrast.
// Decorative only (aria-hidden); the text next to each icon says the same thing.

const svg = (body, extra = '') =>
  `<svg class="icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false" ${extra}>${body}</svg>`;

const stroke = 'fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"';

export const ICONS = {
  queued: svg(`<circle cx="8" cy="8" r="6" ${stroke}/><path d="M8 4.8V8l2.2 1.6" ${stroke}/>`),
  stored: svg(`<path d="M3.5 8.5l3 3 6-7" ${stroke}/>`),
  sequenced: svg(`<path d="M3.5 8.5l3 3 6-7" ${stroke}/>`),
  delivered: svg(`<path d="M1.5 8.5l3 3 6-7M7.5 11.5l6-7" ${stroke}/>`),
  read: svg(`<path d="M1.5 8.5l3 3 6-7M7.5 11.5l6-7" ${stroke}/>`),
  failed: svg(`<circle cx="8" cy="8" r="6.2" ${stroke}/><path d="M8 4.6v4.2M8 11.2v.2" ${stroke}/>`),
  menu: svg(`<path d="M2.5 4h11M2.5 8h11M2.5 12h11" ${stroke}/>`),
  close: svg(`<path d="M4 4l8 8M12 4l-8 8" ${stroke}/>`),
  bell: svg(`<path d="M4 11.5V7a4 4 0 0 1 8 0v4.5l1.2 1.2H2.8zM6.6 14a1.5 1.5 0 0 0 2.8 0" ${stroke}/>`),
  send: svg(`<path d="M2 8l12-5.5-4.5 12-2-4.5z" ${stroke}/>`),
};

// What each state means to the person who sent the message.
export const STATE_LABELS = {
  queued: 'Queued: waiting to send',
  stored: 'Stored by the server',
  sequenced: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
  failed: 'Failed to send',
};
