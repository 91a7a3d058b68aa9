// The incident workflow's rules: the structured message bodies it posts, what a conversation's
// rows say about its incident (severity, status, the pinned status updates), who acknowledged
// it (read receipts past the declaration) and the timeline exported at resolution. Pure
// functions over rows: no DOM, no SDK. incident-panel.js draws it.
//
// Every body carries `text`, a sentence for any client that does not know the kind.

import { shownTime } from './timeline.js';

export const SEVERITIES = ['SEV1', 'SEV2', 'SEV3'];
export const STATUSES = ['investigating', 'identified', 'monitoring', 'resolved'];
export const INCIDENT_PREFIX = 'inc-';

const pad = (n) => String(n).padStart(2, '0');

// "inc-20261203-checkout-errors": the day it was declared (UTC) and the title's words, within
// the conversation name rules (letters, digits, - and _; the app still asks convProblem).
export function incidentConv(title, now) {
  const d = new Date(now);
  const day = `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
  const slug = title.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '');
  return `${INCIDENT_PREFIX}${day}-${slug || 'incident'}`;
}

// null when the declaration is fine, else what is wrong with it.
export function declarationProblem({ title, severity }) {
  if (typeof title !== 'string' || !title.trim()) return 'Give the incident a title.';
  if (title.trim().length > 120) return 'Keep the title under 120 characters.';
  if (!SEVERITIES.includes(severity)) return `Severity is one of ${SEVERITIES.join(', ')}.`;
  return null;
}

export function declaredBody({ title, severity, conv }) {
  const clean = title.trim();
  return { kind: 'incident-declared', title: clean, severity, conv, status: 'investigating',
    text: `${severity} incident declared: ${clean}` };
}

export function statusBody(status, note = '') {
  const clean = note.trim();
  return { kind: 'incident-status', status, note: clean,
    text: `Status: ${status}${clean ? ` (${clean})` : ''}` };
}

const isKind = (body, kind) => Boolean(body) && typeof body === 'object' && body.kind === kind;

// The incident a conversation's rows describe, or null: the first declaration, then every
// status update in order (a status not in STATUSES is ignored). Rows are the SDK's, in order.
export function incidentState(rows) {
  let state = null;
  for (const row of rows) {
    if (!state) {
      if (isKind(row.body, 'incident-declared') && SEVERITIES.includes(row.body.severity)) {
        state = {
          title: String(row.body.title ?? ''), severity: row.body.severity, status: 'investigating',
          declaredBy: row.from, declaredAt: shownTime(row) ?? null, declarationSeq: row.seq ?? null,
          declarationId: row.id, updates: [],
        };
      }
      continue;
    }
    if (isKind(row.body, 'incident-status') && STATUSES.includes(row.body.status)) {
      state.status = row.body.status;
      state.updates.push({ id: row.id, status: row.body.status, note: String(row.body.note ?? ''),
        from: row.from, at: shownTime(row) ?? null });
    }
  }
  if (state) state.resolved = state.status === 'resolved';
  return state;
}

// The responders who acknowledged: every user other than the declarer whose read cursor
// (readCursors: Map user -> highest seq read) has passed the declaration. Sorted.
export function acknowledgedBy(state, readCursors) {
  if (!state || state.declarationSeq == null) return [];
  const users = [];
  for (const [user, seq] of readCursors) if (user !== state.declaredBy && seq >= state.declarationSeq) users.push(user);
  return users.sort();
}

// The pinned updates, newest first.
export function pinnedUpdates(state) {
  return state ? [...state.updates].reverse() : [];
}

// The exported timeline: a header, then one line per message, oldest first, each with its
// time (ISO 8601, UTC), sender and text. Rows not stored yet (no seq: queued, failed) are left out.
export function timelineText(conv, state, rows) {
  const lines = [
    `Incident: ${state.title}`,
    `Conversation: #${conv}`,
    `Severity: ${state.severity}`,
    `Status: ${state.status}`,
    `Declared by ${state.declaredBy} at ${iso(state.declaredAt)}`,
    '',
    'Timeline (UTC):',
  ];
  for (const row of rows) {
    if (row.seq == null) continue;
    lines.push(`${iso(shownTime(row))}  ${row.from}  ${lineText(row.body)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function exportFileName(conv) {
  return `${conv}-timeline.txt`;
}

function lineText(body) {
  if (isKind(body, 'incident-status') && STATUSES.includes(body.status)) return `[status: ${body.status}]${body.note ? ` ${body.note}` : ''}`;
  if (isKind(body, 'incident-declared')) return `[declared ${body.severity}] ${body.title}`;
  const text = body && typeof body === 'object' && typeof body.text === 'string' ? body.text : JSON.stringify(body);
  return text.replace(/\s*\n\s*/g, ' / ');
}

function iso(ms) {
  return ms == null ? 'unknown' : new Date(ms).toISOString();
}
