/**
 * The docedit panel for the demo shell: collaborative text documents. A document list (`docedit:@index`:
 * create, rename, share, delete), a CodeMirror 6 editor bound to the document's Yjs text with
 * y-codemirror.next's `yCollab` (remote cursors and selections with names and colours from awareness, a
 * shared undo manager), read-only for readers, version history (save, view read-only, restore), and the
 * connection and sync status.
 *
 * The wire protocol is docs/docedit.md; provider.js (`HubYProvider`) does the Yjs sync over the page's one
 * Hub. Yjs, y-protocols and CodeMirror come from ./vendor/docedit.mjs (one bundle, one Yjs instance).
 *
 * For tests and the console, `window.hubDocedit` reads the open document (see `debugHook` below).
 */

import {
  Awareness,
  Compartment,
  EditorState,
  EditorView,
  Prec,
  Y,
  crosshairCursor,
  defaultKeymap,
  drawSelection,
  dropCursor,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSelectionMatches,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  placeholder,
  rectangularSelection,
  searchKeymap,
  yCollab,
  yUndoManagerKeymap,
} from "./vendor/docedit.mjs";
import { hasLocalCopy } from "./offline.js";
import { caretLabels } from "./carets.js";
import { DOC_ID_PATTERN, HubYProvider, canEdit } from "./provider.js";
import { ensureStylesheet, h, hue, initials } from "/static/ui.js";

const CURRENT_KEY = "hub.docedit.doc";
const MAX_TITLE = 200; // docs/docedit.md: docedit.create / rename {title: 1..200}
const MAX_VERSION_NAME = 100;
const MESSAGE_MS = 8000;
const ROLE_LABELS = { owner: "Owner", editor: "Editor", reader: "Read only" };
const STATUS_LABELS = {
  connecting: "Connecting…",
  syncing: "Syncing…",
  synced: "All changes synced",
  offline: "Offline",
  error: "Not synced",
  closed: "Closed",
};

/** A person's colours: the caret and label, and the selection behind the text. */
export function userColours(user) {
  const h0 = hue(user ?? "?");
  return { color: `hsl(${h0} 65% 42%)`, colorLight: `hsl(${h0} 85% 70% / 0.35)` };
}

