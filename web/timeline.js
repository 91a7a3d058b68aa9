// Timeline: what the app keeps of one conversation besides its rows. The rows themselves, in
// order and with their states, are the SDK's (client.rows(conv), which history pages join);
// this holds the history paging state and a version for the view, plus display helpers over
// one row. Pure data: no DOM, no SDK import.

// The steps the lifecycle panel shows, in the order it lists them.
export const LIFECYCLE_STEPS = ['queued', 'stored', 'sequenced', 'delivered', 'read'];

export class Timeline {
  // rowsOf: () => the conversation's rows as the SDK orders them (client.rows(conv)).
  constructor(conv, rowsOf) {
    this.conv = conv;
    this.rowsOf = rowsOf;
    this.historyState = 'idle'; // idle | loading | error
    this.historyError = '';
    this.more = true;           // older history may exist below the lowest known seq
    this.loadedOnce = false;    // the newest page was asked for since the timeline was opened
    this.version = 0;           // bumps on every change, so a view can skip a no-op render
  }

  rows() { return this.rowsOf() ?? []; }

  get(id) { return this.rows().find((row) => row.id === id); }

  touch() { this.version += 1; }

  lowestSeq() {
    let low;
    for (const row of this.rows()) if (row.seq != null && (low === undefined || row.seq < low)) low = row.seq;
    return low;
  }

  highestSeq() {
    let high = 0;
    for (const row of this.rows()) if (row.seq != null && row.seq > high) high = row.seq;
    return high;
  }
}

// The time of each step this tab knows; a row that came with a history page, which this tab
// never saw queued or sequenced, falls back to the sender's send time and the edge's time.
export function stepTimes(row) {
  const times = { ...row.times };
  if (times.queued == null && row.own && row.cts != null) times.queued = row.cts;
  if (times.sequenced == null && row.ts != null) times.sequenced = row.ts;
  return times;
}

// The time a message line shows: when the edge took it, else the earliest time known here.
export function shownTime(row) {
  if (row.ts != null) return row.ts;
  const known = Object.values(row.times ?? {}).filter((at) => at != null);
  if (known.length) return Math.min(...known);
  return row.cts;
}
