// Display formatting shared by the web app's views. Pure functions: no DOM, no SDK. (The name
// rules are the core's: the SDK's convProblem / userProblem.)

const pad = (n, width = 2) => String(n).padStart(width, '0');

// "14:03" today, "28 Nov 14:03" on other days: short enough for a message line.
export function formatClock(ms, now = Date.now()) {
  const d = new Date(ms);
  const today = new Date(now);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === today.toDateString()) return hm;
  return `${d.getDate()} ${d.toLocaleString('en', { month: 'short' })} ${hm}`;
}

// "14:03:12.345": the lifecycle panel compares steps a few milliseconds apart.
export function formatPrecise(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// "+12 ms", "+1.4 s": the gap between two lifecycle steps.
export function formatDelta(ms) {
  if (ms < 1000) return `+${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `+${(ms / 1000).toFixed(1)} s`;
  return `+${Math.round(ms / 60_000)} min`;
}

// The 32-hex trace id inside a W3C traceparent "00-<trace id>-<parent id>-<flags>".
export function traceIdOf(traceparent) {
  const parts = typeof traceparent === 'string' ? traceparent.split('-') : [];
  return parts.length === 4 ? parts[1] : null;
}

// What a message body says, for bodies other apps may have sent that are not {text}.
export function bodyText(body) {
  if (body && typeof body === 'object' && typeof body.text === 'string') return body.text;
  if (typeof body === 'string') return body;
  if (body === undefined) return '';
  return JSON.stringify(body);
}

// "bob is typing…", "bob and carol are typing…", "bob, carol and 2 others are typing…".
export function typingSentence(users) {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  const others = users.length - 2;
  return `${users[0]}, ${users[1]} and ${others} other${others === 1 ? '' : 's'} are typing…`;
}
