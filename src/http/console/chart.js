// Per app, a bar chart of how many of the folder's deployments run each version
// (GET {base}/models/deployed/apps/versionCounts): one call, whatever the folder's
// size. Drawn as SVG elements with attributes only (no inline style), each bar
// labelled in text so the chart reads without colour.

import { h, svg, replace } from "./dom.js";
import { get } from "./api.js";

const WIDTH = 360;
const BAR = 18;
const GAP = 6;
const LABEL = 150;

export async function versionChart(holder, folder) {
  const answer = await get("/models/deployed/apps/versionCounts", { folder });
  if (answer.value.length === 0) {
    replace(holder);
    return;
  }
  replace(
    holder,
    h("h2", { id: "versions-heading" }, "Versions per app"),
    h("div", { class: "cards" }, answer.value.map(appChart)),
  );
}

function appChart(app) {
  const most = Math.max(...app.versions.map((v) => v.count), 1);
  const height = app.versions.length * (BAR + GAP);
  const summary = app.versions.map((v) => `version ${v.version} (${v.semVersion}): ${v.count}`).join("; ");
  const latest = app.latestVersion == null ? "none published" : `${app.latestVersion} (${app.latestSemVersion})`;
  const bars = app.versions.map((v, i) => {
    const y = i * (BAR + GAP);
    const width = Math.max(2, Math.round(((WIDTH - LABEL - 40) * v.count) / most));
    const behind = app.latestVersion != null && v.version < app.latestVersion;
    return svg(
      "g",
      {},
      svg("text", { x: 0, y: y + BAR - 5, "font-size": 12, fill: "#1b1f24" }, `${v.version} (${v.semVersion})`),
      svg("rect", { x: LABEL, y, width, height: BAR, rx: 3, fill: behind ? "#c46a00" : "#1f5fbf" }),
      svg("text", { x: LABEL + width + 6, y: y + BAR - 5, "font-size": 12, fill: "#1b1f24" }, String(v.count)),
    );
  });
  return h(
    "figure",
    { class: "card chart" },
    h("figcaption", {}, h("strong", {}, app.appSystemName), ` · latest ${latest}`),
    svg(
      "svg",
      { viewBox: `0 0 ${WIDTH} ${Math.max(height, BAR)}`, width: WIDTH, height: Math.max(height, BAR), role: "img", "aria-label": `${app.appSystemName}: ${summary}` },
      bars,
    ),
  );
}
