// Types of waymark.js, the Waymark browser SDK (hand-written; see docs/sdk.md for examples).
// Every value crosses as plain JSON-compatible data; times are milliseconds since the epoch.

/** Any JSON value: what a message body may be. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ConnectOptions {
  /**
   * WebSocket URL of the edge; default ws(s)://<location.host>/ws. A list of URLs is failover:
   * the first connection goes to the first URL, and each new connection after a lost or failed
   * one goes to the next URL of the list (round robin, wrapping around). When to reconnect
   * stays the core's (backoff with jitter, the outbox resent with the same ids); the list only
   * picks where. One URL behaves exactly as a string. Tabs share a session when they list the
   * same URLs, in any order.
   */
  url?: string | readonly string[];
  /** The token for hello (`dev:<user>` against an edge started with --dev). */
  token?: string;
  /** Sent in hello as `device`; informational, at most 128 chars. */
  device?: string;
  /**
   * Asked for a new token when the edge refuses the one in use (`unauthorized`, or the token
   * expired mid-session), and at start if `token` is missing. A new token reconnects at once;
   * the outbox and cursors carry over. If it throws, returns nothing or the refused token, or
   * the edge refuses the new one too, it is asked again after a growing, jittered delay
   * (about 1 s, 2 s, 4 s, … up to 60 s; at once when the browser comes online or the tab
   * becomes visible). Without getToken a refused token leaves the client offline.
   */
  getToken?: () => string | Promise<string>;
  /**
   * Opt in to provisional messages (hello.provisional; default false). Behind a relaying edge
   * cut off from its upstream, others' messages the relay stored but the root has not
   * sequenced yet appear at once as rows with `provisional: true` (state 'stored', no seq),
   * after the sequenced rows; each moves into its seq's place when the root's order arrives.
   * Off, only sequenced messages are shown, exactly as against an edge without relays. Against
   * a root it changes nothing. The tab that leads (owns the session) decides for all tabs of a
   * profile: give every tab of an app the same options.
   */
  provisional?: boolean;
}

/**
 * queued: in the outbox, not yet acknowledged (kept across reloads, resent after reconnects).
 * stored: acknowledged by a relaying edge without a seq yet (own rows), or another user's
 *   provisional message (ConnectOptions.provisional): stored there, not yet ordered by the root.
 * sequenced: durably stored with its seq (the ack, or its msg, arrived).
 * delivered: another user's delivered receipt covers it; others' messages arrive as delivered.
 * read: another user's read receipt covers it; others' messages when this user's read cursor passes them.
 * failed: refused for good (nack retry:false, too large, bad conv); `retry()` puts it back.
 */
export type RowState = 'queued' | 'stored' | 'sequenced' | 'delivered' | 'read' | 'failed';

export interface WaymarkError {
  code: 'bad_frame' | 'unknown_type' | 'invalid' | 'too_large' | 'unauthorized' | 'forbidden' | 'rate_limited' | 'unavailable';
  msg: string;
}

export interface Row {
  conv: string;
  /** The message id (the idempotency key); for own messages, what send() returned. */
  id: string;
  /** The message's position in its conversation; absent while queued/stored. */
  seq?: number;
  /** The sender's user name. */
  from: string;
  body: Json;
  state: RowState;
  /** When this tab saw the row enter each state (local clock). */
  times: { queued?: number; stored?: number; sequenced?: number; delivered?: number; read?: number; failed?: number };
  /** The W3C traceparent the message travels with. */
  trace: string | null;
  /** The edge's receive time, once the message itself arrived. */
  ts?: number;
  /** The sender's send time, once the message itself arrived. */
  cts?: number;
  /** Sent by this user (from any of its tabs or devices). */
  own: boolean;
  /** Why it failed, or the last retryable refusal while still queued. */
  error?: WaymarkError;
  /**
   * Stored by a relaying edge, not yet sequenced by the root (state 'stored', no seq): its
   * place in rows() is provisional, after the sequenced rows, until its seq arrives. Absent
   * otherwise.
   */
  provisional?: true;
}

export interface Msg {
  /** 'msg': a message event carries the msg frame as the edge sent it. */
  t?: 'msg';
  conv: string;
  seq?: number;
  id: string;
  from: string;
  ts: number;
  cts?: number;
  trace?: string;
  body: Json;
}

export type ConnectionState = 'connecting' | 'online' | 'offline';

