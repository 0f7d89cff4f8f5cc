/**
 * The chat panel for the demo shell: rooms (`chat:<room>`), messages with author and time, send, edit and
 * delete of one's own messages, "X is typing…", and who is here.
 *
 * Panel contract (docs/client.md): `mount(root, hub, ctx)` builds the UI inside `root`, talks to the hub
 * only through the shared `hub`, and returns a cleanup function. Message types and fields are those of
 * plugins/chat/messages.py: `chat.send {text}`, `chat.edit {id, text}`, `chat.delete {id}`,
 * `chat.typing {active}`; events `chat.posted` / `chat.edited` (a message), `chat.deleted {id}`,
 * `chat.typing {user, name, active}`, and the hub's `chat.joined` / `chat.left` / `chat.presence` (through the
 * SDK's presence list and count).
 */

import { ensureStylesheet, h, hue, initials } from "/static/ui.js";

const ROOM_PATTERN = /^[A-Za-z0-9_.@=+-]+$/; // docs/protocol.md §11
const MAX_TEXT = 2000; // plugins/chat/messages.py MAX_TEXT
const TYPING_REPEAT_MS = 2500; // re-announce "typing" at most this often (chat.typing allows 1/s)
const TYPING_IDLE_MS = 4000; // after this long without a keystroke, announce "stopped typing"
const TYPING_EXPIRY_MS = 6000; // forget someone's "typing" if it is not repeated (their stop may be lost)
const STORAGE_KEY = "hub.chat.rooms";

function formatTime(ts) {
  const date = new Date(ts * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

function loadRooms() {
  try {
    const rooms = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
    if (Array.isArray(rooms) && rooms.every((room) => typeof room === "string" && ROOM_PATTERN.test(room))) {
      return rooms.length ? rooms : ["lobby"];
    }
  } catch {
    // storage unavailable or corrupt: start with the lobby
  }
  return ["lobby"];
}

function saveRooms(rooms) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(rooms));
  } catch {
    // storage unavailable (private mode): the room list lasts as long as the page
  }
}

/**
 * @param {HTMLElement} root
 * @param {import("/hub.js").Hub} hub
 * @param {{me: any, info: any}} _ctx the shell's context; this panel reads the live `hub.me` instead
 * @returns {() => void} cleanup
 */
