// The shift handoff's rules: the structured note the outgoing person posts to a team's handoff
// channel (open items, risks, the incoming owner), the acknowledgement the owner posts back,
// and what the outgoing person sees: who read the note when (read receipts) and who
// acknowledged it when. Pure functions over rows and receipts: no DOM, no SDK.
//
// Every body carries `text`, a sentence for any client that does not know the kind.

import { shownTime } from './timeline.js';

// "handoff", or a team's: "handoff-sre".
export function isHandoffConv(conv) {
  return conv === 'handoff' || (typeof conv === 'string' && conv.startsWith('handoff-'));
}

// The non-empty lines of a text field, trimmed: one open item or risk per line.
export function listLines(text) {
  return String(text ?? '').split('\n').map((item) => item.trim()).filter(Boolean);
}

// null when the note can be posted, else why not.
export function handoffProblem({ openItems, risks, owner }, me) {
  if (!owner?.trim()) return 'Name the incoming owner.';
  if (owner.trim() === me) return 'The incoming owner is someone else: you are handing over.';
  if (openItems.length === 0 && risks.length === 0) return 'List at least one open item or risk.';
  return null;
}

export function handoffBody({ openItems, risks, owner }) {
  const who = owner.trim();
  const text = [`Shift handoff to ${who}`,
    ...(openItems.length ? ['Open items:', ...openItems.map((item) => `- ${item}`)] : []),
    ...(risks.length ? ['Risks:', ...risks.map((risk) => `- ${risk}`)] : [])].join('\n');
  return { kind: 'handoff', open_items: openItems, risks, owner: who, text };
}

export function ackBody(handoffId) {
  return { kind: 'handoff-ack', ref: handoffId, text: 'Handoff acknowledged' };
}

const isKind = (body, kind) => Boolean(body) && typeof body === 'object' && body.kind === kind;
const strings = (value) => (Array.isArray(value) ? value.filter((item) => typeof item === 'string') : []);

// The newest handoff note in the rows, with its acknowledgements, or null.
// readLog: [{user, seq, at}] in the order the read receipts were heard (at: when, ms).
// Returns {id, seq, from, at, openItems, risks, owner, reads: [{user, at}], acks: [{user, at}]}:
// reads are the first receipt of each other user at or past the note's seq; acks the first
// acknowledgement of each user who is not its author.
export function latestHandoff(rows, readLog = []) {
  let note = null;
  for (const row of rows) {
    if (isKind(row.body, 'handoff') && typeof row.body.owner === 'string') note = row;
  }
  if (!note) return null;
  const acks = [];
  for (const row of rows) {
    if (!isKind(row.body, 'handoff-ack') || row.body.ref !== note.id || row.from === note.from) continue;
    if (row.seq == null || acks.some((ack) => ack.user === row.from)) continue;
    acks.push({ user: row.from, at: shownTime(row) ?? null });
  }
  const reads = [];
  if (note.seq != null) {
    for (const { user, seq, at } of readLog) {
      if (user === note.from || seq < note.seq || reads.some((read) => read.user === user)) continue;
      reads.push({ user, at });
    }
  }
  return {
    id: note.id, seq: note.seq ?? null, from: note.from, at: shownTime(note) ?? null,
    openItems: strings(note.body.open_items), risks: strings(note.body.risks), owner: note.body.owner,
    reads, acks,
  };
}

// Whether `me` still has to acknowledge the note: it is theirs and they have not.
export function awaitsAckFrom(handoff, me) {
  return Boolean(handoff) && handoff.owner === me && handoff.from !== me && !handoff.acks.some((ack) => ack.user === me);
}
