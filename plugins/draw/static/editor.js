/**
 * What this user does on the canvas: the current tool and style; moving, resizing and rotating with
 * Fabric's controls (published while dragging, one undo step per gesture); the pen, whose points are
 * streamed while the stroke is drawn; shapes dragged out; texts typed in place; and this user's pointer,
 * sent as a cursor. Edits go to the board through BoardSync.
 */

import { ActiveSelection } from "./vendor/fabric.mjs";
import { isLive, randomId } from "./board.js";
import { SELECTION_STYLE, createShape, fitPoints } from "./shapes.js";
import { selectionOf } from "./sync.js";
import { Drafting, SHAPE_TOOLS, StrokeBrush } from "./tools.js";

const STROKE_INTERVAL_MS = 50; // draw.stroke while drawing (stroke_rate: 20/s)
const CURSOR_INTERVAL_MS = 70; // draw.cursor (cursor_rate: 15/s)
const DRAG_INTERVAL_MS = 100; // draw.put while dragging (put_rate: 20/s)
const TEXT_INTERVAL_MS = 300; // draw.put while typing
const TEXT_SIZE = 36;

const isPrimary = (event) => !("button" in event.e) || event.e.button === 0;
const roundPoint = (point) => ({ x: Math.round(point.x * 10) / 10, y: Math.round(point.y * 10) / 10 });

export class Editor {
  tool = "select";
  /** The style of what is drawn next, and of the selection when it changes. */
  style = { stroke: "#1f2937", fill: null, strokeWidth: 4 };
  #gesture = null; // a move/resize/rotate in progress: {targets, before, timer}
  #drafting = null; // a shape being dragged out
  #stroke = null; // a freehand stroke being drawn: {id, buffer, timer, style}
  #editing = null; // a text being edited: {object, before, timer, sent}
  #cursor = { point: null, timer: null, sentAt: 0 };

  /**
   * @param {import("./vendor/fabric.mjs").Canvas} canvas
   * @param {import("./sync.js").BoardSync} sync
   * @param {{toolChanged(name: string): void, selectionChanged(objects: any[]): void}} hooks
   */
  constructor(canvas, sync, hooks) {
    this.canvas = canvas;
    this.sync = sync;
    this.hooks = hooks;
    this.brush = new StrokeBrush(canvas, {
      begin: () => this.#beginStroke(),
      extend: (points) => this.#stroke?.buffer.push(...points),
      end: (points) => this.#endStroke(points),
    });
    canvas.freeDrawingBrush = this.brush;
    this.#applyBrush();
    this.#listen();
    this.setTool("select");
  }

