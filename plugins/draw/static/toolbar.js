/**
 * The draw panel's markup: the board tabs and who is here, the toolbar (tools, style, undo/redo/delete,
 * clear with its confirmation, exports), the stage that holds the canvas and the cursors, and the status
 * line. Only elements here; what they do is wired in panel.js.
 */

import { h } from "/static/ui.js";
import { icon } from "./icons.js";
import { TOOLS } from "./tools.js";


function button(name, label, { shortcut, className = "" } = {}) {
  const title = shortcut ? `${label} (${shortcut})` : label;
  return h(
    "button",
    { type: "button", class: `draw-button ${className}`.trim(), title, "aria-label": label, dataset: { action: name } },
    icon(name),
  );
}

/** Every element the panel talks to, by role. */
export { h };

export function buildPanel({ maxBoardLength }) {
  const el = {};
  el.boardTabs = h("nav", { class: "draw-boards", "aria-label": "Boards" });
  el.joinInput = h("input", {
    class: "draw-join-input",
    placeholder: "Open a board…",
    maxLength: maxBoardLength,
    autocomplete: "off",
    "aria-label": "Board name",
  });
  el.joinForm = h("form", { class: "draw-join" }, el.joinInput, h("button", { type: "submit" }, "Open"));
  el.people = h("ul", { class: "draw-people", "aria-label": "Who is on this board" });

  el.tools = new Map(
    TOOLS.map(({ name, label, key }) => {
      const tool = button(name, label, { shortcut: key.toUpperCase(), className: "draw-tool" });
      tool.dataset.tool = name;
      tool.setAttribute("aria-pressed", "false");
      return [name, tool];
    }),
  );

  el.strokeInput = h("input", { type: "color", class: "draw-stroke", value: "#1f2937", title: "Line and text colour" });
  el.fillInput = h("input", { type: "color", class: "draw-fill", value: "#ffd43b", title: "Fill colour" });
  el.noFill = h(
    "button",
    { type: "button", class: "draw-button draw-no-fill", title: "No fill", "aria-pressed": "true" },
    h("span", { class: "draw-no-fill-swatch", "aria-hidden": "true" }),
  );
  el.widthInput = h("input", {
    type: "range",
    class: "draw-width",
    min: 1,
    max: 40,
    step: 1,
    value: 4,
    title: "Line width",
  });
  el.widthValue = h("output", { class: "draw-width-value" }, "4");

  el.undo = button("undo", "Undo", { shortcut: "Ctrl+Z" });
  el.redo = button("redo", "Redo", { shortcut: "Ctrl+Shift+Z" });
  el.remove = button("delete", "Delete selected", { shortcut: "Del" });

  el.clear = h(
    "button",
    {
      type: "button",
      class: "draw-button draw-clear",
      title: "Clear the board for everyone…",
      dataset: { action: "clear" },
    },
    icon("clear"),
    h("span", {}, "Clear"),
  );
  el.clearConfirm = h("button", { type: "button", class: "draw-clear-confirm" }, "Clear");
  el.clearCancel = h("button", { type: "button", class: "draw-clear-cancel" }, "Cancel");
  el.confirm = h(
    "span",
    { class: "draw-confirm", role: "group", "aria-label": "Confirm clearing the board", hidden: true },
    h("span", { class: "draw-confirm-text" }, "Clear for everyone?"),
    el.clearConfirm,
    el.clearCancel,
  );
  el.png = h(
    "button",
    { type: "button", class: "draw-button draw-png", title: "Download the board as a PNG image" },
    icon("png"),
    h("span", {}, "PNG"),
  );
  el.json = h(
    "a",
    {
      class: "draw-button draw-json",
      title: "The board's objects as JSON (server export)",
      target: "_blank",
      rel: "noopener",
    },
    icon("json"),
    h("span", {}, "JSON"),
  );

  el.toolbar = h(
    "div",
    { class: "draw-toolbar", role: "toolbar", "aria-label": "Drawing tools" },
    h("div", { class: "draw-group draw-tools" }, ...el.tools.values()),
    h(
      "div",
      { class: "draw-group draw-style" },
      h("label", { class: "draw-swatch", title: "Line and text colour" }, el.strokeInput, h("span", {}, "Line")),
      h("label", { class: "draw-swatch", title: "Fill colour" }, el.fillInput, h("span", {}, "Fill")),
      el.noFill,
      h("label", { class: "draw-width-label", title: "Line width" }, el.widthInput, el.widthValue),
    ),
    h("div", { class: "draw-group draw-edit" }, el.undo, el.redo, el.remove),
    h("div", { class: "draw-group draw-actions" }, el.clear, el.confirm, el.png, el.json),
  );

  el.canvas = h("canvas");
  el.cursors = h("div", { class: "draw-cursors", "aria-hidden": "true" });
  el.surface = h("div", { class: "draw-surface" }, el.canvas, el.cursors);
  el.offline = h(
    "div",
    { class: "draw-offline", role: "status" },
    "Reconnecting… your changes will be sent when the hub is back.",
  );
  el.stage = h("div", { class: "draw-stage", tabindex: 0, "aria-label": "Whiteboard" }, el.surface, el.offline);

  el.notice = h("span", { class: "draw-notice", role: "status" });
  el.error = h("span", { class: "draw-error", role: "alert", title: "Click to dismiss" });
  el.count = h("span", { class: "draw-count" });
  el.status = h("div", { class: "draw-status" }, el.notice, el.error, el.count);

  el.root = h(
    "div",
    { class: "draw" },
    h("div", { class: "draw-header" }, el.boardTabs, el.joinForm, el.people),
    el.toolbar,
    el.stage,
    el.status,
  );
  return el;
}