function formatTime(ts) {
  const date = new Date(ts * 1000);
  const sameDay = date.toDateString() === new Date().toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

/** A fresh document id from a title: its letters as a slug, then a random suffix. */
function newDocId(title) {
  const slug = title
    .normalize("NFKD")
    .replace(/[^A-Za-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .toLowerCase();
  const suffix = Math.random().toString(36).slice(2, 8).padEnd(6, "0");
  return slug ? `${slug}-${suffix}` : `doc-${suffix}`;
}

/** User ids typed as a list: commas, spaces or new lines between them. */
function parseUsers(text) {
  return [...new Set(text.split(/[\s,]+/).map((user) => user.trim()).filter(Boolean))];
}

function fragmentDoc() {
  const id = new URLSearchParams(location.hash.replace(/^#/, "")).get("doc");
  return id && DOC_ID_PATTERN.test(id) ? id : null;
}

function loadCurrent() {
  try {
    const id = localStorage.getItem(CURRENT_KEY);
    return id && DOC_ID_PATTERN.test(id) ? id : null;
  } catch {
    return null; // storage unavailable
  }
}

function saveCurrent(id) {
  try {
    if (id) localStorage.setItem(CURRENT_KEY, id);
    else localStorage.removeItem(CURRENT_KEY);
  } catch {
    // storage unavailable (private mode): the choice lasts as long as the page
  }
}

/** The editor's extensions: a plain-text setup without CodeMirror's own history (Yjs undoes). */
function editorExtensions(ytext, awareness, undoManager, readOnly, editable) {
  // readers (and everyone until the role is known) get a read-only editor
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightSpecialChars(),
    drawSelection(),
    dropCursor(),
    rectangularSelection(),
    crosshairCursor(),
    highlightActiveLine(),
    highlightSelectionMatches(),
    EditorView.lineWrapping,
    placeholder("Empty document"),
    Prec.high(keymap.of(yUndoManagerKeymap)),
    keymap.of([...defaultKeymap, ...searchKeymap]),
    readOnly.of([EditorState.readOnly.of(!editable), EditorView.editable.of(editable)]),
    EditorView.contentAttributes.of({ "aria-label": "Document text" }),
    yCollab(ytext, awareness, { undoManager }),
    caretLabels(), // remote names show for a moment, not over the text all the time
  ];
}

/**
 * @param {HTMLElement} root
 * @param {import("/hub.js").Hub} hub
 * @param {{me: any, info: any}} _ctx the shell's context; the panel reads the live `hub.me`
 * @returns {() => void} cleanup
 */
export default function mount(root, hub, _ctx) {
  ensureStylesheet(new URL("./docedit.css", import.meta.url).href);

  // ---- DOM ----------------------------------------------------------------------------------------------
  const newTitle = h("input", {
    class: "docedit-new-title",
    placeholder: "New document",
    maxLength: MAX_TITLE,
    autocomplete: "off",
    "aria-label": "New document title",
  });
  const newForm = h("form", { class: "docedit-new" }, newTitle, h("button", { type: "submit" }, "Create"));
  const docCount = h("span", { class: "docedit-doc-count", "aria-live": "polite" });
  const docList = h("ul", { class: "docedit-docs", "aria-label": "Documents" });
  const noDocs = h("p", { class: "docedit-no-docs" }, "No documents yet: create one.");

  const title = h("h2", { class: "docedit-title" });
  const roleBadge = h("span", { class: "docedit-role", hidden: true });
  const status = h("span", { class: "docedit-status", role: "status", "aria-live": "polite" });
  const peers = h("ul", { class: "docedit-peers", "aria-label": "Editing now" });
  const renameButton = h("button", { type: "button", class: "docedit-rename", title: "Rename" }, "Rename");
  const shareButton = h("button", { type: "button", class: "docedit-share", title: "Share" }, "Share");
  const historyButton = h(
    "button",
    { type: "button", class: "docedit-history-toggle", "aria-expanded": "false", title: "Version history" },
    "History",
  );
  const deleteButton = h("button", { type: "button", class: "docedit-delete", title: "Delete" }, "Delete");
  const notice = h("div", { class: "docedit-notice", role: "status" });
  const errorLine = h("div", { class: "docedit-error", role: "alert" });
  const editorHost = h("div", { class: "docedit-editor" });
  const versionBanner = h("div", { class: "docedit-version-banner", hidden: true });
  const versionHost = h("div", { class: "docedit-version-view", hidden: true });
  const emptyMain = h("p", { class: "docedit-empty" }, "Open a document from the list, or create one.");

  const versionName = h("input", {
    class: "docedit-version-name",
    placeholder: "Version name",
    maxLength: MAX_VERSION_NAME,
    autocomplete: "off",
    "aria-label": "Version name",
  });
  const versionForm = h(
    "form",
    { class: "docedit-save-version" },
    versionName,
    h("button", { type: "submit" }, "Save version"),
  );
  const versionList = h("ol", { class: "docedit-versions", "aria-label": "Versions" });
  const noVersions = h("p", { class: "docedit-no-versions" }, "No saved versions yet.");
  const history = h(
    "aside",
    { class: "docedit-history", hidden: true, "aria-label": "Version history" },
    h("h3", {}, "Versions"),
    versionForm,
    noVersions,
    versionList,
  );

  // the share dialog
  const shareEditors = h("textarea", { class: "docedit-share-editors", rows: 2, "aria-label": "Editors" });
  const shareReaders = h("textarea", { class: "docedit-share-readers", rows: 2, "aria-label": "Readers" });
  const sharePublic = h(
    "select",
    { class: "docedit-share-public", "aria-label": "Everyone else" },
    h("option", { value: "none" }, "No access"),
    h("option", { value: "read" }, "Can read"),
    h("option", { value: "edit" }, "Can edit"),
  );
  const shareError = h("p", { class: "docedit-dialog-error", role: "alert" });
  const shareForm = h(
    "form",
    { class: "docedit-share-form", method: "dialog" },
    h("h3", {}, "Share"),
    h("label", {}, "Editors (user ids, separated by commas)", shareEditors),
    h("label", {}, "Readers (user ids, separated by commas)", shareReaders),
    h("label", {}, "Everyone else", sharePublic),
    shareError,
    h(
      "div",
      { class: "docedit-dialog-buttons" },
      h("button", { type: "button", class: "docedit-share-cancel", value: "cancel" }, "Cancel"),
      h("button", { type: "submit", class: "docedit-share-save primary" }, "Save"),
    ),
  );
  const shareDialog = h("dialog", { class: "docedit-dialog docedit-share-dialog", "aria-label": "Share" }, shareForm);

  const deleteText = h("p", {});
  const deleteDialog = h(
    "dialog",
    { class: "docedit-dialog docedit-delete-dialog", "aria-label": "Delete document" },
    h(
      "form",
      { method: "dialog" },
      h("h3", {}, "Delete document"),
      deleteText,
      h(
        "div",
        { class: "docedit-dialog-buttons" },
        h("button", { type: "submit", value: "cancel", class: "docedit-delete-cancel" }, "Cancel"),
        h("button", { type: "submit", value: "delete", class: "docedit-delete-confirm danger" }, "Delete"),
      ),
    ),
  );

  const header = h(
    "div",
    { class: "docedit-header" },
    h("div", { class: "docedit-heading" }, title, roleBadge),
    h("div", { class: "docedit-actions" }, renameButton, shareButton, historyButton, deleteButton),
  );
  const main = h(
    "div",
    { class: "docedit-main" },
    header,
    h("div", { class: "docedit-statusbar" }, status, notice, peers), // peers here: the title keeps the header
    errorLine,
    emptyMain,
    versionBanner,
    versionHost,
    editorHost,
  );
  const panel = h(
    "div",
    { class: "docedit" },
    h(
      "aside",
      { class: "docedit-sidebar" },
      h("h3", {}, "Documents ", docCount),
      newForm,
      noDocs,
      docList,
    ),
    main,
    history,
    shareDialog,
    deleteDialog,
  );
  root.replaceChildren(panel);

  // ---- state --------------------------------------------------------------------------------------------
  /** @type {Map<string, any>} id -> meta, from docedit:@index */
  let docs = new Map();
  /** @type {{id: string, ydoc: Y.Doc, awareness: Awareness, provider: HubYProvider, view: EditorView,
   *   readOnly: Compartment, undoManager: Y.UndoManager} | null} */
  let current = null;
  /** The open document's presence from the SDK: members on every node, and whether only a sample is listed. */
  let presence = { count: 0, partial: false };
  /** @type {Map<string, string>} user id -> its display name in the open document's room (from presence) */
  let displays = new Map();
  let viewing = null; // {version, text, view} while a version is shown
  let errorTimer = null;
  let noticeTimer = null;
  let listTimer = null;

  const me = () => hub.me?.user ?? null;

  function showError(text) {
    errorLine.textContent = text;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (errorLine.textContent = ""), MESSAGE_MS);
  }

  function showNotice(text) {
    notice.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (notice.textContent = ""), MESSAGE_MS);
  }

  // ---- the document list --------------------------------------------------------------------------------
  function renderDocs() {
    const sorted = [...docs.values()].sort((a, b) => b.updated - a.updated || a.title.localeCompare(b.title));
    docCount.textContent = sorted.length ? `(${sorted.length})` : "";
    noDocs.hidden = sorted.length > 0;
    docList.replaceChildren(
      ...sorted.map((meta) => {
        const active = meta.id === current?.id;
        const role = meta.owner?.user === me() ? "owner" : null;
        return h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: active ? "docedit-doc active" : "docedit-doc",
              dataset: { doc: meta.id },
              "aria-current": active ? "true" : "false",
              onclick: () => open(meta.id),
            },
            h("span", { class: "docedit-doc-title" }, meta.title),
            h(
              "span",
              { class: "docedit-doc-meta" },
              role ? "yours · " : `${meta.owner?.name ?? "?"} · `,
              formatTime(meta.updated),
            ),
          ),
        );
      }),
    );
  }

  function setDocs(list) {
    docs = new Map((list ?? []).map((meta) => [meta.id, meta]));
    if (current && current.provider.meta) docs.set(current.id, { ...docs.get(current.id), ...current.provider.meta });
    renderDocs();
  }

  /** `docedit.index_changed` carries nothing: ask for the list, once per burst of changes. */
  function refreshList() {
    clearTimeout(listTimer);
    listTimer = setTimeout(async () => {
      try {
        const reply = await hub.publish("docedit:@index", "docedit.list", {});
        setDocs(reply?.docs);
      } catch (error) {
        if (error.code !== "disconnected") showError(`Could not load the documents: ${error.message}`);
      }
    }, 50);
  }

  const unsubscribeIndex = hub.subscribe("docedit:@index", {
    onSnapshot(snapshot) {
      setDocs(snapshot?.docs);
      if (!current) {
        const wanted = fragmentDoc() ?? loadCurrent();
        const first = [...docs.values()].sort((a, b) => b.updated - a.updated)[0];
        if (wanted && (docs.has(wanted) || wanted === fragmentDoc())) open(wanted);
        else if (first) open(first.id);
      }
    },
    onError(error) {
      showError(`Could not load the documents: ${error.message}`);
    },
    events: { "docedit.index_changed": refreshList },
  });

  newForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = newTitle.value.trim();
    if (!text) return;
    const id = newDocId(text);
    try {
      const meta = await hub.publish(`docedit:${id}`, "docedit.create", { title: text });
      newTitle.value = "";
      docs.set(meta.id, meta);
      renderDocs();
      open(meta.id);
    } catch (error) {
      showError(`Could not create the document: ${error.message}`);
    }
  });

  // ---- the open document --------------------------------------------------------------------------------
  function localUser() {
    return { name: hub.me?.name ?? "Someone", id: me(), ...userColours(me()) };
  }

  function open(id) {
    if (current?.id === id) return;
    closeDocument();
    const ydoc = new Y.Doc();
    const ytext = ydoc.getText("content");
    const awareness = new Awareness(ydoc);
    awareness.setLocalStateField("user", localUser());
    const undoManager = new Y.UndoManager(ytext);
    const readOnly = new Compartment();
    const state = EditorState.create({
      doc: ytext.toString(),
      extensions: editorExtensions(ytext, awareness, undoManager, readOnly, false),
    });
    const view = new EditorView({ state, parent: editorHost });
    presence = { count: 0, partial: false };
    displays = new Map();
    const provider = new HubYProvider(hub, id, ydoc, {
      awareness,
      offline: true, // kept in this browser: edits made offline survive a closed tab (offline.js)
      onStatus: renderStatus,
      onError: onProviderError,
      onPresence: (members, { count, partial }) => {
        presence = { count, partial };
        // the room's unique names ("Alice (2)" beside another Alice), protocol.md §9: shown instead of awareness's
        displays = new Map(members.map((member) => [member.user, member.display ?? member.name]));
        renderPeers();
      },
      events: {
        "docedit.deleted": () => {
          showNotice("This document was deleted.");
          closeDocument();
          docs.delete(id);
          saveCurrent(null);
          renderDocs();
        },
        "docedit.version_saved": ({ version }) => {
          if (!history.hidden) addVersion(version);
        },
        "docedit.restored": ({ version, by }) => {
          showNotice(`${by?.name ?? "Someone"} restored the version “${version?.name ?? "?"}”.`);
        },
      },
    });
    current = { id, ydoc, awareness, provider, view, readOnly, undoManager };
    provider.on("role", applyRole);
    provider.on("meta", (meta) => {
      docs.set(meta.id, meta);
      renderHeader();
      renderDocs();
    });
    awareness.on("change", renderPeers);
    saveCurrent(id);
    emptyMain.hidden = true;
    editorHost.hidden = false;
    renderHeader();
    renderDocs();
    renderPeers();
    if (!history.hidden) loadVersions();
  }

  function closeDocument() {
    closeVersion();
    if (!current) {
      emptyMain.hidden = false;
      editorHost.hidden = true;
      renderHeader();
      return;
    }
    const { provider, view, ydoc, undoManager } = current;
    current = null;
    presence = { count: 0, partial: false };
    displays = new Map();
    provider.destroy();
    view.destroy();
    undoManager.destroy();
    ydoc.destroy();
    versionList.replaceChildren();
    emptyMain.hidden = false;
    editorHost.hidden = true;
    renderHeader();
    renderPeers();
    renderStatus({ status: "closed" });
  }

  function applyRole(role) {
    if (!current) return;
    const editable = canEdit(role);
    current.view.dispatch({
      effects: current.readOnly.reconfigure([EditorState.readOnly.of(!editable), EditorView.editable.of(editable)]),
    });
    renderHeader();
  }

  function renderHeader() {
    const meta = current?.provider.meta ?? (current ? docs.get(current.id) : null);
    const role = current?.provider.role ?? null;
    title.textContent = meta?.title ?? (current ? current.id : "No document open");
    roleBadge.hidden = !role;
    roleBadge.textContent = role ? ROLE_LABELS[role] : "";
    roleBadge.dataset.role = role ?? "";
    panel.dataset.role = role ?? "";
    renameButton.hidden = !canEdit(role);
    shareButton.hidden = role !== "owner";
    deleteButton.hidden = role !== "owner";
    historyButton.hidden = !current;
    versionForm.hidden = !canEdit(role);
    for (const button of versionList.querySelectorAll(".docedit-version-restore")) button.hidden = !canEdit(role);
    if (!current && !history.hidden) toggleHistory(false);
  }

  function renderStatus({ status: state, error, local, role }) {
    status.dataset.status = state;
    status.dataset.local = local ? "saved" : "";
    status.textContent = state === "error" && error ? `${STATUS_LABELS.error}: ${error.message}` : STATUS_LABELS[state];
    if (state === "offline" && local && canEdit(role)) status.textContent = "Offline · edits are saved on this device";
  }

  function onProviderError(error) {
    if (error.discarded && error.reopen && error.code !== "too_large" && error.code !== "forbidden") {
      // the hub does not take this browser's copy (docs/docedit.md, "Offline"): open the hub's
      showError(`${error.message} The document is reloaded.`);
      reopen();
    } else if (error.revoked || (error.discarded && !error.reopen)) {
      // The hub ended the subscription: our access was withdrawn (a deletion comes as docedit.deleted first).
      const id = current?.id;
      showNotice(error.message);
      closeDocument();
      if (id) {
        docs.delete(id);
        saveCurrent(null);
        renderDocs();
      }
    } else if (error.code === "too_large") {
      showError(`${error.message} Your last change was not saved; the document is reloaded.`);
      reopen();
    } else if (error.code === "forbidden" && (current?.provider.synced || error.discarded)) {
      showError(`${error.message} Your last change was not saved; the document is reloaded.`);
      reopen();
    } else {
      showError(error.message);
    }
  }

  /** Open the current document afresh (a refused change leaves the local copy ahead of the hub's). */
  function reopen() {
    const id = current?.id;
    if (!id) return;
    queueMicrotask(() => {
      if (current?.id !== id) return;
      closeDocument();
      open(id);
    });
  }

  /**
   * Who is editing: one avatar per person from awareness (their colour, initials, name as title), then "and N
   * others" when the room is too big for the hub to list everyone, and "N here" (connections, every node).
   */
  function renderPeers() {
    const people = new Map();
    if (current) {
      for (const [clientID, state] of current.awareness.getStates()) {
        const user = state?.user;
        if (!user?.name) continue;
        const key = user.id ?? `client-${clientID}`;
        const mine = clientID === current.ydoc.clientID;
        const name = (user.id && displays.get(user.id)) || user.name;
        if (!people.has(key) || mine) people.set(key, { ...user, name, mine });
      }
    }
    const rows = [...people.values()].sort((a, b) => Number(b.mine) - Number(a.mine) || a.name.localeCompare(b.name));
    const others = presence.partial ? presence.count - rows.length : 0;
    const summary = [];
    if (current && others > 0) {
      const dataset = { others: String(others) };
      summary.push(h("li", { class: "docedit-peers-more", dataset }, `and ${others} other${others === 1 ? "" : "s"}`));
    }
    if (current && presence.count) {
      const dataset = { count: String(presence.count) };
      summary.push(h("li", { class: "docedit-peers-count", dataset }, `${presence.count} here`));
    }
    peers.replaceChildren(
      ...rows.map((user) =>
        h(
          "li",
          {
            class: user.mine ? "docedit-peer is-me" : "docedit-peer",
            title: user.mine ? `${user.name} (you)` : user.name,
            style: `background:${user.color}`,
            dataset: { user: user.id ?? "", name: user.name },
          },
          initials(user.name),
        ),
      ),
      ...summary,
    );
    peers.setAttribute("aria-label", `Editing now: ${rows.map((user) => user.name).join(", ") || "nobody"}`);
  }

  // ---- rename, share, delete ----------------------------------------------------------------------------
  renameButton.addEventListener("click", () => {
    if (!current || title.querySelector("input")) return;
    const before = title.textContent;
    const input = h("input", {
      class: "docedit-rename-input",
      value: before,
      maxLength: MAX_TITLE,
      "aria-label": "Document title",
    });
    const done = () => {
      title.textContent = current?.provider.meta?.title ?? before;
      renameButton.focus();
    };
    input.addEventListener("keydown", async (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        done();
      } else if (event.key === "Enter") {
        event.preventDefault();
        const text = input.value.trim();
        if (!text || text === before) return done();
        try {
          await current.provider.request("docedit.rename", { title: text });
        } catch (error) {
          showError(`Could not rename: ${error.message}`);
        }
        done();
      }
    });
    input.addEventListener("blur", () => {
      if (input.isConnected) done();
    });
    title.replaceChildren(input);
    input.focus();
    input.select();
  });

  shareButton.addEventListener("click", () => {
    const meta = current?.provider.meta;
    if (!meta) return;
    shareEditors.value = (meta.editors ?? []).join(", ");
    shareReaders.value = (meta.readers ?? []).join(", ");
    sharePublic.value = meta.public ?? "none";
    shareError.textContent = "";
    shareDialog.showModal();
    shareEditors.focus();
  });
  shareForm.querySelector(".docedit-share-cancel").addEventListener("click", () => shareDialog.close());
  shareForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return shareDialog.close();
    try {
      await current.provider.request("docedit.share", {
        editors: parseUsers(shareEditors.value),
        readers: parseUsers(shareReaders.value),
        public: sharePublic.value,
      });
      shareDialog.close();
      showNotice("Sharing saved.");
    } catch (error) {
      shareError.textContent = error.message;
    }
  });

  deleteButton.addEventListener("click", () => {
    if (!current) return;
    deleteText.textContent = `Delete “${current.provider.meta?.title ?? current.id}” and all its versions? This cannot be undone.`;
    deleteDialog.returnValue = "";
    deleteDialog.showModal();
  });
  deleteDialog.addEventListener("close", async () => {
    if (deleteDialog.returnValue !== "delete" || !current) return;
    const { id, provider } = current;
    try {
      await provider.request("docedit.delete", {});
      if (current?.id === id) closeDocument();
      docs.delete(id);
      saveCurrent(null);
      renderDocs();
    } catch (error) {
      showError(`Could not delete: ${error.message}`);
    }
  });

  // ---- version history ----------------------------------------------------------------------------------
  function toggleHistory(show = history.hidden) {
    history.hidden = !show;
    historyButton.setAttribute("aria-expanded", String(show));
    panel.classList.toggle("with-history", show);
    if (show) loadVersions();
    else closeVersion();
  }
  historyButton.addEventListener("click", () => toggleHistory());

  async function loadVersions() {
    if (!current) return;
    const { id, provider } = current;
    try {
      const reply = await provider.request("docedit.versions", {});
      if (current?.id !== id) return;
      versionList.replaceChildren(...(reply?.versions ?? []).map(versionItem));
      noVersions.hidden = versionList.childElementCount > 0;
    } catch (error) {
      showError(`Could not load the versions: ${error.message}`);
    }
  }

  function versionItem(version) {
    const editable = canEdit(current?.provider.role ?? null);
    return h(
      "li",
      { class: "docedit-version", dataset: { version: version.id } },
      h("span", { class: "docedit-version-title" }, version.name),
      h(
        "span",
        { class: "docedit-version-meta" },
        `${version.author?.name ?? "?"} · ${formatTime(version.created)}`,
      ),
      h(
        "span",
        { class: "docedit-version-actions" },
        h("button", { type: "button", class: "docedit-version-view-button", onclick: () => viewVersion(version) }, "View"),
        h(
          "button",
          { type: "button", class: "docedit-version-restore", hidden: !editable, onclick: () => restoreVersion(version) },
          "Restore",
        ),
      ),
    );
  }

  function addVersion(version) {
    if (versionList.querySelector(`[data-version="${CSS.escape(version.id)}"]`)) return;
    versionList.prepend(versionItem(version));
    noVersions.hidden = true;
  }

  versionForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = versionName.value.trim();
    if (!name || !current) return;
    try {
      const version = await current.provider.request("docedit.save_version", { name });
      versionName.value = "";
      addVersion(version);
      showNotice(`Version “${version.name}” saved.`);
    } catch (error) {
      showError(`Could not save the version: ${error.message}`);
    }
  });

  async function viewVersion(version) {
    if (!current) return;
    const { id, provider } = current;
    try {
      const reply = await provider.request("docedit.get_version", { id: version.id });
      if (current?.id !== id) return;
      const snapshotDoc = new Y.Doc();
      Y.applyUpdate(snapshotDoc, Uint8Array.from(atob(reply.update), (char) => char.charCodeAt(0)));
      const text = snapshotDoc.getText("content").toString();
      snapshotDoc.destroy();
      closeVersion();
      const view = new EditorView({
        state: EditorState.create({
          doc: text,
          extensions: [
            lineNumbers(),
            EditorView.lineWrapping,
            EditorState.readOnly.of(true),
            EditorView.editable.of(false),
            EditorView.contentAttributes.of({ "aria-label": `Version ${version.name} (read only)` }),
          ],
        }),
        parent: versionHost,
      });
      viewing = { version, text, view };
      const editable = canEdit(provider.role);
      versionBanner.replaceChildren(
        h("span", {}, `Viewing “${version.name}” (${formatTime(version.created)}), read only`),
        editable
          ? h("button", { type: "button", class: "docedit-banner-restore", onclick: () => restoreVersion(version) }, "Restore")
          : null,
        h("button", { type: "button", class: "docedit-banner-close", onclick: closeVersion }, "Back to the document"),
      );
      versionBanner.hidden = false;
      versionHost.hidden = false;
      editorHost.hidden = true;
      versionBanner.querySelector(".docedit-banner-close").focus();
    } catch (error) {
      showError(`Could not open the version: ${error.message}`);
    }
  }

  function closeVersion() {
    if (!viewing) return;
    viewing.view.destroy();
    viewing = null;
    versionBanner.hidden = true;
    versionHost.hidden = true;
    editorHost.hidden = !current;
  }

  async function restoreVersion(version) {
    if (!current) return;
    try {
      await current.provider.request("docedit.restore", { id: version.id });
      closeVersion();
      showNotice(`Restored “${version.name}”.`);
    } catch (error) {
      showError(`Could not restore: ${error.message}`);
    }
  }

  // ---- identity changes ---------------------------------------------------------------------------------
  const offOpen = hub.on("open", () => {
    if (current) current.awareness.setLocalStateField("user", localUser());
    renderDocs();
  });
  const offAuth = hub.on("auth", () => {
    if (current) current.awareness.setLocalStateField("user", localUser());
  });
  const offState = hub.on("state", ({ state }) => (panel.dataset.hubState = state));
  panel.dataset.hubState = hub.state;

  renderHeader();
  renderStatus({ status: "closed" });
  status.textContent = "";
  editorHost.hidden = true;

  // Mounted without a connection: the document last open here, from this browser's copy, without waiting for
  // the list (docs/docedit.md, "Offline").
  const remembered = fragmentDoc() ?? loadCurrent();
  if (hub.state !== "open" && remembered && hasLocalCopy(hub.url, remembered)) open(remembered);

  /** For tests and the console: the open document's text, role, sync state and the people in it. */
  const debugHook = {
    get id() {
      return current?.id ?? null;
    },
    get provider() {
      return current?.provider ?? null;
    },
    get ydoc() {
      return current?.ydoc ?? null;
    },
    get view() {
      return current?.view ?? null;
    },
    text: () => current?.ydoc.getText("content").toString() ?? null,
    editorText: () => current?.view.state.doc.toString() ?? null,
    versionText: () => viewing?.text ?? null,
    names: () =>
      current ? [...current.awareness.getStates().values()].map((state) => state?.user?.name).filter(Boolean) : [],
    open,
  };
  globalThis.hubDocedit = debugHook;

  return () => {
    closeDocument();
    offOpen();
    offAuth();
    offState();
    clearTimeout(errorTimer);
    clearTimeout(noticeTimer);
    clearTimeout(listTimer);
    unsubscribeIndex().catch(() => {});
    if (globalThis.hubDocedit === debugHook) delete globalThis.hubDocedit;
    root.replaceChildren();
  };
}
