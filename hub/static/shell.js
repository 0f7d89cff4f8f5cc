/**
 * The demo shell at `/`: one Hub connection for the whole page, its state and latency in the header, and
 * one panel per enabled plugin, loaded from the `panels` map of `/api/info`.
 *
 * The panel contract (docs/client.md): a plugin's `static/panel.js` default-exports
 * `mount(root: HTMLElement, hub: Hub, ctx: {me, info, name, baseUrl})`, which may return a cleanup function
 * (or a Promise of one). Panels share the page's single Hub; they never open sockets of their own.
 *
 * On a narrow screen the panels are tabs (`#panel-tabs`), one shown at a time; the choice is remembered.
 *
 * A token may be given in the URL fragment (`/#token=<jwt>`; the fragment never reaches the server's
 * logs); without one the page connects as a guest.
 */

import { connect } from "/hub.js";

const stateEl = document.getElementById("hub-state");
const rttEl = document.getElementById("hub-rtt");
const meEl = document.getElementById("hub-me");
const panelsEl = document.getElementById("panels");
const pluginsEl = document.getElementById("hub-plugins");
const tabsEl = document.getElementById("panel-tabs");

const CURRENT_PANEL_KEY = "hub.shell.panel";
/** Below this width the panels are tabs (the same query as shell.css). */
const NARROW = matchMedia("(max-width: 640px)");

/** @returns {string | null} the `token` parameter of the URL fragment */
function tokenFromFragment() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  return params.get("token");
}

const hub = connect({ token: tokenFromFragment() });
/** For the browser console and the tests: the page's one connection, its panels and the tab shown on a phone. */
const shell = { hub, panels: new Map(), current: null };
globalThis.hubShell = shell;

function showState(state) {
  stateEl.dataset.state = state;
  // the transport too while on the fallback (server-sent events + POSTs, when the WebSocket cannot connect)
  const fallback = state === "open" && hub.transport === "sse";
  stateEl.dataset.transport = hub.transport ?? "";
  stateEl.querySelector(".state-label").textContent = fallback ? "open · sse" : state;
  document.body.dataset.hubState = state;
  if (state !== "open") rttEl.textContent = "– ms";
}

function showMe(me) {
  meEl.replaceChildren();
  if (!me) return;
  const name = document.createElement("b");
  name.textContent = me.name;
  meEl.append(name);
  if (me.anonymous) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "guest";
    meEl.append(" ", badge);
  }
}

hub.on("state", ({ state }) => showState(state));
function showTransport(transport) {
  const over = transport === "sse" ? "server-sent events and POSTs (the WebSocket fallback)" : "WebSocket";
  stateEl.title = `Connection to the hub, over ${over}`;
}

