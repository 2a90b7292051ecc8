// Signing in: a tenant with a client application's id and secret (exchanged at the
// token endpoint), or a tenant with a bearer token pasted from elsewhere. The forms
// are read by this script and never submitted by the browser (the page's CSP has
// `form-action 'none'`), so a secret cannot land in a URL or the history.

import { h, field, replace } from "./dom.js";
import { requestToken, get, TENANT_CLAIM } from "./api.js";
import { signIn, signOut, claimsOf } from "./session.js";

export async function render(container, _params, shell) {
  const tenantA = field("Tenant", h("input", { type: "text", name: "tenant", required: true, autocomplete: "organization" }));
  const clientId = field("Client id", h("input", { type: "text", name: "client_id", required: true, autocomplete: "username", spellcheck: "false" }));
  const secret = field("Client secret", h("input", { type: "password", name: "client_secret", required: true, autocomplete: "current-password" }));
  const scope = field(
    "Scopes (optional)",
    h("input", { type: "text", name: "scope", spellcheck: "false" }),
    "Space-separated; leave empty for every scope the client holds.",
  );
  const credentialsForm = h(
    "form",
    { class: "card", "aria-labelledby": "sign-in-credentials" },
    h("h2", { id: "sign-in-credentials" }, "Sign in with client credentials"),
    tenantA.field,
    clientId.field,
    secret.field,
    scope.field,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  credentialsForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    shell.error(null);
    shell.status("Signing in…");
    try {
      const answer = await requestToken(clientId.control.value.trim(), secret.control.value, scope.control.value.trim());
      secret.control.value = "";
      await start(answer.access_token, tenantA.control.value.trim(), shell);
    } catch (failure) {
      shell.status("");
      shell.error(failure, "Signing in");
    }
  });

  const tenantB = field(
    "Tenant",
    h("input", { type: "text", name: "tenant" }),
    "Leave empty to use the tenant the token names.",
  );
  const token = field(
    "Bearer token",
    h("textarea", { name: "token", required: true, spellcheck: "false", autocomplete: "off" }),
    "The token stays in this tab's memory only; it is gone when you sign out or close the tab.",
  );
  const tokenForm = h(
    "form",
    { class: "card", "aria-labelledby": "sign-in-token" },
    h("h2", { id: "sign-in-token" }, "Sign in with a bearer token"),
    tenantB.field,
    token.field,
    h("button", { type: "submit" }, "Use this token"),
  );
  tokenForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    shell.error(null);
    const value = token.control.value.trim().replace(/^Bearer\s+/i, "");
    token.control.value = "";
    try {
      await start(value, tenantB.control.value.trim(), shell);
    } catch (failure) {
      shell.status("");
      shell.error(failure, "Signing in");
    }
  });

  replace(
    container,
    h("h1", {}, "Sign in"),
    h(
      "p",
      {},
      "The console acts with your token and sees and does exactly what it may. Nothing is stored in the browser.",
    ),
    h("div", { class: "cards" }, credentialsForm, tokenForm),
  );
  tenantA.control.focus();
}

// Keeps the token in memory, then checks it with one harmless read (the folders it
// may see) so a wrong tenant or a refused token is said at once.
async function start(token, tenant, shell) {
  if (!tenant) {
    const claims = claimsOf(token);
    tenant = typeof claims[TENANT_CLAIM] === "string" ? claims[TENANT_CLAIM] : "";
  }
  signIn(token, tenant);
  try {
    await get("/folders", { query: { top: 1 } });
    shell.status("Signed in.");
  } catch (failure) {
    signOut();
    throw failure;
  }
}
