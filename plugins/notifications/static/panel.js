/**
 * The notifications panel for the demo shell: a bell with the unread count, the list (newest first, unread
 * highlighted, level colour, relative time; click or Enter marks one read; "Mark all read"), and a form that
 * sends a test notification and says who will receive it (a guest: only itself).
 *
 * Panel contract (docs/client.md): `mount(root, hub, ctx)`. Channels and messages are those of
 * plugins/notifications (docs/notifications.md): it follows `notifications:<me>` (its snapshot is
 * `{notifications, unread}`, personal and broadcast merged) and `notifications:@all`; events
 * `notifications.new` (a notification) and `notifications.marked_read {ids, all, up_to, unread}`; it sends
 * `notifications.read {ids}`, `notifications.read_all {up_to}` and `notifications.send {title, body, level,
 * url?, ttl?, users? | everyone?}`.
 */

import { ensureStylesheet, h } from "/static/ui.js";

const BROADCAST = "notifications:@all";
const MAX_TITLE = 200; // plugins/notifications/messages.py
const MAX_BODY = 2000;
const USER_PATTERN = /^[A-Za-z0-9_.@=+-]{1,128}$/;
const TICK_MS = 15000; // how often relative times are refreshed
const LEVELS = ["info", "success", "warning", "error"];
const BELL_SVG =
  '<svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2" ' +
  'stroke-linecap="round" stroke-linejoin="round"><path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/>' +
  '<path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/></svg>';
const EXPIRIES = [
  ["", "hub default"],
  ["15", "15 seconds"],
  ["60", "1 minute"],
  ["3600", "1 hour"],
  ["86400", "1 day"],
];

/** "just now", "5 min ago", "3 h ago", then the date. */
export function relativeTime(ts, now = Date.now() / 1000) {
  const seconds = Math.max(0, now - ts);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(ts * 1000).toLocaleDateString([], { month: "short", day: "numeric" });
}