export default function mount(root, hub, _ctx) {
  ensureStylesheet(new URL("./chat.css", import.meta.url).href);
  const maxRoomLength = (hub.hello?.limits?.max_channel_length ?? 128) - "chat:".length;

  // ---- DOM ----------------------------------------------------------------------------------------------
  const roomTabs = h("nav", { class: "chat-rooms", "aria-label": "Rooms" });
  const joinInput = h("input", {
    class: "chat-join-input",
    placeholder: "Join a room…",
    maxLength: maxRoomLength,
    autocomplete: "off",
    "aria-label": "Room name",
  });
  const joinForm = h("form", { class: "chat-join" }, joinInput, h("button", { type: "submit" }, "Join"));
  const messageList = h("ol", { class: "chat-messages", "aria-live": "polite" });
  const emptyNote = h("p", { class: "chat-empty" }, "No messages yet. Say hello!");
  const typingLine = h("div", { class: "chat-typing", "aria-live": "polite" });
  const notice = h("div", { class: "chat-notice", role: "status" });
  const errorLine = h("div", { class: "chat-error", role: "alert" });
  const textInput = h("input", {
    class: "chat-input",
    name: "text",
    maxLength: MAX_TEXT,
    autocomplete: "off",
    placeholder: "Message",
    "aria-label": "Message",
  });
  const sendForm = h("form", { class: "chat-send" }, textInput, h("button", { type: "submit" }, "Send"));
  const peopleCount = h("span", { class: "chat-people-count" });
  const peopleList = h("ul", { class: "chat-people-list" });
  const roomTitle = h("span", { class: "chat-room-title" });

  root.replaceChildren(
    h(
      "div",
      { class: "chat" },
      h("div", { class: "chat-toolbar" }, roomTabs, joinForm),
      h(
        "div",
        { class: "chat-layout" },
        h(
          "div",
          { class: "chat-main" },
          h("div", { class: "chat-room-header" }, roomTitle, notice),
          h("div", { class: "chat-scroll" }, emptyNote, messageList),
          typingLine,
          errorLine,
          sendForm,
        ),
        h("aside", { class: "chat-people" }, h("h3", {}, peopleCount), peopleList),
      ),
    ),
  );
  const scroller = root.querySelector(".chat-scroll");

  // ---- state --------------------------------------------------------------------------------------------
  let rooms = loadRooms();
  let room = null;
  let unsubscribe = null;
  /** @type {Map<string, {message: any, el: HTMLElement}>} id -> message and its element */
  const messages = new Map();
  /** @type {Map<string, {name: string, timer: any}>} user id -> who is typing */
  const typers = new Map();
  let typingSentAt = 0;
  let typingActive = false;
  let typingIdleTimer = null;
  let errorTimer = null;
  let noticeTimer = null;

  const myUser = () => hub.me?.user ?? null;

  // Away while this tab is hidden: presence metadata ({away}) the others see beside our name, protocol.md §9.
  const isAway = () => document.visibilityState === "hidden";
  let awayTimer = null;
  function onVisibility() {
    clearTimeout(awayTimer); // a quick switch away and back sends nothing
    awayTimer = setTimeout(() => {
      if (room) hub.setPresence(`chat:${room}`, { away: isAway() }).catch(() => {}); // the next sub carries it
    }, 400);
  }
  document.addEventListener("visibilitychange", onVisibility);

  function showError(text) {
    errorLine.textContent = text;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (errorLine.textContent = ""), 6000);
  }

  function showNotice(text, kind) {
    notice.textContent = text;
    notice.dataset.kind = kind;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice.textContent = "";
      delete notice.dataset.kind;
    }, 5000);
  }

  // ---- rooms --------------------------------------------------------------------------------------------
  function renderRooms() {
    roomTabs.replaceChildren(
      ...rooms.map((name) =>
        h(
          "button",
          {
            type: "button",
            class: name === room ? "chat-room active" : "chat-room",
            dataset: { room: name },
            onclick: () => join(name),
            "aria-current": name === room ? "true" : "false",
          },
          `# ${name}`,
        ),
      ),
    );
  }

  function join(name) {
    if (name === room) return;
    if (unsubscribe) unsubscribe().catch(() => {}); // the hub forgets us on close anyway
    stopTyping();
    room = name;
    if (!rooms.includes(name)) {
      rooms = [...rooms, name];
      saveRooms(rooms);
    }
    messages.clear();
    messageList.replaceChildren();
    clearTypers();
    renderPeople([]);
    roomTitle.textContent = `# ${name}`;
    textInput.placeholder = `Message #${name}`;
    renderRooms();
    renderEmpty();
    unsubscribe = hub.subscribe(`chat:${name}`, {
      meta: { away: isAway() },
      onSubscribed(info) {
        if (info.reset) showNotice("Reconnected: messages reloaded.", "reset");
        else if (info.resubscribed) showNotice(`Reconnected: ${info.missed} missed event(s) caught up.`, "recovered");
      },
      onSnapshot(snapshot) {
        replaceMessages(snapshot?.messages ?? []);
      },
      onPresence: renderPeople,
      onError(error) {
        showError(`Could not join #${name}: ${error.message}`);
      },
      events: {
        "chat.posted": (message) => {
          dropTyper(message.author.user);
          upsertMessage(message);
        },
        "chat.edited": upsertMessage,
        "chat.deleted": ({ id }) => removeMessage(id),
        "chat.typing": onTyping,
      },
    });
  }

  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = joinInput.value.trim().replace(/^#/, "").replace(/\s+/g, "-");
    if (!name) return;
    if (!ROOM_PATTERN.test(name) || name.length > maxRoomLength) {
      showError("Room names use letters, digits and _ . @ = + - only.");
      return;
    }
    joinInput.value = "";
    join(name);
  });

  // ---- messages -----------------------------------------------------------------------------------------
  function renderEmpty() {
    emptyNote.hidden = messages.size > 0;
  }

  function messageElement(message) {
    const mine = message.author.user === myUser();
    const color = `hsl(${hue(message.author.user)} 55% 45%)`;
    const time = h("time", { class: "chat-time", dateTime: new Date(message.ts * 1000).toISOString() });
    time.textContent = formatTime(message.ts);
    time.title = new Date(message.ts * 1000).toLocaleString();
    const actions = h(
      "span",
      { class: "chat-actions" },
      h("button", { type: "button", class: "chat-edit", title: "Edit", onclick: () => startEdit(message.id) }, "Edit"),
      h(
        "button",
        { type: "button", class: "chat-delete", title: "Delete", onclick: () => deleteMessage(message.id) },
        "Delete",
      ),
    );
    return h(
      "li",
      { class: mine ? "chat-message mine" : "chat-message", dataset: { id: message.id, user: message.author.user } },
      h("span", { class: "chat-avatar", style: `background:${color}`, "aria-hidden": "true" }, initials(message.author.name)),
      h(
        "div",
        { class: "chat-message-body" },
        h(
          "div",
          { class: "chat-meta" },
          h("span", { class: "chat-author", style: `color:${color}` }, message.author.name),
          time,
          message.edited_ts ? h("span", { class: "chat-edited", title: "edited" }, "(edited)") : null,
          mine ? actions : null,
        ),
        h("div", { class: "chat-text" }, message.text),
      ),
    );
  }

  function isNearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  function replaceMessages(list) {
    messages.clear();
    messageList.replaceChildren();
    for (const message of [...list].sort((a, b) => (a.id < b.id ? -1 : 1))) {
      const el = messageElement(message);
      messages.set(message.id, { message, el });
      messageList.append(el);
    }
    renderEmpty();
    scrollToBottom();
  }

  /** Insert or replace by id, in id order (ids sort by time): events may repeat what a snapshot had. */
  function upsertMessage(message) {
    const stick = isNearBottom() || message.author.user === myUser();
    const el = messageElement(message);
    const existing = messages.get(message.id);
    if (existing) {
      existing.el.replaceWith(el);
    } else {
      let before = null;
      for (let node = messageList.lastElementChild; node; node = node.previousElementSibling) {
        if (node.dataset.id < message.id) break;
        before = node;
      }
      messageList.insertBefore(el, before);
    }
    messages.set(message.id, { message, el });
    renderEmpty();
    if (stick) scrollToBottom();
  }

  function removeMessage(id) {
    messages.get(id)?.el.remove();
    messages.delete(id);
    renderEmpty();
  }

  /** The identity changes on reconnect for guests: re-render so only the current user's messages are editable. */
  function refreshOwnership() {
    for (const [id, entry] of messages) {
      const el = messageElement(entry.message);
      entry.el.replaceWith(el);
      messages.set(id, { message: entry.message, el });
    }
  }

  function startEdit(id) {
    const entry = messages.get(id);
    if (!entry || entry.el.querySelector(".chat-edit-form")) return;
    const input = h("input", { class: "chat-edit-input", value: entry.message.text, maxLength: MAX_TEXT });
    const cancel = () => form.replaceWith(h("div", { class: "chat-text" }, entry.message.text));
    const form = h(
      "form",
      { class: "chat-edit-form" },
      input,
      h("button", { type: "submit" }, "Save"),
      h("button", { type: "button", onclick: cancel }, "Cancel"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || text === entry.message.text) return cancel();
      try {
        upsertMessage(await hub.publish(`chat:${room}`, "chat.edit", { id, text }));
      } catch (error) {
        showError(`Could not edit: ${error.message}`);
      }
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel();
    });
    entry.el.querySelector(".chat-text").replaceWith(form);
    input.focus();
    input.select();
  }

  async function deleteMessage(id) {
    try {
      await hub.publish(`chat:${room}`, "chat.delete", { id });
      removeMessage(id);
    } catch (error) {
      showError(`Could not delete: ${error.message}`);
    }
  }

  // ---- sending and typing -------------------------------------------------------------------------------
  sendForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = textInput.value.trim();
    if (!text) return;
    const channel = `chat:${room}`;
    textInput.value = "";
    typingActive = false; // the others drop our "typing" when our message arrives
    clearTimeout(typingIdleTimer);
    try {
      upsertMessage(await hub.publish(channel, "chat.send", { text }));
    } catch (error) {
      if (!textInput.value) textInput.value = text; // give the text back so it is not lost
      showError(`Not sent: ${error.message}`);
    }
  });

  function announceTyping(active) {
    typingActive = active;
    if (active) typingSentAt = performance.now();
    // Typing is best effort: a rate_limited or disconnected refusal needs no message.
    hub.publish(`chat:${room}`, "chat.typing", { active }, { timeout: 5000 }).catch(() => {});
  }

  function stopTyping() {
    clearTimeout(typingIdleTimer);
    if (typingActive && room && hub.state === "open") announceTyping(false);
    typingActive = false;
  }

  textInput.addEventListener("input", () => {
    if (hub.state !== "open") return;
    if (!textInput.value.trim()) {
      stopTyping();
      return;
    }
    if (!typingActive || performance.now() - typingSentAt > TYPING_REPEAT_MS) announceTyping(true);
    clearTimeout(typingIdleTimer);
    typingIdleTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });

  function onTyping({ user, name, active }) {
    if (user === myUser()) return;
    if (active) {
      clearTimeout(typers.get(user)?.timer);
      typers.set(user, { name, timer: setTimeout(() => dropTyper(user), TYPING_EXPIRY_MS) });
      renderTyping();
    } else {
      dropTyper(user);
    }
  }

  function dropTyper(user) {
    const typer = typers.get(user);
    if (!typer) return;
    clearTimeout(typer.timer);
    typers.delete(user);
    renderTyping();
  }

  function clearTypers() {
    for (const typer of typers.values()) clearTimeout(typer.timer);
    typers.clear();
    renderTyping();
  }

  function renderTyping() {
    const names = [...typers.values()].map((typer) => typer.name).sort();
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    typingLine.textContent = text;
    typingLine.dataset.count = String(names.length);
  }

  // ---- who is here --------------------------------------------------------------------------------------
  /**
   * "N here" (connections, on every node), one row per user listed (a user with two tabs has two
   * connections), the current user marked, and "and N others" when the room is too big to list everyone.
   * @param {{client: string, user: string, name: string, display?: string, meta?: {away?: boolean} | null}[]} members
   * @param {{count?: number}} [presence] the SDK's count (absent before the first reply)
   */
  function renderPeople(members, { count = members.length } = {}) {
    const byUser = new Map();
    for (const member of members) {
      const seen = byUser.get(member.user);
      // display: the room's unique name for the user ("Alice (2)" beside another Alice), protocol.md §9
      byUser.set(member.user, {
        name: member.display ?? member.name,
        connections: (seen?.connections ?? 0) + 1,
        away: (seen?.away ?? true) && member.meta?.away === true, // away when every one of its tabs is
      });
    }
    const rows = [...byUser.entries()].sort((a, b) => a[1].name.localeCompare(b[1].name));
    peopleCount.textContent = count ? `${count} here` : "Here now";
    peopleCount.dataset.count = String(count);
    const others = count - members.length;
    const moreText = `and ${others} other${others === 1 ? "" : "s"}`;
    const more = h("li", { class: "chat-people-more", dataset: { others: String(others) } }, moreText);
    peopleList.replaceChildren(
      ...rows.map(([user, { name, connections, away }]) =>
        h(
          "li",
          {
            class: `chat-person${user === myUser() ? " is-me" : ""}${away ? " is-away" : ""}`,
            dataset: { user },
            title: away ? `${name} is away` : "",
          },
          h("span", { class: "chat-presence-dot", "aria-hidden": "true" }),
          h("span", { class: "chat-person-name" }, name),
          user === myUser() ? h("span", { class: "chat-you" }, " (you)") : null,
          connections > 1 ? h("span", { class: "chat-tabs", title: "connections" }, ` ×${connections}`) : null,
        ),
      ),
      ...(others > 0 ? [more] : []),
    );
  }

  const offOpen = hub.on("open", refreshOwnership);
  const offState = hub.on("state", ({ state }) => {
    root.querySelector(".chat").dataset.hubState = state;
    if (state !== "open") clearTypers();
  });
  root.querySelector(".chat").dataset.hubState = hub.state;

  join(rooms.includes("lobby") ? "lobby" : rooms[0]);

  return () => {
    document.removeEventListener("visibilitychange", onVisibility);
    clearTimeout(awayTimer);
    stopTyping();
    offOpen();
    offState();
    clearTypers();
    clearTimeout(errorTimer);
    clearTimeout(noticeTimer);
    if (unsubscribe) unsubscribe().catch(() => {});
    root.replaceChildren();
  };
}
