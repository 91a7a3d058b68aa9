// What the signed-in token lets its user do in each conversation, read from the token itself
// (docs/security.md, "Claims"): a hint for the UI only. The edge checks every frame against
// the verified claims; this reads the payload without checking the signature, so that the
// composer can say "read-only" before a send is refused. Pure functions: no DOM, no SDK.

// A dev token `dev:<user>` may do everything; a JWT what its `convs` and `read` claims name.
// Returns {user, dev: true} | {user, tenant, convs, read, exp} | null (not a token we can read).
export function tokenClaims(token) {
  if (typeof token !== 'string') return null;
  if (token.startsWith('dev:')) return { user: token.slice(4), dev: true };
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let payload;
  try {
    payload = JSON.parse(decodeBase64Url(parts[1]));
  } catch {
    return null;
  }
  if (!payload || typeof payload !== 'object' || typeof payload.sub !== 'string') return null;
  return {
    user: payload.sub,
    tenant: typeof payload.tnt === 'string' ? payload.tnt : '',
    convs: stringList(payload.convs),
    read: stringList(payload.read),
    exp: typeof payload.exp === 'number' ? payload.exp : null,
  };
}

// 'write' (convs names it), 'read' (only read names it) or 'none'.
export function convAccess(claims, conv) {
  if (!claims || typeof conv !== 'string') return 'none';
  if (claims.dev) return 'write';
  if (claims.convs.some((grant) => grantCovers(grant, conv))) return 'write';
  if (claims.read.some((grant) => grantCovers(grant, conv))) return 'read';
  return 'none';
}

// A grant is a conversation name, or a prefix ending in `*` ("*" alone: every conversation).
export function grantCovers(grant, conv) {
  if (grant.endsWith('*')) return conv.startsWith(grant.slice(0, -1));
  return grant === conv;
}

// The conversations a token names exactly (prefix grants name none), write ones first.
export function namedConvs(claims) {
  if (!claims || claims.dev) return [];
  const exact = [...claims.convs, ...claims.read].filter((grant) => !grant.endsWith('*'));
  return [...new Set(exact)];
}

// When the token stops being valid, in ms (the claim is seconds; above 10^11 it is already ms,
// as the edge reads it); null without exp.
export function expiresAt(claims) {
  if (claims?.exp == null) return null;
  return claims.exp > 1e11 ? claims.exp : claims.exp * 1000;
}

// What the composer says instead of taking a message, or '' where the user may write.
export function composerNote(access, conv) {
  if (access === 'read') return `#${conv} is read-only for you: you can read it, but not post here.`;
  if (access === 'none') return `You have no access to #${conv}: your sign-in does not include it.`;
  return '';
}

function stringList(value) {
  return Array.isArray(value) ? value.filter((item) => typeof item === 'string') : [];
}

function decodeBase64Url(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=');
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}