export default function mount(root, hub, ctx) {
  ensureStylesheet(new URL("./notifications.css", import.meta.url).href);
  const idSuffix = Math.random().toString(36).slice(2, 8); // ids for labels, unique on the page

  // ---- elements -----------------------------------------------------------------------------------------
  const badge = h("span", { class: "ntf-badge", "aria-hidden": "true" });
  const liveCount = h("span", { class: "ntf-live", "aria-live": "polite", role: "status" });
  const bellIcon = h("span", { class: "ntf-bell-icon", "aria-hidden": "true" });
  bellIcon.innerHTML = BELL_SVG; // a constant: no emoji font needed
  const bell = h(
    "button",
    { type: "button", class: "ntf-bell", "aria-expanded": "true", "aria-controls": `ntf-list-${idSuffix}` },
    bellIcon,
    h("span", { class: "ntf-bell-label" }, "Notifications"),
    badge,
  );
  const markAll = h("button", { type: "button", class: "ntf-mark-all" }, "Mark all read");
  const list = h("ol", { class: "ntf-list", id: `ntf-list-${idSuffix}`, "aria-label": "Notifications" });
  const empty = h("p", { class: "ntf-empty" }, "No notifications.");
  const errorLine = h("div", { class: "ntf-error", role: "alert" });

  const field = (label, control) =>
    h("label", { class: "ntf-field" }, h("span", { class: "ntf-label" }, label), control);
  const titleInput = h("input", { name: "title", required: true, maxLength: MAX_TITLE, autocomplete: "off" });
  const bodyInput = h("textarea", { name: "body", rows: 2, maxLength: MAX_BODY });
  const levelSelect = h("select", { name: "level" }, ...LEVELS.map((level) => h("option", { value: level }, level)));
  const urlInput = h("input", { name: "url", autocomplete: "off", placeholder: "https://… or /path" });
  const ttlSelect = h("select", { name: "ttl" }, ...EXPIRIES.map(([value, label]) => h("option", { value }, label)));
  const audience = (value, label, checked = false) =>
    h(
      "label",
      { class: "ntf-radio" },
      h("input", { type: "radio", name: `ntf-to-${idSuffix}`, value, checked }),
      ` ${label}`,
    );
  const usersInput = h("input", {
    name: "users",
    autocomplete: "off",
    placeholder: "alice, bob",
    "aria-label": "User ids, separated by commas",
  });
  const audienceGroup = h(
    "fieldset",
    { class: "ntf-audience" },
    h("legend", {}, "To"),
    audience("me", "me", true),
    audience("users", "users:"),
    usersInput,
    audience("everyone", "everyone"),
  );
  const recipients = h("p", { class: "ntf-recipients", id: `ntf-recipients-${idSuffix}`, "aria-live": "polite" });
  const sendButton = h(
    "button",
    { type: "submit", class: "ntf-send", "aria-describedby": recipients.id },
    "Send test notification",
  );
  const formStatus = h("span", { class: "ntf-form-status", role: "status" });
  const form = h(
    "form",
    { class: "ntf-form", "aria-label": "Send a test notification" },
    field("Title", titleInput),
    field("Body", bodyInput),
    h("div", { class: "ntf-row" }, field("Level", levelSelect), field("Expires", ttlSelect)),
    field("Link", urlInput),
    audienceGroup,
    recipients,
    h("div", { class: "ntf-row" }, sendButton, formStatus),
  );

  const container = h(
    "div",
    { class: "ntf" },
    h("div", { class: "ntf-header" }, bell, liveCount, markAll),
    h("div", { class: "ntf-scroll" }, empty, list),
    errorLine,
    form,
  );
  root.replaceChildren(container);

  // ---- who receives it ----------------------------------------------------------------------------------
  const selectedAudience = () => form.querySelector(`input[name="ntf-to-${idSuffix}"]:checked`)?.value ?? "me";
  const listedUsers = () => usersInput.value.split(/[\s,]+/).filter(Boolean);
  usersInput.addEventListener("focus", () => {
    form.querySelector(`input[name="ntf-to-${idSuffix}"][value="users"]`).checked = true;
    renderRecipients();
  });

  /** Say who the test notification goes to: a guest's, like one "to me", goes only to the sender. */
  function renderRecipients() {
    const me = hub.me;
    const you = me ? `only you (${me.name})` : "only you";
    const to = me?.anonymous ? "me" : selectedAudience();
    const users = listedUsers();
    let text = `To: ${you}.`;
    if (me?.anonymous) text = `To: ${you}. A guest can send test notifications only to itself.`;
    else if (to === "everyone") text = "To: everyone, guests included (needs the 'publish' scope).";
    else if (to === "users" && users.length && !(users.length === 1 && users[0] === me?.user)) {
      text = `To: ${users.join(", ")} (needs the 'publish' scope).`;
    } else if (to === "users" && !users.length) text = "To: the users you list (needs the 'publish' scope).";
    recipients.textContent = text;
  }
  form.addEventListener("change", renderRecipients);
  usersInput.addEventListener("input", renderRecipients);

  // ---- state --------------------------------------------------------------------------------------------
  /** @type {Map<string, {n: any, el: HTMLElement}>} id -> notification and its element */
  const items = new Map();
  let unread = 0;
  let channel = null; // notifications:<me>
  let unsubscribePersonal = null;
  let unsubscribeBroadcast = null;
  let expiryTimer = null;
  let errorTimer = null;
  let statusTimer = null;

  function showError(text) {
    errorLine.textContent = text;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (errorLine.textContent = ""), 8000);
  }

  function renderCount() {
    badge.textContent = unread > 99 ? "99+" : String(unread);
    badge.hidden = unread === 0;
    container.dataset.unread = String(unread);
    bell.setAttribute("aria-label", `Notifications, ${unread} unread`);
    liveCount.textContent = unread === 1 ? "1 unread notification" : `${unread} unread notifications`;
    markAll.disabled = unread === 0;
    empty.hidden = items.size > 0;
  }

  function itemElement(n) {
    const time = h("time", { class: "ntf-time", dateTime: new Date(n.ts * 1000).toISOString() });
    time.textContent = relativeTime(n.ts);
    time.title = new Date(n.ts * 1000).toLocaleString();
    const link = n.url
      ? h("a", { class: "ntf-link", href: n.url, target: "_blank", rel: "noopener noreferrer" }, "Open")
      : null;
    const el = h(
      "li",
      {
        class: n.read ? "ntf-item" : "ntf-item unread",
        tabIndex: 0,
        dataset: { id: n.id, level: n.level, to: n.to },
        "aria-label": `${n.read ? "" : "Unread: "}${n.level}: ${n.title}`,
      },
      h("span", { class: "ntf-level", "aria-hidden": "true" }),
      h(
        "div",
        { class: "ntf-content" },
        h(
          "div",
          { class: "ntf-meta" },
          h("span", { class: "ntf-title" }, n.title),
          n.to === "everyone" ? h("span", { class: "ntf-everyone" }, "everyone") : null,
          time,
        ),
        n.body ? h("div", { class: "ntf-body" }, n.body) : null,
        link,
      ),
    );
    el.addEventListener("click", () => markRead(n.id));
    el.addEventListener("keydown", (event) => {
      if (event.target === el && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        markRead(n.id);
      }
    });
    return el;
  }

  function upsert(n) {
    const el = itemElement(n);
    const existing = items.get(n.id);
    if (existing) {
      existing.el.replaceWith(el);
    } else {
      // newest first: before the first element with a smaller id (ids sort by time)
      let before = null;
      for (const node of list.children) {
        if (node.dataset.id < n.id) {
          before = node;
          break;
        }
      }
      list.insertBefore(el, before);
    }
    items.set(n.id, { n, el });
  }

  function setRead(id) {
    const entry = items.get(id);
    if (!entry || entry.n.read) return;
    entry.n = { ...entry.n, read: true };
    entry.el.classList.remove("unread");
    entry.el.setAttribute("aria-label", `${entry.n.level}: ${entry.n.title}`);
  }

  /** Drop expired items; an unread one leaves the count too (the hub counts only live notifications). */
  function dropExpired() {
    const now = Date.now() / 1000;
    let next = Infinity;
    for (const [id, { n, el }] of items) {
      if (n.expires_at <= now) {
        el.remove();
        items.delete(id);
        if (!n.read) unread = Math.max(0, unread - 1);
      } else {
        next = Math.min(next, n.expires_at);
      }
    }
    clearTimeout(expiryTimer);
    if (next !== Infinity) expiryTimer = setTimeout(dropExpired, Math.min((next - now) * 1000 + 50, 2 ** 31 - 1));
    renderCount();
  }

  function replaceAll(snapshot) {
    items.clear();
    list.replaceChildren();
    for (const n of snapshot?.notifications ?? []) upsert(n);
    unread = snapshot?.unread ?? 0;
    dropExpired();
  }

  function onNew(n) {
    if (items.has(n.id) || n.expires_at <= Date.now() / 1000) return; // already in a snapshot, or gone
    upsert({ ...n, read: false });
    unread += 1; // the event carries no count: a broadcast's event is the same for everyone
    dropExpired();
  }

  /** A `notifications.marked_read` event, or the reply to our own read: idempotent, so both may arrive. */
  function onMarkedRead({ ids, all, up_to: upTo, unread: count }) {
    for (const id of ids) setRead(id);
    if (all && upTo) for (const id of items.keys()) if (id <= upTo) setRead(id);
    unread = count;
    renderCount();
  }

  async function markRead(id) {
    const entry = items.get(id);
    if (!entry || entry.n.read || !channel) return;
    try {
      onMarkedRead(await hub.publish(channel, "notifications.read", { ids: [id] }));
    } catch (error) {
      showError(`Could not mark it read: ${error.message}`);
    }
  }

  markAll.addEventListener("click", async () => {
    if (!channel) return;
    const newest = [...items.keys()].sort().pop();
    try {
      onMarkedRead(await hub.publish(channel, "notifications.read_all", newest ? { up_to: newest } : {}));
    } catch (error) {
      showError(`Could not mark all read: ${error.message}`);
    }
  });

  bell.addEventListener("click", () => {
    const open = bell.getAttribute("aria-expanded") !== "true";
    bell.setAttribute("aria-expanded", String(open));
    container.classList.toggle("collapsed", !open);
  });

  // ---- subscriptions ------------------------------------------------------------------------------------
  /** Follow the current user's channel; a new identity (hub.auth) means another channel. */
  function follow() {
    renderRecipients(); // a new identity may be a guest, or have another name
    const me = hub.me?.user;
    if (!me || `notifications:${me}` === channel) return;
    if (unsubscribePersonal) unsubscribePersonal().catch(() => {});
    channel = `notifications:${me}`;
    replaceAll(null);
    // The guest form has no audience choice: a guest has no publish scope.
    audienceGroup.hidden = Boolean(hub.me?.anonymous);
    unsubscribePersonal = hub.subscribe(channel, {
      onSnapshot: replaceAll,
      onError: (error) => showError(`Could not load notifications: ${error.message}`),
      events: { "notifications.new": onNew, "notifications.marked_read": onMarkedRead },
    });
  }

  unsubscribeBroadcast = hub.subscribe(BROADCAST, {
    onError: (error) => showError(`Could not follow notifications for everyone: ${error.message}`),
    events: { "notifications.new": onNew },
  });
  follow();
  const offOpen = hub.on("open", follow);
  const offAuth = hub.on("auth", follow);

  const ticker = setInterval(() => {
    for (const { n, el } of items.values()) el.querySelector(".ntf-time").textContent = relativeTime(n.ts);
  }, TICK_MS);

  // ---- the test form ------------------------------------------------------------------------------------
  function formStatusText(text) {
    formStatus.textContent = text;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => (formStatus.textContent = ""), 5000);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!channel) return;
    const data = { title: titleInput.value.trim(), body: bodyInput.value.trim(), level: levelSelect.value };
    if (!data.title) {
      showError("Give the notification a title.");
      titleInput.focus();
      return;
    }
    if (urlInput.value.trim()) data.url = urlInput.value.trim();
    if (ttlSelect.value) data.ttl = Number(ttlSelect.value);
    const to = selectedAudience();
    if (to === "everyone") data.everyone = true;
    if (to === "users") {
      const users = listedUsers();
      const bad = users.find((user) => !USER_PATTERN.test(user));
      if (!users.length || bad) {
        showError(bad ? `Not a user id: ${bad}` : "Give one or more user ids, separated by commas.");
        usersInput.focus();
        return;
      }
      data.users = users;
    }
    sendButton.disabled = true;
    try {
      const result = await hub.publish(channel, "notifications.send", data);
      formStatusText(result.to === "everyone" ? "Sent to everyone." : `Sent to ${result.recipients.join(", ")}.`);
      errorLine.textContent = "";
      titleInput.value = "";
      bodyInput.value = "";
    } catch (error) {
      formStatus.textContent = "";
      if (error.code === "forbidden") {
        showError("Not sent: sending to other users or to everyone needs the 'publish' scope.");
      } else if (error.code === "invalid" && error.details?.length) {
        showError(`Not sent: ${error.details.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ")}`);
      } else {
        showError(`Not sent: ${error.message}`);
      }
    } finally {
      sendButton.disabled = false;
    }
  });

  renderCount();
  container.dataset.hubState = hub.state;
  const offState = hub.on("state", ({ state }) => (container.dataset.hubState = state));

  return () => {
    offOpen();
    offAuth();
    offState();
    clearInterval(ticker);
    clearTimeout(expiryTimer);
    clearTimeout(errorTimer);
    clearTimeout(statusTimer);
    unsubscribePersonal?.().catch(() => {});
    unsubscribeBroadcast?.().catch(() => {});
    root.replaceChildren();
  };
}