export interface ConnectionEvent {
  state: ConnectionState;
  /**
   * Offline and retrying: when the next attempt starts (after a refused token: when getToken
   * is asked again; absent while the first call runs, and without getToken).
   */
  nextRetryAt?: number;
  /**
   * Why offline: "closed", "dead", "bye:shutdown", "closed by app", ..., or one starting with
   * "unauthorized" when the edge refused the token: "unauthorized: token expired",
   * "unauthorized: token: <check that failed>", "unauthorized: getToken failed: <error>".
   * For display: to act on a refused token, read `needsToken`.
   */
  reason: string;
  /** connecting and online: the edge URL of this connection (one of ConnectOptions.url). */
  url?: string;
  /**
   * Offline because the edge refused the token (err unauthorized, bye token_expired, close
   * 4001): no reconnect with it happens by itself. With getToken a new one is being asked
   * for (`nextRetryAt`: when next); without it, sign in again.
   */
  needsToken?: true;
}

export interface ClientEvents {
  /** A row was added or changed (a copy of it). */
  row: Row;
  /** A message reached the app: per conversation in seq order, each seq once. */
  message: Msg & { own: boolean };
  connection: ConnectionEvent;
  presence: { conv: string; user: string; on: boolean };
  typing: { conv: string; user: string; on: boolean };
  receipt: { conv: string; user: string; seq: number; kind: 'delivered' | 'read' };
  unread: { conv: string; count: number };
  /** The conversation's contiguous cursor advanced (what resuming starts after). */
  cursor: { conv: string; seq: number };
  /** An err from the edge that no request owns. */
  error: { code: WaymarkError['code']; msg: string; rid?: string };
}

export interface HistoryPage {
  /** Ascending by seq. */
  msgs: Msg[];
  /** More exist beyond the page (below `before`, or above `after`). */
  more: boolean;
}

export interface WaymarkClient {
  /** The edge's WebSocket URL of the current (or last) connection; before any, the first URL. */
  readonly url: string;
  /** Every URL given to connect(), in the order they are tried (one element for a string). */
  readonly urls: readonly string[];
  /** The user the edge welcomed (remembered across reloads; "" before the first welcome). */
  readonly user: string;
  /** Whether this tab owns the session and socket ('leader') or forwards to the tab that does. */
  readonly role: 'leader' | 'follower' | 'closed';

  /** Delivers conv from the stored cursor (resume), else after `after`, else live from the head. */
  subscribe(conv: string, options?: { after?: number }): void;
  unsubscribe(conv: string): void;
  /** Queues a message and returns its id at once; the row starts `queued`. */
  send(conv: string, body: Json): string;
  /** Marks everything up to seq as read (sent now, or on the next connection). */
  markRead(conv: string, seq: number): void;
  setTyping(conv: string, on: boolean): void;
  /**
   * A page of stored messages below `before` (or above `after`; neither: the newest). Rejects
   * offline. The page's messages also join this tab's rows(conv) (an own one as sequenced,
   * someone else's as delivered, unless its row already says more), each told as a 'row' event.
   */
  history(conv: string, options?: { before?: number; after?: number; limit?: number }): Promise<HistoryPage>;
  /** Listens; returns the function that stops listening. */
  on<K extends keyof ClientEvents>(type: K, callback: (event: ClientEvents[K]) => void): () => void;
  /** The conversation's rows, one per id (the core's RowList): by seq, then those without one in send order. */
  rows(conv: string): Row[];
  /** Puts a failed row back in the outbox. */
  retry(conv: string, id: string): void;
  /** Skips the reconnect wait (after a refused token: asks getToken now, if there is one). */
  connectNow(): void;
  /** Closes the socket and stops; another tab of the same user takes over. */
  close(): Promise<void>;
  connectionState(): ConnectionState;
  /** Users with a connection subscribed to conv (as of the last subd/presence). */
  present(conv: string): string[];
  /** Others' messages above this user's read cursor. */
  unread(conv: string): number;
}

export function connect(options?: ConnectOptions): Promise<WaymarkClient>;

/** What is wrong with a conversation name, as a sentence for a person; null when valid (the core's rule). */
export function convProblem(name: string): string | null;
/** What is wrong with a user name (dev:<name>, a JWT's sub), as a sentence; null when valid (the core's rule). */
export function userProblem(name: string): string | null;
/** Whether a row in `state` has gone through `step` (read has passed sequenced; failed only queued). */
export function rowStatePassed(state: RowState, step: RowState): boolean;
