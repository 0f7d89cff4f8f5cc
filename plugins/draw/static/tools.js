/**
 * The drawing tools on the canvas: which there are (with their shortcut keys), the freehand brush that
 * reports its points while the stroke is drawn, and shapes drawn by dragging. What becomes of the result
 * (ids, versions, publishing) is the panel's business.
 */

import { PencilBrush } from "./vendor/fabric.mjs";
import { createShape } from "./shapes.js";

/** The toolbar's tools, in order; `key`: the shortcut (also shown in the tooltip). */
export const TOOLS = [
  { name: "select", label: "Select, move, resize, rotate", key: "v" },
  { name: "pen", label: "Pen", key: "p" },
  { name: "rect", label: "Rectangle", key: "r" },
  { name: "ellipse", label: "Ellipse", key: "o" },
  { name: "line", label: "Line", key: "l" },
  { name: "arrow", label: "Arrow", key: "a" },
  { name: "text", label: "Text", key: "t" },
];

export const SHAPE_TOOLS = new Set(["rect", "ellipse", "line", "arrow"]);

const CLICK = 4; // board units: a drag shorter than this is a click, which makes a shape of the default size
const DEFAULT_SIZE = { rect: [160, 100], ellipse: [140, 100], line: [160, 0], arrow: [160, 0] };

/**
 * Fabric's PencilBrush, telling `listener` about its points as they come (`extend`) and handing the
 * finished stroke over (`end`) instead of adding a path itself: the panel builds the path from the points
 * like every other tab does.
 */
export class StrokeBrush extends PencilBrush {
  #sent = 0;

  /** @param {{begin(): void, extend(points: number[][]): void, end(points: number[][]): void}} listener */
  constructor(canvas, listener) {
    super(canvas);
    this.listener = listener;
    this.straightLineKey = null; // points are only ever appended, so they can be streamed as they come
  }

  onMouseDown(pointer, event) {
    if (!this.canvas._isMainEvent(event.e)) return;
    super.onMouseDown(pointer, event);
    this.#sent = 0;
    this.listener.begin();
    this.#report();
  }

  onMouseMove(pointer, event) {
    super.onMouseMove(pointer, event);
    this.#report();
  }

  #report() {
    const points = this._points;
    if (points.length <= this.#sent) return;
    this.listener.extend(points.slice(this.#sent).map((p) => [p.x, p.y]));
    this.#sent = points.length;
  }

  _finalizeAndAddPath() {
    const ctx = this.canvas.contextTop;
    ctx.closePath();
    const points = this.decimate ? this.decimatePoints(this._points, this.decimate) : this._points;
    this.listener.end(points.map((p) => [p.x, p.y]));
    this.canvas.clearContext(ctx);
    this.canvas.requestRenderAll();
  }
}

/** A rectangle, ellipse, line or arrow being dragged out from `start`. */
export class Drafting {
  constructor(canvas, kind, start, style) {
    this.canvas = canvas;
    this.kind = kind;
    this.start = start;
    this.dx = 0;
    this.dy = 0;
    const { x, y } = start;
    this.object = createShape({
      kind,
      left: x,
      top: y,
      width: 0,
      height: 0,
      x1: x,
      y1: y,
      x2: x,
      y2: y,
      stroke: style.stroke,
      stroke_width: style.strokeWidth,
      fill: style.fill,
    });
    this.object.set({ selectable: false, evented: false });
    canvas.add(this.object);
  }

  /** The pointer is at `point`; `constrain` (Shift): squares and circles, lines at multiples of 15°. */
  move(point, constrain) {
    let dx = point.x - this.start.x;
    let dy = point.y - this.start.y;
    if (constrain && (this.kind === "rect" || this.kind === "ellipse")) {
      const side = Math.max(Math.abs(dx), Math.abs(dy));
      dx = Math.sign(dx || 1) * side;
      dy = Math.sign(dy || 1) * side;
    } else if (constrain) {
      const length = Math.hypot(dx, dy);
      const angle = Math.round(Math.atan2(dy, dx) / (Math.PI / 12)) * (Math.PI / 12);
      dx = Math.cos(angle) * length;
      dy = Math.sin(angle) * length;
    }
    this.#shape(dx, dy);
  }

  #shape(dx, dy) {
    this.dx = dx;
    this.dy = dy;
    const { x, y } = this.start;
    if (this.kind === "line" || this.kind === "arrow") {
      this.object.set({ x2: x + dx, y2: y + dy });
    } else {
      const box = { left: x + Math.min(0, dx), top: y + Math.min(0, dy) };
      if (this.kind === "rect") this.object.set({ ...box, width: Math.abs(dx), height: Math.abs(dy) });
      else this.object.set({ ...box, rx: Math.abs(dx) / 2, ry: Math.abs(dy) / 2 });
    }
    this.object.setCoords();
    this.canvas.requestRenderAll();
  }

  /** The finished shape (a click makes one of the default size), still on the canvas. */
  finish() {
    if (Math.hypot(this.dx, this.dy) < CLICK) {
      const [width, height] = DEFAULT_SIZE[this.kind];
      this.#shape(width, height);
    }
    this.object.set({ selectable: true, evented: true });
    return this.object;
  }

  cancel() {
    this.canvas.remove(this.object);
  }
}
