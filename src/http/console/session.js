// The signed-in session: the bearer token and the tenant it acts in, held in this
// module's memory only. Nothing is written to storage, cookies or the URL, so closing
// or reloading the tab ends the session, and signing out forgets the token at once.

let current = null;
const listeners = new Set();

// Claims read from the token for display and for the console's own decisions (its
// expiry, its scopes). The server still checks every call; this reads, never trusts.
export function claimsOf(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return {};
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : {};
  } catch {
    return {};
  }
}

function scopesOf(claims) {
  if (Array.isArray(claims.scope)) return claims.scope.map(String);
  if (typeof claims.scope === "string") return claims.scope.split(/\s+/).filter(Boolean);
  return [];
}

export function signIn(token, tenant) {
  const claims = claimsOf(token);
  current = {
    token,
    tenant,
    subject: typeof claims.sub === "string" ? claims.sub : "",
    scopes: scopesOf(claims),
    expiresAt: typeof claims.exp === "number" ? new Date(claims.exp * 1000) : null,
  };
  notify();
}

export function signOut() {
  current = null;
  notify();
}

export function session() {
  return current;
}

// Called with the session (or null) whenever it changes.
export function onChange(listener) {
  listeners.add(listener);
}

function notify() {
  for (const listener of listeners) listener(current);
}