  /** Whether this user is changing the object right now (others' edits of it wait until they are done). */
  isBusy(object) {
    return Boolean(object.isEditing || this.#gesture?.targets.includes(object) || this.#drafting?.object === object);
  }

  setTool(name) {
    this.#drafting?.cancel();
    this.#drafting = null;
    this.tool = name;
    if (name !== "select") this.canvas.discardActiveObject();
    this.canvas.isDrawingMode = name === "pen";
    this.canvas.selection = name === "select";
    this.canvas.skipTargetFind = name !== "select";
    this.canvas.defaultCursor = name === "select" ? "default" : name === "text" ? "text" : "crosshair";
    this.canvas.requestRenderAll();
    this.hooks.toolChanged(name);
  }

  /** The board's objects that are selected. */
  selected() {
    return this.canvas.getActiveObjects().filter((object) => this.sync.owns(object));
  }

  deleteSelected() {
    const targets = this.selected();
    if (targets.length) this.sync.remove(targets);
  }

  selectAll() {
    if (this.tool !== "select") this.setTool("select");
    const objects = [...this.sync.shapes.values()];
    if (!objects.length) return;
    this.canvas.discardActiveObject();
    const selection = objects.length === 1 ? objects[0] : new ActiveSelection(objects, { canvas: this.canvas });
    this.canvas.setActiveObject(selection);
    this.canvas.requestRenderAll();
  }

  /** Escape: drop a shape being drawn, then the selection, then the tool. */
  escape() {
    if (this.#drafting) this.setTool(this.tool);
    else if (this.canvas.getActiveObject()) this.canvas.discardActiveObject();
    else this.setTool("select");
    this.canvas.requestRenderAll();
  }

  /**
   * Change one style property (`stroke`, `fill`, `strokeWidth`): for what is drawn next, and for the
   * selected objects, shown at once; `final` (the input's change event) publishes it as one undo step.
   */
  setStyle(property, value, { final }) {
    this.style[property] = value;
    this.#applyBrush();
    const targets = this.selected();
    for (const object of targets) {
      const kind = object.hubKind;
      if (property === "stroke") object.set(kind === "text" ? { fill: value } : { stroke: value });
      if (property === "fill" && (kind === "rect" || kind === "ellipse")) object.set({ fill: value });
      if (property === "strokeWidth" && kind !== "text") object.set({ strokeWidth: value });
      object.setCoords();
    }
    this.canvas.requestRenderAll();
    if (!final || !targets.length) return;
    const before = new Map(targets.map((object) => [object.hubId, this.sync.board.shown(object.hubId)]));
    const records = this.sync.editsOf(targets);
    const changes = records.map((record) => {
      return { id: record.id, before: before.get(record.id), after: record, sent: record };
    });
    this.sync.commit(records, { changes });
  }

  #applyBrush() {
    this.brush.color = this.style.stroke;
    this.brush.width = this.style.strokeWidth;
  }

  /** Another board: whatever was in progress is dropped. */
  reset() {
    this.#drafting?.cancel();
    this.#drafting = null;
    this.#gesture = null;
    this.#editing = null;
    if (this.#stroke) clearInterval(this.#stroke.timer);
    this.#stroke = null;
  }

  dispose() {
    this.reset();
    clearTimeout(this.#cursor.timer);
  }

  #listen() {
    const { canvas } = this;
    canvas.on("before:transform", ({ transform }) => this.#beginGesture(transform.target));
    for (const name of ["object:moving", "object:scaling", "object:rotating", "object:skewing", "object:resizing"]) {
      canvas.on(name, () => this.#gestureMoved());
    }
    canvas.on("object:modified", () => this.#endGesture());
    canvas.on("mouse:down", (event) => {
      if (SHAPE_TOOLS.has(this.tool) && !this.#drafting && isPrimary(event)) {
        this.#drafting = new Drafting(canvas, this.tool, event.scenePoint, this.style);
      }
    });
    canvas.on("mouse:move", (event) => {
      this.#drafting?.move(event.scenePoint, event.e.shiftKey);
      if (!this.#stroke) this.sendCursor(event.scenePoint);
    });
    canvas.on("mouse:up", (event) => {
      if (this.#drafting) this.#endDrafting();
      else if (this.tool === "text" && isPrimary(event)) this.#startText(event.scenePoint);
      this.#endGesture();
      this.sync.flushStale();
    });
    canvas.on("mouse:dblclick", (event) => {
      if (this.tool === "select" && !event.target && isPrimary(event)) this.#startText(event.scenePoint);
    });
    canvas.on("text:editing:entered", ({ target }) => {
      const before = this.sync.owns(target) ? this.sync.board.shown(target.hubId) : null;
      this.#editing = { object: target, before, timer: null, sent: false };
    });
    canvas.on("text:changed", ({ target }) => this.#textChanged(target));
    canvas.on("text:editing:exited", ({ target }) => this.#endText(target));
    const selectionChanged = () => {
      const active = canvas.getActiveObject();
      if (active instanceof ActiveSelection) active.set(SELECTION_STYLE);
      this.hooks.selectionChanged(this.selected());
    };
    canvas.on("selection:created", selectionChanged);
    canvas.on("selection:updated", selectionChanged);
    canvas.on("selection:cleared", selectionChanged);
  }

  // ---- move, resize, rotate -------------------------------------------------------------------------

  #beginGesture(target) {
    const targets = selectionOf(target).filter((object) => this.sync.owns(object));
    const before = new Map(targets.map((object) => [object.hubId, this.sync.board.shown(object.hubId)]));
    this.#gesture = { targets, before, timer: null };
  }

  /** While dragging, the others see the objects move: a put every DRAG_INTERVAL_MS. */
  #gestureMoved() {
    const gesture = this.#gesture;
    if (!gesture || gesture.timer) return;
    gesture.timer = setTimeout(() => {
      gesture.timer = null;
      if (this.#gesture === gesture) this.sync.commit(this.sync.editsOf(gesture.targets), { quiet: true });
    }, DRAG_INTERVAL_MS);
  }

  #endGesture() {
    const gesture = this.#gesture;
    this.#gesture = null;
    if (!gesture) return;
    clearTimeout(gesture.timer);
    const records = this.sync.editsOf(gesture.targets);
    const changes = gesture.targets
      .filter((object) => this.sync.owns(object))
      .map((object) => {
        const sent = records.find((record) => record.id === object.hubId) ?? null;
        const after = sent ?? this.sync.board.shown(object.hubId);
        return { id: object.hubId, before: gesture.before.get(object.hubId), after, sent };
      });
    if (records.length) this.sync.commit(records, { changes });
    else this.sync.remember(changes); // the puts made while dragging moved them all the way
  }

  // ---- the pen ----------------------------------------------------------------------------------------

  #beginStroke() {
    const { stroke, strokeWidth } = this.style;
    this.#stroke = {
      id: randomId("path"),
      buffer: [],
      style: { stroke, stroke_width: strokeWidth, opacity: 1 },
      timer: setInterval(() => this.#flushStroke(), STROKE_INTERVAL_MS),
    };
    this.sendCursor(null); // while drawing, the stroke shows where the pen is
  }

  #flushStroke() {
    const stroke = this.#stroke;
    if (!stroke?.buffer.length || !this.sync.isOpen) return;
    // Best effort: the put that ends the stroke carries every point.
    this.sync.ephemeral("draw.stroke", { id: stroke.id, points: fitPoints(stroke.buffer.splice(0), this.sync.limits), ...stroke.style });
  }

  #endStroke(rawPoints) {
    const stroke = this.#stroke;
    this.#stroke = null;
    if (!stroke) return;
    clearInterval(stroke.timer);
    const points = fitPoints(rawPoints, this.sync.limits);
    if (!points.length) return;
    const object = createShape({ kind: "path", id: stroke.id, points, fill: null, ...stroke.style });
    this.canvas.add(object);
    const record = this.sync.adopt(object, "path");
    this.sync.commit([record], { changes: [{ id: record.id, before: null, after: record, sent: record }] });
  }

  // ---- shapes -----------------------------------------------------------------------------------------

  #endDrafting() {
    const drafting = this.#drafting;
    this.#drafting = null;
    const object = drafting.finish();
    const record = this.sync.adopt(object, drafting.kind);
    this.sync.commit([record], { changes: [{ id: record.id, before: null, after: record, sent: record }] });
    this.setTool("select");
    this.canvas.setActiveObject(object);
  }

  // ---- text -------------------------------------------------------------------------------------------

  #startText(point) {
    const object = createShape({
      kind: "text",
      text: "",
      left: point.x,
      top: point.y - TEXT_SIZE * 0.6,
      fill: this.style.stroke,
      stroke: null,
      stroke_width: 0,
      font_size: TEXT_SIZE,
    });
    object.hubId = randomId("text");
    this.canvas.add(object);
    this.setTool("select");
    this.canvas.setActiveObject(object);
    object.enterEditing();
    this.canvas.requestRenderAll();
  }

  #textChanged(target) {
    const editing = this.#editing;
    if (!editing || editing.object !== target || editing.timer) return;
    editing.timer = setTimeout(() => {
      editing.timer = null;
      if (this.#editing === editing && this.#saveText(target, { final: false })) editing.sent = true;
    }, TEXT_INTERVAL_MS);
  }

  #endText(target) {
    const editing = this.#editing?.object === target ? this.#editing : { before: null, timer: null, sent: false };
    this.#editing = null;
    clearTimeout(editing.timer);
    if (target.hubGone) return; // deleted by someone else meanwhile
    const sent = this.#saveText(target, { final: true });
    if (sent || editing.sent) {
      const after = this.sync.board.shown(target.hubId);
      this.sync.remember([{ id: target.hubId, before: editing.before, after: isLive(after) ? after : null, sent }]);
    }
    this.sync.flushStale();
  }

  /** Publish a text being edited; returns the record sent, if any. A text emptied for good is deleted. */
  #saveText(object, { final }) {
    const id = object.hubId;
    const published = this.sync.owns(object);
    if (!object.text.trim()) {
      if (!final) return null;
      if (!published) {
        this.canvas.remove(object);
        return null;
      }
      const tombstone = { id, ...this.sync.board.nextStamp(id), deleted: true };
      this.sync.commit([tombstone]);
      return tombstone;
    }
    if (!published) {
      const record = this.sync.adopt(object, "text");
      this.sync.commit([record], { quiet: !final });
      return record;
    }
    const [record] = this.sync.editsOf([object]);
    if (record) this.sync.commit([record], { quiet: !final });
    return record ?? null;
  }

  // ---- this user's cursor -----------------------------------------------------------------------------

  /** Where this user's pointer is on the board (null: off it), throttled to the cursor rate limit. */
  sendCursor(point) {
    const cursor = this.#cursor;
    cursor.point = point ? roundPoint(point) : null;
    if (cursor.timer) return;
    const wait = Math.max(0, cursor.sentAt + CURSOR_INTERVAL_MS - performance.now());
    cursor.timer = setTimeout(() => {
      cursor.timer = null;
      cursor.sentAt = performance.now();
      this.sync.ephemeral("draw.cursor", cursor.point ?? { x: null, y: null });
    }, wait);
  }
}