hub.on("open", ({ me, transport }) => {
  showMe(me);
  showTransport(transport);
});
hub.on("transport", ({ transport }) => {
  showTransport(transport); // also when an open connection moves back to a WebSocket
  showState(hub.state);
});
hub.on("auth", (me) => showMe(me));
hub.on("rtt", (ms) => {
  rttEl.textContent = `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  rttEl.dataset.rtt = String(ms);
});
hub.on("reconnecting", ({ delay }) => {
  stateEl.title = `Reconnecting in ${(delay / 1000).toFixed(1)} s`;
});
showState(hub.state);

/** Fetch `/api/info`, retrying with a growing delay while the hub is unreachable. */
async function fetchInfo() {
  for (let delay = 250; ; delay = Math.min(delay * 2, 5000)) {
    try {
      const response = await fetch("/api/info", { headers: { accept: "application/json" } });
      if (response.ok) return await response.json();
    } catch {
      // the hub is down or restarting: try again
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** One `<section>` for a panel, with its title bar and the element its mount() owns, and its tab. */
function panelFrame(name) {
  const section = document.createElement("section");
  section.className = "panel";
  section.id = `panel-${name}`;
  section.dataset.plugin = name;
  section.dataset.status = "loading";
  const title = document.createElement("header");
  title.className = "panel-title";
  const heading = document.createElement("h2");
  heading.textContent = name;
  title.append(heading);
  const body = document.createElement("div");
  body.className = "panel-body";
  section.append(title, body);
  const tab = document.createElement("button");
  tab.type = "button";
  tab.className = "panel-tab";
  tab.id = `panel-tab-${name}`;
  tab.dataset.plugin = name;
  tab.textContent = name;
  tab.setAttribute("role", "tab");
  tab.setAttribute("aria-controls", section.id);
  tab.addEventListener("click", () => showPanel(name));
  return { section, body, tab };
}

// ---- tabs on a phone ----------------------------------------------------------------------------------

function loadCurrentPanel() {
  try {
    return localStorage.getItem(CURRENT_PANEL_KEY);
  } catch {
    return null; // storage unavailable
  }
}

/** Show this panel's tab (on a phone, the only panel shown), and remember the choice. */
function showPanel(name, { focus = false } = {}) {
  if (!shell.panels.has(name)) return;
  for (const entry of shell.panels.values()) {
    const current = entry.name === name;
    entry.section.classList.toggle("is-current", current);
    entry.tab.setAttribute("aria-selected", String(current));
    entry.tab.tabIndex = current ? 0 : -1;
    if (current && focus) entry.tab.focus();
  }
  shell.current = panelsEl.dataset.current = name;
  try {
    localStorage.setItem(CURRENT_PANEL_KEY, name);
  } catch {
    // storage unavailable (private mode): the choice lasts as long as the page
  }
}

/** Tab semantics only while the panels are tabs: on a wide screen they are a grid of regions. */
function applyTabRoles() {
  for (const entry of shell.panels.values()) {
    if (NARROW.matches) {
      entry.section.setAttribute("role", "tabpanel");
      entry.section.setAttribute("aria-labelledby", entry.tab.id);
    } else {
      entry.section.removeAttribute("role");
      entry.section.removeAttribute("aria-labelledby");
    }
  }
}

// the arrow keys, Home and End move between tabs (the WAI-ARIA tabs pattern)
tabsEl.addEventListener("keydown", (event) => {
  const names = [...shell.panels.keys()];
  const at = names.indexOf(shell.current);
  const next = {
    ArrowRight: names[(at + 1) % names.length],
    ArrowLeft: names[(at - 1 + names.length) % names.length],
    Home: names[0],
    End: names[names.length - 1],
  }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  showPanel(next, { focus: true });
});
NARROW.addEventListener("change", applyTabRoles);

function showPanelError(section, body, name, error) {
  section.dataset.status = "error";
  const message = document.createElement("p");
  message.className = "panel-error";
  message.textContent = `The ${name} panel failed to load: ${error?.message ?? error}`;
  body.replaceChildren(message);
  console.error(`panel ${name}:`, error);
}

async function mountPanel(name, url, info) {
  const { section, body, tab } = panelFrame(name);
  panelsEl.append(section);
  tabsEl.append(tab);
  const entry = { name, url, section, tab, cleanup: null, status: "loading" };
  shell.panels.set(name, entry);
  try {
    const module = await import(url);
    if (typeof module.default !== "function") throw new Error(`${url} has no default export mount()`);
    const baseUrl = new URL(".", new URL(url, location.href)).pathname;
    const cleanup = await module.default(body, hub, { me: hub.me, info, name, baseUrl });
    entry.cleanup = typeof cleanup === "function" ? cleanup : null;
    entry.status = section.dataset.status = "mounted";
  } catch (error) {
    entry.status = "error";
    showPanelError(section, body, name, error);
  }
}

async function main() {
  const info = await fetchInfo();
  pluginsEl.textContent = info.plugins.length ? `Plugins: ${info.plugins.join(", ")}` : "No plugins enabled";
  await hub.whenOpen(); // panels get `ctx.me`, so they mount once the hub has said who we are
  const panels = Object.entries(info.panels ?? {});
  panelsEl.replaceChildren();
  if (panels.length === 0) {
    const empty = document.createElement("p");
    empty.className = "panels-empty";
    empty.textContent = "No enabled plugin has a panel.";
    panelsEl.append(empty);
  }
  const mounted = Promise.all(panels.map(([name, url]) => mountPanel(name, url, info)));
  if (panels.length > 1) {
    const saved = loadCurrentPanel();
    showPanel(shell.panels.has(saved) ? saved : panels[0][0]);
    applyTabRoles();
    panelsEl.dataset.tabbed = "";
    tabsEl.hidden = false;
  }
  await mounted;
  panelsEl.dataset.status = "ready";
}

addEventListener("pagehide", (event) => {
  if (event.persisted) return; // kept in the back/forward cache: keep everything as is
  for (const entry of shell.panels.values()) {
    try {
      entry.cleanup?.();
    } catch (error) {
      console.error(`panel ${entry.name} cleanup:`, error);
    }
  }
  hub.close("page closed");
});

main().catch((error) => {
  panelsEl.dataset.status = "error";
  const message = document.createElement("p");
  message.className = "panel-error";
  message.textContent = `The demo could not start: ${error?.message ?? error}`;
  panelsEl.replaceChildren(message);
});
