// The fleet view: a folder's deployments with their current and latest published
// versions and an out-of-date mark, filtered, sorted and paged by the API itself (the
// page asks for one page at a time, whatever the folder's size); select some, or all
// that match the filter, preview the upgrade (a dry run), then start it as an
// operation and follow it.

import { h, field, replace, uid } from "./dom.js";
import { get, post, all, idempotencyKey, ApiFailure } from "./api.js";
import { session } from "./session.js";
import { visibleFolders, picker } from "./folders.js";
import { versionChart } from "./chart.js";

const BULK = "/models/deployed/apps/updateToLatestAppVersionBulk";
const LIST = "/models/deployed/apps";
const SORTS = [
  ["title asc", "Title, A to Z"],
  ["title desc", "Title, Z to A"],
  ["appSystemName asc,title asc", "App, A to Z"],
  ["appSystemName desc,title asc", "App, Z to A"],
  ["version asc", "Version, oldest first"],
  ["version desc", "Version, newest first"],
];
// Column headers that sort: [label, ascending, descending].
const SORTABLE = {
  Title: ["title asc", "title desc"],
  App: ["appSystemName asc,title asc", "appSystemName desc,title asc"],
  Version: ["version asc", "version desc"],
};
const PAGE_SIZES = [25, 50, 100];

// Titles of deployments seen in this tab, for the other views (history, operation
// items) to name a deployment by more than its id.
export const known = new Map();

// Whether the token may upgrade in this folder, asked of the API itself: a dry run
// of the bulk call over no deployment changes nothing and runs exactly the scope and
// folder-permission checks a real call runs, so its refusal is the reason to show.
export async function upgradePermission(folder) {
  try {
    await post(`${BULK}`, { deploymentIds: [] }, { folder, query: { dryRun: true } });
    return { allowed: true, reason: "" };
  } catch (failure) {
    if (failure instanceof ApiFailure && failure.status === 403) {
      return { allowed: false, reason: failure.detail, traceId: failure.traceId };
    }
    throw failure;
  }
}

function filtersOf(params) {
  const top = Number(params.get("top")) || 50;
  return {
    app: params.get("app") || "",
    tag: params.get("tag") || "",
    q: params.get("q") || "",
    outdated: params.get("outdated") === "1",
    sort: params.get("sort") || SORTS[0][0],
    top: PAGE_SIZES.includes(top) ? top : 50,
    skip: Math.max(0, Number(params.get("skip")) || 0),
  };
}

function listQuery(filters) {
  return {
    appSystemNames: filters.app,
    tags: filters.tag,
    searchText: filters.q,
    outdated: filters.outdated ? "true" : "",
    orderBy: filters.sort,
    top: filters.top,
    skip: filters.skip,
  };
}

