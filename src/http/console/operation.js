// An operation's page: its live progress (counters, a progress bar, failures as they
// come), Cancel while it runs, its items, and the final monitor as a JSON download;
// and the folder's list of operations (`list`).

import { h, field, replace, time, uid, downloadJson } from "./dom.js";
import { get, post, idempotencyKey } from "./api.js";
import { visibleFolders, picker } from "./folders.js";
import { known, previewTable, upgradePermission } from "./fleet.js";

const TERMINAL = new Set(["Succeeded", "Failed", "Canceled"]);
const COUNTERS = ["total", "pending", "running", "updated", "unchanged", "failed", "skipped", "canceled"];
const POLL_MS = 1000;

function done(counters) {
  return counters.total - counters.pending - counters.running;
}

export async function render(container, { args, params, isCurrent }, shell) {
  const id = args[0] || "";
  const folder = params.get("folder") || shell.state.folder;
  shell.state.folder = folder;
  const failedOnly = params.get("failed") === "1";
  // Canceling needs what upgrading needs (Apps.Edit in the folder): asked the same way.
  const [first, permission] = await Promise.all([
    get(`/operations/${encodeURIComponent(id)}`, { folder }),
    upgradePermission(folder),
  ]);
  let monitor = first;
  if (!isCurrent()) return;

  const heading = h("h1", {}, `Operation ${monitor.id}`);
  const statusText = h("p", { "data-status": "" });
  const progressLabel = uid("progress");
  const bar = h("progress", { max: Math.max(1, monitor.counters.total), value: done(monitor.counters), "aria-labelledby": progressLabel });
  const progressText = h("p", { id: progressLabel });
  const counters = h("dl", { class: "counters" });
  const failures = h("section", { "aria-live": "polite" });
  const items = h("section");
  const outcome = h("section");
  const cancelReason = h("p", { class: "reason", id: uid("cancel-reason"), hidden: permission.allowed }, permission.allowed ? "" : `Canceling is not allowed here: ${permission.reason}`);
  const cancelButton = h("button", { type: "button", class: "danger", "aria-describedby": cancelReason.id }, "Cancel");
  const downloadButton = h("button", { type: "button" }, "Download JSON");
  const failedBox = h("input", { type: "checkbox", id: uid("failed-only"), checked: failedOnly });
  failedBox.addEventListener("change", () => shell.go("operation", [id], { folder, failed: failedBox.checked ? "1" : "" }));

  cancelButton.addEventListener("click", async () => {
    cancelButton.disabled = true;
    shell.error(null);
    try {
      monitor = (await post(`/operations/${encodeURIComponent(id)}/cancel`, undefined, { folder, key: idempotencyKey() })).body;
      shell.status("Cancel requested: items not started are canceled, items in flight finish.");
      show();
    } catch (failure) {
      shell.error(failure, "Canceling");
      cancelButton.disabled = TERMINAL.has(monitor.status) || !permission.allowed;
    }
  });
  downloadButton.addEventListener("click", () => downloadJson(`operation-${monitor.id}.json`, monitor));

  let failedSeen = -1;
  const show = () => {
    const c = monitor.counters;
    const finished = TERMINAL.has(monitor.status);
    const dry = monitor.request && monitor.request.dryRun;
    replace(heading, `${dry ? "Preview" : "Operation"} ${monitor.id}`);
    replace(
      statusText,
      h("strong", {}, monitor.status),
      ` · ${monitor.kind}${dry ? " (dry run: nothing is changed)" : ""} · started by ${monitor.createdBy} · created `,
      time(monitor.createdAt),
      monitor.finishedAt ? [" · finished ", time(monitor.finishedAt)] : null,
    );
    bar.max = Math.max(1, c.total);
    bar.value = done(c);
    replace(progressText, `Progress: ${done(c)} of ${c.total} items done`);
    replace(counters, COUNTERS.map((name) => h("div", {}, h("dt", {}, name), h("dd", { "data-counter": name }, String(c[name])))));
    cancelButton.disabled = finished || !permission.allowed;
    downloadButton.disabled = !finished;
    if (finished && monitor.error) shell.error({ detail: `${monitor.error.code}: ${monitor.error.message}` }, "The operation");
    if (finished && monitor.result && dry) replace(outcome, previewTable(monitor.result, []));
  };

  const loadFailures = async () => {
    if (monitor.counters.failed === failedSeen) return;
    failedSeen = monitor.counters.failed;
    if (failedSeen === 0) {
      replace(failures);
      return;
    }
    const page = await get(`/operations/${encodeURIComponent(id)}/items`, { folder, query: { status: "failed", top: 100 } });
    replace(
      failures,
      h("h2", {}, `Failures (${page.count})`),
      h("ul", {}, page.value.map((item) => h("li", {}, itemName(item), `: ${item.failure ? `${item.failure.code}: ${item.failure.message}` : "failed"}`))),
    );
  };

  const loadItems = async () => {
    const page = await get(`/operations/${encodeURIComponent(id)}/items`, {
      folder,
      query: { top: 200, status: failedOnly ? "failed" : "" },
    });
    replace(
      items,
      h("h2", {}, `Items (${page.count}${failedOnly ? " failed" : ""})`),
      h("p", {}, h("label", { class: "check", for: failedBox.id }, failedBox, "Failed items only")),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "items" },
          h("thead", {}, h("tr", {}, ["#", "Deployment", "App", "Status", "From", "To", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            page.value.map((item) =>
              h(
                "tr",
                {},
                h("td", {}, String(item.seq)),
                h("td", {}, h("a", { href: shell.link("deployment", [item.id], { folder }) }, itemName(item))),
                h("td", {}, item.appSystemName || ""),
                h("td", {}, item.status),
                h("td", {}, item.previousVersion == null ? "" : String(item.previousVersion)),
                h("td", {}, item.version == null ? "" : String(item.version)),
                h("td", {}, item.failure ? `${item.failure.code}: ${item.failure.message}` : ""),
              ),
            ),
          ),
        ),
      ),
      page.count > page.value.length ? h("p", { class: "hint" }, `The first ${page.value.length} are shown; download the JSON or use the API for the rest.`) : null,
    );
  };

  // Polls the monitor until the operation ends or another view is shown.
  const poll = async () => {
    if (!isCurrent()) return;
    try {
      monitor = await get(`/operations/${encodeURIComponent(id)}`, { folder });
      if (!isCurrent()) return;
      show();
      await loadFailures();
      if (TERMINAL.has(monitor.status)) {
        await loadItems();
        shell.status(`Operation ${monitor.status.toLowerCase()}: ${monitor.counters.updated} updated, ${monitor.counters.unchanged} unchanged, ${monitor.counters.failed} failed.`);
        return;
      }
    } catch (failure) {
      shell.error(failure, "Following the operation");
    }
    setTimeout(poll, POLL_MS);
  };

  replace(
    container,
    heading,
    statusText,
    progressText,
    bar,
    counters,
    h("div", { class: "actions" }, cancelButton, downloadButton, h("a", { href: shell.link("fleet", [], { folder }) }, "Back to the fleet")),
    cancelReason,
    outcome,
    failures,
    items,
  );
  show();
  await loadFailures();
  await loadItems();
  if (!TERMINAL.has(monitor.status)) setTimeout(poll, POLL_MS);
}

