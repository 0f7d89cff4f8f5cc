/**
 * The draw panel for the demo shell: a collaborative whiteboard on Fabric.js, one board (`draw:<board>`)
 * at a time, over the page's one Hub.
 *
 * The wire protocol, the object schema and the conflict rule are docs/draw.md ("Browser panel" describes
 * this panel). The modules: board.js keeps a board by the rule; sync.js shares it through the hub and shows
 * it on the canvas; editor.js is what this user does on the canvas; shapes.js turns records into Fabric
 * objects and back; tools.js has the pen and the shapes being dragged out; history.js undoes; peers.js
 * shows the others' cursors and strokes; toolbar.js is the markup. This module mounts them and wires the
 * toolbar, the keyboard, the board tabs, presence and the exports.
 *
 * For tests and the console, `window.hubDraw` reads the board (see `debugHook` below).
 */

import { Canvas } from "./vendor/fabric.mjs";
import { Editor } from "./editor.js";
import { History } from "./history.js";
import { ensureStylesheet, initials } from "/static/ui.js";
import { Peers, hue } from "./peers.js";
import { BOARD_HEIGHT, BOARD_WIDTH } from "./shapes.js";
import { BoardSync } from "./sync.js";
import { buildPanel, h } from "./toolbar.js";
import { TOOLS } from "./tools.js";

const BOARD_PATTERN = /^[A-Za-z0-9_.@=+-]+$/; // docs/protocol.md §11
const BOARDS_KEY = "hub.draw.boards";
const CURRENT_KEY = "hub.draw.board";
const MESSAGE_MS = 8000;

function loadBoards() {
  try {
    const boards = JSON.parse(localStorage.getItem(BOARDS_KEY) ?? "[]");
    const current = localStorage.getItem(CURRENT_KEY);
    if (Array.isArray(boards) && boards.every((name) => typeof name === "string" && BOARD_PATTERN.test(name))) {
      const list = boards.length ? boards : ["main"];
      return { boards: list, current: list.includes(current) ? current : list[0] };
    }
  } catch {
    // storage unavailable or corrupt: start with the main board
  }
  return { boards: ["main"], current: "main" };
}

function saveBoards(boards, current) {
  try {
    localStorage.setItem(BOARDS_KEY, JSON.stringify(boards));
    localStorage.setItem(CURRENT_KEY, current);
  } catch {
    // storage unavailable (private mode): the list lasts as long as the page
  }
}