export async function render(container, { params, isCurrent }, shell) {
  const folders = await visibleFolders();
  if (folders.length === 0) {
    replace(container, h("h1", {}, "Fleet"), h("p", {}, "This token may see no folder: ask for a role (Apps.View) in one."));
    return;
  }
  const requested = params.get("folder") || shell.state.folder;
  const folder = folders.some((f) => f.key === requested) ? requested : folders[0].key;
  shell.state.folder = folder;
  const filters = filtersOf(params);
  const go = (changes) => shell.go("fleet", [], hashParams({ ...filters, skip: 0, ...changes }, folder));

  const tenant = session().tenant;
  const [page, everything, outdated, permission, apps] = await Promise.all([
    get(LIST, { folder, query: listQuery(filters) }),
    get(LIST, { folder, query: { top: 0 } }),
    get(LIST, { folder, query: { top: 0, outdated: "true" } }),
    upgradePermission(folder),
    all(`/models/tenants/${encodeURIComponent(tenant)}/publish/apps`).catch(() => null),
  ]);
  if (!isCurrent()) return;
  for (const d of page.value) known.set(d.id, d);

  const selected = new Set();
  const folderName = folders.find((f) => f.key === folder).fullyQualifiedName;

  // Filters: applied by the API; the address keeps them, so Back and reload work.
  const appControl = apps
    ? h(
        "select",
        { name: "app" },
        h("option", { value: "" }, "Every app"),
        apps.map((a) => h("option", { value: a.systemName, selected: a.systemName === filters.app }, a.title || a.systemName)),
      )
    : h("input", { type: "text", name: "app", value: filters.app, spellcheck: "false" });
  const tagControl = h("input", { type: "text", name: "tag", value: filters.tag, spellcheck: "false" });
  const searchControl = h("input", { type: "search", name: "q", value: filters.q });
  const outdatedControl = h("input", { type: "checkbox", name: "outdated", checked: filters.outdated, id: uid("outdated") });
  const sortControl = h("select", { name: "sort" }, SORTS.map(([v, l]) => h("option", { value: v, selected: v === filters.sort }, l)));
  const sizeControl = h("select", { name: "top" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === filters.top }, String(n))));
  const readFilters = () => ({
    app: appControl.value.trim(),
    tag: tagControl.value.trim(),
    q: searchControl.value.trim(),
    outdated: outdatedControl.checked,
    sort: sortControl.value,
    top: Number(sizeControl.value),
  });
  const filterForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter deployments" },
    picker(folders, folder, (key) => shell.go("fleet", [], { folder: key })),
    field("App", appControl).field,
    field("Tags (all of, comma-separated)", tagControl).field,
    field("Search title, routing name or app", searchControl).field,
    h("div", { class: "field" }, h("label", { class: "check", for: outdatedControl.id }, outdatedControl, "Out of date only")),
    field("Sort by", sortControl).field,
    field("Per page", sizeControl).field,
    h("button", { type: "submit" }, "Apply filters"),
  );
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    go(readFilters());
  });
  for (const control of [appControl, outdatedControl, sortControl, sizeControl]) {
    control.addEventListener("change", () => go(readFilters()));
  }

  // Selection and the actions on it.
  const allMatching = h("input", { type: "checkbox", id: uid("all-matching") });
  const countLine = h("span", { id: uid("selected"), "aria-live": "polite" });
  const reasonId = uid("reason");
  const reason = h("p", { class: "reason", id: reasonId, hidden: true });
  const previewButton = h("button", { type: "button", "aria-describedby": reasonId }, "Preview");
  const upgradeButton = h("button", { type: "button", class: "primary", "aria-describedby": reasonId }, "Upgrade");
  const result = h("section", { "aria-live": "polite" });

  const targets = () =>
    allMatching.checked
      ? { selector: selectorOf(filters) }
      : { deploymentIds: page.value.filter((d) => selected.has(d.id)).map((d) => d.id) };
  const refresh = () => {
    const count = allMatching.checked ? `all ${page["@odata.count"]} matching the filter` : `${selected.size} selected`;
    replace(countLine, count);
    let why = "";
    if (!permission.allowed) why = `Upgrading is not allowed here: ${permission.reason}`;
    else if (!allMatching.checked && selected.size === 0) why = "Select deployments first, or choose all matching the filter.";
    previewButton.disabled = Boolean(why);
    upgradeButton.disabled = Boolean(why);
    reason.hidden = !why;
    replace(reason, why);
    for (const box of rowBoxes) box.disabled = allMatching.checked;
    pageBox.disabled = allMatching.checked;
  };
  allMatching.addEventListener("change", refresh);

  previewButton.addEventListener("click", async () => {
    shell.error(null);
    const target = targets();
    previewButton.disabled = true;
    shell.status("Previewing…");
    try {
      if (target.deploymentIds) {
        const answer = (await post(BULK, { deploymentIds: target.deploymentIds }, { folder, query: { dryRun: true } })).body;
        replace(result, previewTable(answer, page.value));
        shell.status(`Preview: ${answer.updatedDeployments.length} would succeed, ${answer.failures.length} would fail.`);
      } else {
        // Every match of the filter: a dry-run operation walks them without a limit.
        const monitor = (await post("/operations/upgrades", { ...target, dryRun: true }, { folder, key: idempotencyKey() })).body;
        shell.go("operation", [monitor.id], { folder });
      }
    } catch (failure) {
      shell.status("");
      shell.error(failure, "The preview");
    } finally {
      refresh();
    }
  });
  upgradeButton.addEventListener("click", async () => {
    shell.error(null);
    upgradeButton.disabled = true;
    shell.status("Starting the upgrade…");
    try {
      const monitor = (await post("/operations/upgrades", targets(), { folder, key: idempotencyKey() })).body;
      shell.status(`Operation ${monitor.id} started.`);
      shell.go("operation", [monitor.id], { folder });
    } catch (failure) {
      shell.status("");
      shell.error(failure, "Starting the upgrade");
      refresh();
    }
  });

  // The table of this page.
  const rowBoxes = [];
  const pageBox = h("input", { type: "checkbox", "aria-label": "Select every deployment on this page" });
  pageBox.addEventListener("change", () => {
    for (const box of rowBoxes) {
      box.checked = pageBox.checked;
      if (pageBox.checked) selected.add(box.value);
      else selected.delete(box.value);
    }
    refresh();
  });
  const rows = page.value.map((d) => {
    const box = h("input", { type: "checkbox", value: d.id, "aria-label": `Select ${d.title}` });
    box.addEventListener("change", () => {
      if (box.checked) selected.add(d.id);
      else selected.delete(d.id);
      pageBox.checked = selected.size === rowBoxes.length;
      refresh();
    });
    rowBoxes.push(box);
    return h(
      "tr",
      { dataset: { id: d.id } },
      h("td", {}, box),
      h("td", { "data-label": "Title" }, h("a", { href: shell.link("deployment", [d.id], { folder }) }, d.title)),
      h("td", { "data-label": "App" }, d.appSystemName),
      h("td", { "data-label": "Version" }, `${d.version} (${d.semVersion})`),
      h("td", { "data-label": "Latest" }, d.latestVersion == null ? "none published" : `${d.latestVersion} (${d.latestSemVersion})`),
      h("td", { "data-label": "Tags" }, d.tags.map((t) => h("span", { class: "tag" }, t))),
      h(
        "td",
        { "data-label": "Status" },
        d.isOutdated ? h("span", { class: "badge outdated" }, "Out of date") : h("span", { class: "badge current" }, "Up to date"),
      ),
    );
  });
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "fleet" },
      h("caption", { class: "visually-hidden" }, `Deployments in ${folderName}`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, pageBox),
          ["Title", "App", "Version", "Latest published", "Tags", "Status"].map((c) => sortableHeader(c, filters, go)),
        ),
      ),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 7 }, "No deployment matches."))),
    ),
  );

  const count = page["@odata.count"];
  const first = count === 0 ? 0 : filters.skip + 1;
  const lastShown = Math.min(filters.skip + page.value.length, count);
  const previous = h("button", { type: "button", disabled: filters.skip === 0 }, "Previous page");
  const next = h("button", { type: "button", disabled: lastShown >= count }, "Next page");
  previous.addEventListener("click", () => go({ skip: Math.max(0, filters.skip - filters.top) }));
  next.addEventListener("click", () => go({ skip: filters.skip + filters.top }));

  const chartHolder = h("section", { "aria-labelledby": "versions-heading" });
  replace(
    container,
    h("h1", {}, `Fleet: ${folderName}`),
    h(
      "div",
      { class: "summary" },
      h("span", {}, h("strong", { "data-count": "total" }, String(everything["@odata.count"])), " deployments"),
      h("span", {}, h("strong", { "data-count": "outdated" }, String(outdated["@odata.count"])), " out of date"),
      h("span", {}, h("strong", { "data-count": "matching" }, String(count)), " match the filter"),
    ),
    filterForm,
    h(
      "div",
      { class: "actions", role: "group", "aria-label": "Upgrade the selection" },
      countLine,
      h("label", { class: "check", for: allMatching.id }, allMatching, "All matching the filter"),
      previewButton,
      upgradeButton,
    ),
    reason,
    result,
    table,
    h("div", { class: "pager" }, previous, h("span", {}, `${first}–${lastShown} of ${count}`), next),
    chartHolder,
  );
  refresh();
  versionChart(chartHolder, folder).catch((failure) => shell.error(failure, "The version chart"));
}

