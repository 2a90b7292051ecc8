// The folder picker: every folder the token may look into (GET {base}/folders), shown
// as its path from the top so subfolders sit under their parents.

import { h, field } from "./dom.js";
import { all } from "./api.js";

let cache = null;

// The visible folders, parents before children, each with its depth in the tree.
export async function visibleFolders() {
  if (cache) return cache;
  const folders = await all("/folders");
  const children = new Map();
  const keys = new Set(folders.map((f) => f.key));
  for (const folder of folders) {
    const parent = folder.parentKey && keys.has(folder.parentKey) ? folder.parentKey : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(folder);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    const list = (children.get(parent) || []).sort((a, b) => a.displayName.localeCompare(b.displayName));
    for (const folder of list) {
      ordered.push({ ...folder, depth });
      if (depth < 64) walk(folder.key, depth + 1);
    }
  };
  walk("", 0);
  cache = ordered;
  return ordered;
}

export function forget() {
  cache = null;
}

// A labelled <select> of the folders; `onPick(key)` when another is chosen.
export function picker(folders, selected, onPick) {
  const select = h(
    "select",
    { name: "folder" },
    folders.map((f) =>
      h("option", { value: f.key, selected: f.key === selected }, `${"\u2003".repeat(f.depth)}${f.fullyQualifiedName}`),
    ),
  );
  select.addEventListener("change", () => onPick(select.value));
  return field("Folder", select).field;
}