/** A wire colour (`#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`) as a colour input takes it (`#rrggbb`). */
function inputColour(colour) {
  if (/^#[0-9a-fA-F]{3,4}$/.test(colour)) return `#${[...colour.slice(1, 4)].map((c) => c + c).join("")}`;
  return colour.slice(0, 7);
}

/** Keys typed into a text field are the field's; a colour or range input leaves the shortcuts alone. */
const isTyping = (target) =>
  target instanceof Element &&
  Boolean(target.closest("input:not([type=color]):not([type=range]), textarea, select, [contenteditable]"));


const SUMMARY = ["id", "kind", "version", "left", "top", "width", "height", "angle", "scale_x", "scale_y", "z"];

/** A record for the debug hook: its place and style, the points counted. */
function summary(record) {
  const entry = Object.fromEntries(SUMMARY.map((key) => [key, record[key]]));
  Object.assign(entry, { stroke: record.stroke, fill: record.fill, stroke_width: record.stroke_width });
  if (record.points) entry.points = record.points.length;
  if (record.text !== undefined) entry.text = record.text;
  return entry;
}

/**
 * @param {HTMLElement} root
 * @param {import("/hub.js").Hub} hub
 * @param {{me: any, info: any}} _ctx the shell's context; the panel reads the live `hub.me` instead
 * @returns {() => void} cleanup
 */
export default function mount(root, hub, _ctx) {
  ensureStylesheet(new URL("./draw.css", import.meta.url).href);
  const maxBoardLength = (hub.hello?.limits?.max_channel_length ?? 128) - "draw:".length;
  const el = buildPanel({ maxBoardLength });
  root.replaceChildren(el.root);

  const canvas = new Canvas(el.canvas, {
    backgroundColor: "#ffffff",
    preserveObjectStacking: true,
    targetFindTolerance: 6,
    selectionColor: "rgba(59, 91, 219, 0.08)",
    selectionBorderColor: "#3b5bdb",
    selectionLineWidth: 1,
    freeDrawingCursor: "crosshair",
  });
  const scale = () => canvas.getWidth() / BOARD_WIDTH;
  const peers = new Peers(canvas, el.cursors, scale);
  const history = new History();
  let boards = [];
  let noticeTimer = null;
  let errorTimer = null;

  // ---- messages -----------------------------------------------------------------------------------------
  function showNotice(text) {
    el.notice.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (el.notice.textContent = ""), MESSAGE_MS);
  }

  /** A HubError as "code: sentence" (the hub's sentence says what to do), or a message of the panel's own. */
  function showError(error) {
    el.error.textContent = error.code ? `${error.code}: ${error.message}` : String(error.message ?? error);
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (el.error.textContent = ""), MESSAGE_MS);
  }
  el.error.addEventListener("click", () => (el.error.textContent = ""));

  // ---- the board and the editor -------------------------------------------------------------------------
  const sync = new BoardSync(hub, canvas, {
    peers,
    history,
    isBusy: (object) => editor.isBusy(object),
    changed: refreshControls,
    error: showError,
    notice: showNotice,
    presence: renderPeople,
    loaded: () => (el.root.dataset.loaded = "true"),
  });
  const editor = new Editor(canvas, sync, {
    toolChanged(name) {
      for (const [toolName, button] of el.tools) {
        button.classList.toggle("active", toolName === name);
        button.setAttribute("aria-pressed", String(toolName === name));
      }
      el.root.dataset.tool = name;
    },
    selectionChanged(objects) {
      if (objects.length === 1) showStyleOf(objects[0]);
      refreshControls();
    },
  });

  function refreshControls() {
    el.undo.disabled = !history.canUndo;
    el.redo.disabled = !history.canRedo;
    el.remove.disabled = editor.selected().length === 0;
    const count = sync.shapes.size;
    el.count.textContent = count === 1 ? "1 object" : `${count} objects`;
    el.root.dataset.objects = String(count);
  }

  // ---- style --------------------------------------------------------------------------------------------
  let lastFill = el.fillInput.value;

  function showFill(fill) {
    if (fill) el.fillInput.value = lastFill = inputColour(fill);
    el.noFill.setAttribute("aria-pressed", String(!fill));
    el.noFill.classList.toggle("active", !fill);
    el.fillInput.closest(".draw-swatch").classList.toggle("off", !fill);
  }

  /** A selected object's style becomes the toolbar's (and so the style of what is drawn next). */
  function showStyleOf(object) {
    const record = sync.board.shown(object.hubId);
    if (!record || record.deleted) return;
    const colour = record.kind === "text" ? record.fill : record.stroke;
    if (colour) el.strokeInput.value = editor.style.stroke = inputColour(colour);
    if (record.kind === "rect" || record.kind === "ellipse") {
      editor.style.fill = record.fill;
      showFill(record.fill);
    }
    if (record.kind !== "text") {
      editor.style.strokeWidth = record.stroke_width;
      el.widthInput.value = String(record.stroke_width);
      el.widthValue.textContent = String(Math.round(record.stroke_width));
    }
  }

  el.strokeInput.addEventListener("input", () => editor.setStyle("stroke", el.strokeInput.value, { final: false }));
  el.strokeInput.addEventListener("change", () => editor.setStyle("stroke", el.strokeInput.value, { final: true }));
  el.fillInput.addEventListener("input", () => {
    showFill(el.fillInput.value);
    editor.setStyle("fill", el.fillInput.value, { final: false });
  });
  el.fillInput.addEventListener("change", () => editor.setStyle("fill", el.fillInput.value, { final: true }));
  el.noFill.addEventListener("click", () => {
    const fill = editor.style.fill ? null : lastFill;
    showFill(fill);
    editor.setStyle("fill", fill, { final: true });
  });
  el.widthInput.addEventListener("input", () => {
    el.widthValue.textContent = el.widthInput.value;
    editor.setStyle("strokeWidth", Number(el.widthInput.value), { final: false });
  });
  el.widthInput.addEventListener("change", () =>
    editor.setStyle("strokeWidth", Number(el.widthInput.value), { final: true }),
  );
  editor.style.stroke = el.strokeInput.value;
  editor.style.strokeWidth = Number(el.widthInput.value);
  showFill(null);

  // ---- toolbar ------------------------------------------------------------------------------------------
  const undo = () => sync.replay(history.takeUndo());
  const redo = () => sync.replay(history.takeRedo());

  function showConfirm() {
    el.clear.hidden = true;
    el.confirm.hidden = false;
    el.clearCancel.focus();
  }

  function hideConfirm() {
    el.clear.hidden = false;
    el.confirm.hidden = true;
  }

  async function clearBoard() {
    hideConfirm();
    try {
      const { cleared } = await sync.clear();
      showNotice(cleared ? "Board cleared. Undo (Ctrl+Z) brings it back." : "Someone cleared the board first.");
    } catch (error) {
      showError(error);
    }
  }

  function exportPng() {
    const url = canvas.toDataURL({ format: "png", multiplier: BOARD_WIDTH / canvas.getWidth() });
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
    h("a", { href: url, download: `board-${sync.name}-${stamp}.png` }).click();
  }

  for (const [name, button] of el.tools) button.addEventListener("click", () => editor.setTool(name));
  el.undo.addEventListener("click", undo);
  el.redo.addEventListener("click", redo);
  el.remove.addEventListener("click", () => editor.deleteSelected());
  el.clear.addEventListener("click", showConfirm);
  el.clearCancel.addEventListener("click", hideConfirm);
  el.clearConfirm.addEventListener("click", clearBoard);
  el.png.addEventListener("click", exportPng);

  // ---- keyboard -----------------------------------------------------------------------------------------
  el.root.addEventListener("keydown", (event) => {
    if (isTyping(event.target) || event.isComposing) return;
    const key = event.key.toLowerCase();
    if (event.ctrlKey || event.metaKey) {
      if (key === "z") event.shiftKey ? redo() : undo();
      else if (key === "y") redo();
      else if (key === "a") editor.selectAll();
      else return;
    } else if (event.altKey) {
      return;
    } else if (key === "delete" || key === "backspace") {
      editor.deleteSelected();
    } else if (key === "escape") {
      if (!el.confirm.hidden) hideConfirm();
      else editor.escape();
    } else {
      const tool = TOOLS.find((entry) => entry.key === key);
      if (!tool) return;
      editor.setTool(tool.name);
    }
    event.preventDefault();
  });

  // The board takes the keyboard when it is pressed (before Fabric sees the press, which may focus a text).
  el.stage.addEventListener("pointerdown", () => el.stage.focus({ preventScroll: true }), { capture: true });
  el.stage.addEventListener("pointerleave", () => editor.sendCursor(null));
  // Escape out of a text leaves the focus nowhere (Fabric blurs its hidden textarea): give it back to the board.
  canvas.on("text:editing:exited", () => {
    if (!document.activeElement || document.activeElement === document.body) el.stage.focus({ preventScroll: true });
  });

  // ---- who is here --------------------------------------------------------------------------------------
  /**
   * One avatar per user listed (a user with two tabs has two connections), this user's outlined, then
   * "and N others" when the room is too big to list everyone, and "N here" (connections, on every node).
   */
  function renderPeople(members, { count = members.length } = {}) {
    const byUser = new Map();
    for (const member of members) {
      const seen = byUser.get(member.user);
      // display: the room's unique name for the user ("Alice (2)" beside another Alice), protocol.md §9
      byUser.set(member.user, { name: member.display ?? member.name, connections: (seen?.connections ?? 0) + 1 });
    }
    const me = hub.me?.user;
    const rows = [...byUser.entries()].sort((a, b) => a[1].name.localeCompare(b[1].name));
    const others = count - members.length;
    const moreText = `and ${others} other${others === 1 ? "" : "s"}`;
    const more = h("li", { class: "draw-people-more", dataset: { others: String(others) } }, moreText);
    el.people.replaceChildren(
      ...rows.map(([user, { name, connections }]) =>
        h(
          "li",
          {
            class: user === me ? "draw-person is-me" : "draw-person",
            dataset: { user },
            title: `${name}${user === me ? " (you)" : ""}${connections > 1 ? ` · ${connections} tabs` : ""}`,
            style: `--peer-hue: ${hue(user)}`,
          },
          h("span", { class: "draw-avatar", "aria-hidden": "true" }, initials(name)),
          h("span", { class: "draw-person-name" }, name),
        ),
      ),
      ...(others > 0 ? [more] : []),
      h("li", { class: "draw-people-count", dataset: { count: String(count) } }, `${count} here`),
    );
  }

  // ---- boards -------------------------------------------------------------------------------------------
  function renderBoards() {
    el.boardTabs.replaceChildren(
      ...boards.map((name) =>
        h(
          "button",
          {
            type: "button",
            class: name === sync.name ? "draw-board active" : "draw-board",
            dataset: { board: name },
            "aria-current": name === sync.name ? "true" : "false",
            onclick: () => join(name),
          },
          name,
        ),
      ),
    );
  }

  function join(name) {
    if (name === sync.name) return;
    editor.reset();
    delete el.root.dataset.loaded;
    sync.open(name);
    if (!boards.includes(name)) boards = [...boards, name];
    saveBoards(boards, name);
    renderBoards();
    renderPeople([]);
    hideConfirm();
    el.json.href = `/api/draw/${encodeURIComponent(name)}.json`;
    el.json.download = `board-${name}.json`;
    el.root.dataset.board = name;
    refreshControls();
  }

  el.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = el.joinInput.value.trim().replace(/^#/, "").replace(/\s+/g, "-");
    if (!name) return;
    if (!BOARD_PATTERN.test(name) || name.length > maxBoardLength) {
      showError({ message: "Board names use letters, digits and _ . @ = + - only." });
      return;
    }
    el.joinInput.value = "";
    join(name);
  });

  // ---- size: the logical board, scaled to the panel's width ---------------------------------------------
  function fit() {
    const width = Math.max(240, Math.floor(el.stage.clientWidth));
    const height = Math.round((width * BOARD_HEIGHT) / BOARD_WIDTH);
    if (width === canvas.getWidth() && height === canvas.getHeight()) return;
    canvas.setDimensions({ width, height });
    canvas.setZoom(width / BOARD_WIDTH);
    el.surface.style.width = `${width}px`;
    el.surface.style.height = `${height}px`;
    peers.relayout();
    canvas.requestRenderAll();
  }
  const resizer = new ResizeObserver(fit);
  resizer.observe(el.stage);
  fit();

  // ---- connection ---------------------------------------------------------------------------------------
  const offState = hub.on("state", ({ state }) => {
    el.root.dataset.hubState = state;
    if (state !== "open") peers.reset(); // cursors and strokes in progress are not replayed
  });
  el.root.dataset.hubState = hub.state;

  const saved = loadBoards();
  boards = saved.boards;
  join(saved.current);

  // ---- debug hook ---------------------------------------------------------------------------------------
  /** What is on the canvas now, as plain data, for tests and the console. */
  const debugHook = Object.freeze({
    board: () => sync.name,
    gen: () => sync.board.gen,
    tool: () => editor.tool,
    /** The board's objects on the canvas, bottom to top: `[{id, kind, version, left, top, …}]`. */
    objects: () => canvas.getObjects().filter((object) => sync.owns(object)).map((object) => summary(object.hubRecord)),
    record: (id) => structuredClone(sync.board.shown(id)),
    /** Each object's box on the board as drawn (rotation and scale included), to a tenth. */
    bounds: () =>
      Object.fromEntries(
        [...sync.shapes].map(([id, object]) => {
          const { left, top, width, height } = object.getBoundingRect();
          return [id, [left, top, width, height].map((value) => Math.round(value * 10) / 10)];
        }),
      ),
    selected: () => editor.selected().map((object) => object.hubId),
    /** This user's edits not answered by the hub yet. */
    pending: () => sync.board.pending.size,
    history: () => ({ undo: history.undoStack.length, redo: history.redoStack.length }),
    previews: () => peers.strokes(),
    cursors: () => peers.cursors(),
    /** Board coordinates to the page's, for pointer events. */
    toScreen: (x, y) => {
      const box = el.canvas.getBoundingClientRect();
      return { x: box.left + x * scale(), y: box.top + y * scale() };
    },
  });
  globalThis.hubDraw = debugHook;

  return () => {
    offState();
    resizer.disconnect();
    clearTimeout(noticeTimer);
    clearTimeout(errorTimer);
    editor.dispose();
    sync.close();
    if (globalThis.hubDraw === debugHook) delete globalThis.hubDraw;
    canvas.dispose().catch(() => {}); // nothing more to do if the canvas cannot be taken apart
    root.replaceChildren();
  };
}