// A header cell; for a sortable column, a button that sorts by it (ascending first,
// then the other way), with aria-sort saying how the table is sorted now.
function sortableHeader(label, filters, go) {
  const orders = SORTABLE[label];
  if (!orders) return h("th", { scope: "col" }, label);
  const [up, down] = orders;
  const state = filters.sort === up ? "ascending" : filters.sort === down ? "descending" : "none";
  const next = state === "ascending" ? down : up;
  const button = h("button", { type: "button", class: "sort" }, label, state === "none" ? "" : state === "ascending" ? " ▲" : " ▼");
  button.setAttribute("aria-label", `${label}: sort ${next === up ? "ascending" : "descending"}`);
  button.addEventListener("click", () => go({ sort: next }));
  return h("th", { scope: "col", "aria-sort": state }, button);
}

function hashParams(filters, folder) {
  return {
    folder,
    app: filters.app,
    tag: filters.tag,
    q: filters.q,
    outdated: filters.outdated ? "1" : "",
    sort: filters.sort === SORTS[0][0] ? "" : filters.sort,
    top: filters.top === 50 ? "" : filters.top,
    skip: filters.skip || "",
  };
}

// The operation selector for "all matching the filter" (only those behind: the others
// would be left unchanged anyway).
function selectorOf(filters) {
  const tags = filters.tag.split(",").map((t) => t.trim()).filter(Boolean);
  return {
    appSystemNames: filters.app ? filters.app.split(",").map((a) => a.trim()).filter(Boolean) : [],
    tags,
    searchText: filters.q || null,
    onlyOutdated: true,
  };
}

// What the dry run says each deployment would do.
export function previewTable(answer, deployments) {
  const titles = new Map(deployments.map((d) => [d.id, d.title]));
  const name = (id) => titles.get(id) || (known.get(id) || {}).title || id;
  const rows = [
    ...answer.updatedDeployments.map((u) =>
      h(
        "tr",
        {},
        h("td", {}, name(u.id)),
        h("td", {}, u.appSystemName),
        h("td", {}, String(u.previousVersion)),
        h("td", {}, String(u.version)),
        h("td", {}, u.version === u.previousVersion ? "already on the latest version" : "would be upgraded"),
      ),
    ),
    ...answer.failures.map((f) =>
      h(
        "tr",
        {},
        h("td", {}, name(f.id)),
        h("td", {}, ""),
        h("td", {}, ""),
        h("td", {}, ""),
        h("td", {}, h("span", { class: "badge failed" }, "would fail"), ` ${f.code}: ${f.message}`),
      ),
    ),
  ];
  return h(
    "div",
    {},
    h("h2", {}, "Preview (dry run: nothing was changed)"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "preview" },
        h("thead", {}, h("tr", {}, ["Deployment", "App", "From", "To", "Result"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ),
    ),
  );
}
