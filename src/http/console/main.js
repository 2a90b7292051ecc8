// The console's shell: which view the address names, the navigation, the signed-in
// bar, and how errors and progress are announced. Views are modules with
// `render(container, params, shell)`; a new area (rollouts, webhooks) is one more
// entry in VIEWS and, when it has a top-level page, in NAV.

import { h, replace } from "./dom.js";
import { session, signOut, onChange } from "./session.js";
import * as signin from "./signin.js";
import * as fleet from "./fleet.js";
import * as operation from "./operation.js";
import * as history from "./history.js";
import { forget as forgetFolders } from "./folders.js";

const VIEWS = {
  fleet,
  operations: operation.list,
  operation,
  deployment: history,
};

// Top-level pages in the navigation: [route, label].
const NAV = [
  ["fleet", "Fleet"],
  ["operations", "Operations"],
];

const view = document.getElementById("view");
const errorBox = document.getElementById("error");
const statusLine = document.getElementById("status");

// `#/route/arg?name=value`: the address says what is shown (never the token).
function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  const [route, ...args] = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { route: route || "fleet", args, params: new URLSearchParams(query) };
}

export function link(route, args = [], params = {}) {
  const path = [route, ...args].map(encodeURIComponent).join("/");
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""));
  const tail = query.toString();
  return `#/${path}${tail ? `?${tail}` : ""}`;
}

const shell = {
  link,
  go(route, args, params) {
    window.location.hash = link(route, args, params);
  },
  // An API failure (or any error) in words, with the trace id to find it in the log.
  error(failure, doing) {
    if (!failure) {
      errorBox.hidden = true;
      replace(errorBox);
      return;
    }
    const detail = failure.detail || failure.message || String(failure);
    const lines = [h("strong", {}, doing ? `${doing} failed: ` : "Error: "), detail];
    if (failure.status) lines.push(h("span", {}, ` (HTTP ${failure.status})`));
    if (failure.traceId) {
      lines.push(h("br"), "Trace id: ", h("span", { class: "mono", "data-trace-id": "" }, failure.traceId));
    }
    replace(errorBox, lines);
    errorBox.hidden = false;
  },
  status(text) {
    replace(statusLine, text || "");
  },
  // Remembered between views of one tab (in memory): the folder last picked.
  state: { folder: "" },
};

let renderToken = 0;
let lastRoute = null;

async function render() {
  const current = session();
  const { route, args, params } = parseHash();
  renderToken += 1;
  const mine = renderToken;
  shell.error(null);
  // A message belongs to the view it was said in.
  if (route !== lastRoute) shell.status("");
  lastRoute = route;
  renderNav(current ? route : null);
  if (!current) {
    await signin.render(view, {}, shell);
    return;
  }
  const module = VIEWS[route] || fleet;
  view.replaceChildren(h("p", {}, "Loading…"));
  try {
    const container = h("div");
    await module.render(container, { args, params, isCurrent: () => mine === renderToken }, shell);
    if (mine === renderToken) view.replaceChildren(container);
  } catch (failure) {
    if (mine !== renderToken) return;
    view.replaceChildren(h("p", {}, "This view could not be shown."));
    shell.error(failure, "Loading the view");
  }
}

function renderNav(route) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const current = session();
  nav.hidden = !current;
  who.hidden = !current;
  if (!current) {
    replace(nav);
    return;
  }
  const folder = shell.state.folder;
  replace(
    nav,
    NAV.map(([target, label]) =>
      h("a", { href: link(target, [], { folder }), "aria-current": target === route ? "page" : false }, label),
    ),
  );
  const expires = current.expiresAt ? `, token expires ${current.expiresAt.toLocaleTimeString()}` : "";
  replace(document.getElementById("who-text"), `${current.subject || "signed in"} in tenant ${current.tenant}${expires}`);
}

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  shell.status("Signed out; the token is forgotten.");
});

let last = session();
onChange((current) => {
  // What one session read is not shown to the next: the folder list and the titles
  // seen are per token.
  forgetFolders();
  fleet.known.clear();
  shell.state.folder = "";
  const signedInNow = !last && current;
  last = current;
  if (signedInNow && !window.location.hash) shell.go("fleet");
  else render();
});
window.addEventListener("hashchange", () => {
  render();
  view.focus();
});
render();
