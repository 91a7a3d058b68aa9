// The announcements rules: which conversations are broadcast channels, and how many have read
// an announcement (from read receipts). Pure functions: no DOM, no SDK.

// "announce" or "announce-<anything>": the channels docs/security.md's `read` claim example
// gives readers of ("read": ["announce-*"]), while posters have them in `convs`.
export function isAnnouncementConv(conv) {
  return conv === 'announce' || (typeof conv === 'string' && conv.startsWith('announce-'));
}

// How many users other than `me` have read up to `seq` (readCursors: Map user -> seq).
export function readCount(seq, readCursors, me) {
  if (seq == null || !readCursors) return 0;
  let count = 0;
  for (const [user, read] of readCursors) if (user !== me && read >= seq) count += 1;
  return count;
}

export function readCountText(count) {
  if (count === 0) return 'Not read yet';
  return `Read by ${count} ${count === 1 ? 'person' : 'people'}`;
}
