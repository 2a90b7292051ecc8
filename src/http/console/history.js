// A deployment's page: its history as a timeline (what changed, from → to, who, when,
// and the operation that did it), and Roll back to the previous version or to a
// chosen published version.

import { h, field, replace, time } from "./dom.js";
import { get, post, all, idempotencyKey } from "./api.js";
import { session } from "./session.js";
import { known, upgradePermission } from "./fleet.js";

export async function render(container, { args, params, isCurrent }, shell) {
  const id = args[0] || "";
  const folder = params.get("folder") || shell.state.folder;
  shell.state.folder = folder;
  const path = `/models/deployed/apps/${encodeURIComponent(id)}`;
  const [history, permission] = await Promise.all([
    get(`${path}/history`, { folder, query: { top: 100 } }),
    upgradePermission(folder),
  ]);
  if (!isCurrent()) return;
  const seen = known.get(id);
  const app = seen ? seen.appSystemName : "";
  const versions = app
    ? await all(`/models/${encodeURIComponent(app)}/tenants/${encodeURIComponent(session().tenant)}/publish/versions`).catch(() => [])
    : [];
  if (!isCurrent()) return;
  const current = history.value.length ? history.value[0].toVersion : null;

  const timeline = h(
    "ol",
    { class: "timeline", "aria-label": "History, newest first" },
    history.value.map((event) =>
      h(
        "li",
        { dataset: { kind: event.kind } },
        h("strong", {}, event.kind),
        " ",
        event.fromVersion == null
          ? `to ${version(event.toVersion, event.toPackageVersion)}`
          : `${version(event.fromVersion, event.fromPackageVersion)} → ${version(event.toVersion, event.toPackageVersion)}`,
        h("br"),
        h("span", { class: "when" }, "by ", event.actor, ", ", time(event.createdAt)),
        event.operationId
          ? [
              h("br"),
              "operation ",
              h("a", { class: "mono", "data-operation-id": event.operationId, href: shell.link("operation", [event.operationId], { folder }) }, event.operationId),
            ]
          : null,
        event.requestId ? [h("br"), h("span", { class: "when" }, "request ", h("span", { class: "mono" }, event.requestId))] : null,
      ),
    ),
  );

  const reasonId = "rollback-reason";
  const reason = h("p", { class: "reason", id: reasonId, hidden: permission.allowed }, permission.allowed ? "" : `Rolling back is not allowed here: ${permission.reason}`);
  const previousButton = h("button", { type: "button", class: "primary", disabled: !permission.allowed, "aria-describedby": reasonId }, "Roll back to the previous version");
  const versionControl = h(
    "select",
    { name: "version" },
    versions.length
      ? versions
          .filter((v) => v.deployVersion !== current)
          .map((v) => h("option", { value: v.deployVersion }, `${v.deployVersion} (${v.appVersion || v.packageVersion || ""})`))
      : h("option", { value: "" }, "No other published version known"),
  );
  const chosenButton = h("button", { type: "button", disabled: !permission.allowed || versions.length === 0, "aria-describedby": reasonId }, "Roll back to this version");
  const rollback = async (body, button) => {
    button.disabled = true;
    shell.error(null);
    try {
      const answer = (await post(`${path}/rollback`, body, { folder, key: idempotencyKey() })).body;
      shell.status(`Rolled back: version ${answer.previousVersion} → ${answer.version}.`);
      await render(container, { args, params, isCurrent }, shell);
    } catch (failure) {
      shell.error(failure, "Rolling back");
      button.disabled = false;
    }
  };
  previousButton.addEventListener("click", () => rollback(undefined, previousButton));
  chosenButton.addEventListener("click", () => rollback({ version: Number(versionControl.value) }, chosenButton));

  replace(
    container,
    h("h1", {}, seen ? `Deployment: ${seen.title}` : "Deployment"),
    h("p", {}, "Id ", h("span", { class: "mono" }, id), app ? ` · app ${app}` : "", current == null ? "" : ` · on version ${current}`),
    h("p", {}, h("a", { href: shell.link("fleet", [], { folder }) }, "Back to the fleet")),
    h("h2", {}, "Roll back"),
    reason,
    h(
      "div",
      { class: "actions" },
      previousButton,
      versions.length ? [field("Published version", versionControl).field, chosenButton] : null,
    ),
    h("h2", {}, `History (${history["@odata.count"]} events)`),
    timeline,
  );
}

function version(number, label) {
  return label ? `${number} (${label})` : String(number);
}
