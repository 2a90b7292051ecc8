// Calls to uplift's API from the page: the UiPath base path and the token endpoint as
// the server filled them into the page, the session's token and tenant on every call,
// and every error turned into an ApiFailure that says in words what went wrong and
// carries the trace id the server logged it under.

import { session, signOut } from "./session.js";

function meta(name) {
  const element = document.querySelector(`meta[name="${name}"]`);
  return element ? element.getAttribute("content") : "";
}

export const BASE = meta("uplift-base");
export const TOKEN_PATH = meta("uplift-token-path");
// The claim of uplift's tokens that names their tenant (UPLIFT_JWT_TENANT_CLAIM).
export const TENANT_CLAIM = meta("uplift-tenant-claim") || "tenant_id";

export class ApiFailure extends Error {
  constructor(status, detail, traceId, kind) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.traceId = traceId || "";
    this.kind = kind || "";
  }
}

// What a failed answer says: problem+json (`detail`, `traceId`), an OAuth error
// (`error_description`), or the status line; the trace id falls back to X-Request-Id.
async function failureOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const traceId = (body && body.traceId) || response.headers.get("x-request-id") || "";
  const detail =
    (body && (body.detail || body.error_description || body.title)) ||
    `${response.status} ${response.statusText}`.trim();
  const kind = (body && (body.type || body.error)) || "";
  return new ApiFailure(response.status, detail, traceId, kind);
}

// One call under the UiPath base path. `folder` sets X-UiPath-FolderKey, `query` is
// an object of parameters (empty values left out), `body` is sent as JSON, `key` as
// Idempotency-Key. Answers {status, body, headers}.
export async function call(method, path, { folder, query, body, key } = {}) {
  const current = session();
  if (!current) throw new ApiFailure(401, "You are signed out; sign in again.", "", "");
  const headers = {
    Authorization: `Bearer ${current.token}`,
    "X-UiPath-Internal-TenantId": current.tenant,
    Accept: "application/json",
  };
  if (folder) headers["X-UiPath-FolderKey"] = folder;
  if (key) headers["Idempotency-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const url = new URL(BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiFailure(0, `The server could not be reached (${error.message}).`, "", "network");
  }
  if (!response.ok) {
    const failure = await failureOf(response);
    if (response.status === 401) {
      signOut();
      failure.detail = `Your token was refused: ${failure.detail}. Sign in again.`;
      failure.message = failure.detail;
    }
    throw failure;
  }
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

export const get = (path, options) => call("GET", path, options).then((r) => r.body);
export const post = (path, body, options = {}) => call("POST", path, { ...options, body });

// Client credentials at the token endpoint (RFC 6749 §4.4): the secret goes in the
// form body of a POST, never in a URL.
export async function requestToken(clientId, clientSecret, scope) {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret });
  if (scope) form.set("scope", scope);
  let response;
  try {
    response = await fetch(new URL(TOKEN_PATH, window.location.origin), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: form,
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiFailure(0, `The server could not be reached (${error.message}).`, "", "network");
  }
  if (!response.ok) throw await failureOf(response);
  return response.json();
}

// Every page of a collection answering {"@odata.count", value}, up to `limit` items.
export async function all(path, options = {}, limit = 5000) {
  const items = [];
  for (let skip = 0; skip < limit; ) {
    const page = await get(path, { ...options, query: { ...(options.query || {}), top: 1000, skip } });
    items.push(...page.value);
    skip += page.value.length;
    if (page.value.length === 0 || skip >= page["@odata.count"]) break;
  }
  return items;
}

// A fresh Idempotency-Key for one press of a button: a retried request of that press
// is answered once; another press is another request.
// (crypto.randomUUID exists only on https or localhost; getRandomValues everywhere.)
export function idempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
