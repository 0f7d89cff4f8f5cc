/**
 * Small DOM helpers shared by the demo shell's panels (served at `/static/ui.js`; see docs/client.md).
 * Dependency-free, like hub.js.
 */

/**
 * Build an element: `h("li", {class: "x", dataset: {id: 1}}, "text", child)`.
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el) el[key] = value;
    else el.setAttribute(key, value);
  }
  el.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return el;
}

/**
 * Load a panel's stylesheet once per document: `ensureStylesheet(new URL("./chat.css", import.meta.url).href)`.
 * A second mount of the panel finds the link already there.
 */
export function ensureStylesheet(href) {
  for (const link of document.querySelectorAll('link[rel="stylesheet"]')) {
    if (link.href === href) return;
  }
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  document.head.append(link);
}

/** A stable hue (0-359) for a user id: the same colour for a person on every tab and in every panel. */
export function hue(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** Up to two initials of a display name, for avatars. */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : (words[0] ?? "?").slice(0, 2)).toUpperCase();
}