function itemName(item) {
  const seen = known.get(item.id);
  return seen ? seen.title : item.id;
}

// The folder's operations, newest first, filtered by status.
export const list = {
  async render(container, { params, isCurrent }, shell) {
    const folders = await visibleFolders();
    if (folders.length === 0) {
      replace(container, h("h1", {}, "Operations"), h("p", {}, "This token may see no folder."));
      return;
    }
    const requested = params.get("folder") || shell.state.folder;
    const folder = folders.some((f) => f.key === requested) ? requested : folders[0].key;
    shell.state.folder = folder;
    const status = params.get("status") || "";
    const page = await get("/operations", { folder, query: { top: 100, status } });
    if (!isCurrent()) return;
    const statusControl = h(
      "select",
      { name: "status" },
      ["", "NotStarted", "Running", "Succeeded", "Failed", "Canceled"].map((s) => h("option", { value: s, selected: s === status }, s || "Any status")),
    );
    statusControl.addEventListener("change", () => shell.go("operations", [], { folder, status: statusControl.value }));
    replace(
      container,
      h("h1", {}, "Operations"),
      h(
        "div",
        { class: "filters" },
        picker(folders, folder, (key) => shell.go("operations", [], { folder: key, status })),
        field("Status", statusControl).field,
      ),
      h("p", {}, page.count === 1 ? "1 operation" : `${page.count} operations`),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          {},
          h("thead", {}, h("tr", {}, ["Operation", "Status", "Created", "By", "Done", "Failed"].map((c) => h("th", { scope: "col" }, c)))),
          h(
            "tbody",
            {},
            page.value.map((op) =>
              h(
                "tr",
                {},
                h("td", {}, h("a", { class: "mono", href: shell.link("operation", [op.id], { folder }) }, op.id)),
                h("td", {}, op.status, op.request && op.request.dryRun ? " (dry run)" : ""),
                h("td", {}, time(op.createdAt)),
                h("td", {}, op.createdBy),
                h("td", {}, `${done(op.counters)} of ${op.counters.total}`),
                h("td", {}, String(op.counters.failed)),
              ),
            ),
          ),
        ),
      ),
    );
  },
};
