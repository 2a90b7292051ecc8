// Building the page from data without markup: every string becomes a text node or an
// attribute value, never HTML, so a title such as `<img src=x onerror=...>` shows as
// those characters. (The Content-Security-Policy's Trusted Types rule makes the
// browser refuse markup strings anyway.)

const SVG_NS = "http://www.w3.org/2000/svg";

// h("button", {type: "button", onclick: fn, disabled: true}, "Text", childNode, ...)
// Attributes are set with setAttribute (booleans add or omit them), `on*` functions
// become listeners, `dataset` is an object; children may be strings, numbers, nodes,
// arrays of those, or null/false (skipped).
export function h(tag, attributes = {}, ...children) {
  return build(document.createElement(tag), attributes, children);
}

// The same for SVG elements (the per-app version chart).
export function svg(tag, attributes = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attributes, children);
}

function build(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

// Replaces everything inside `parent`.
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

// A unique id for label/aria links.
let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A labelled form control: returns {field, control}.
export function field(labelText, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const children = [h("label", { for: id }, labelText), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    children.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return { field: h("div", { class: "field" }, children), control };
}

// Dates as the reader's locale shows them, with the exact instant in a tooltip.
export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, date.toLocaleString());
}

// Saves `data` as a JSON file, made in the page (nothing is fetched).
export function downloadJson(filename, data) {
  const blob = new Blob([JSON.stringify(data, null, 2) + "\n"], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
