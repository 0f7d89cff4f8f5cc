/**
 * The others on the board as this tab sees them (docs/draw.md §7): one named cursor per connection, from
 * `draw.cursor_moved`, and the strokes they are drawing right now, from `draw.stroked`. Both are
 * ephemeral: a cursor goes when its pointer leaves, when its connection leaves, or after a while without a
 * move; a stroke goes when its finished path arrives, when its author leaves, or when it stops growing.
 */

import { hue } from "/static/ui.js";
import { createPreview } from "./shapes.js";

const CURSOR_IDLE_MS = 10_000;
const STROKE_IDLE_MS = 3_000;
const MAX_PREVIEW_POINTS = 4000;


const SVG = "http://www.w3.org/2000/svg";

function pointerShape() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "draw-cursor-arrow");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M1 1l5.2 13.5 2-5.6 5.6-2z");
  svg.append(path);
  return svg;
}

export { hue };

export class Peers {
  /** @type {Map<string, {el: HTMLElement, name: string, user: string, x: number, y: number, timer: any}>} */
  #cursors = new Map();
  /** @type {Map<string, {client: string, id: string, points: number[][], style: any, object: any, timer: any}>} */
  #strokes = new Map();

  /**
   * @param {import("./vendor/fabric.mjs").Canvas} canvas where live strokes are drawn
   * @param {HTMLElement} layer the element over the canvas that holds the cursors
   * @param {() => number} scale screen pixels per board unit
   */
  constructor(canvas, layer, scale) {
    this.canvas = canvas;
    this.layer = layer;
    this.scale = scale;
  }

  /** `draw.cursor_moved` of another connection. */
  moveCursor({ client, user, name, x, y }) {
    if (x === null || y === null || x === undefined || y === undefined) {
      this.dropCursor(client);
      return;
    }
    let cursor = this.#cursors.get(client);
    if (!cursor) {
      const label = document.createElement("span");
      label.className = "draw-cursor-name";
      label.textContent = name;
      const el = document.createElement("div");
      el.className = "draw-cursor";
      el.dataset.client = client;
      el.dataset.user = user;
      el.style.setProperty("--peer-hue", String(hue(user)));
      el.append(pointerShape(), label);
      this.layer.append(el);
      cursor = { el, name, user, x, y, timer: null };
      this.#cursors.set(client, cursor);
    }
    Object.assign(cursor, { x, y });
    this.#place(cursor);
    clearTimeout(cursor.timer);
    cursor.timer = setTimeout(() => this.dropCursor(client), CURSOR_IDLE_MS);
  }

  #place(cursor) {
    const scale = this.scale();
    cursor.el.style.transform = `translate(${cursor.x * scale}px, ${cursor.y * scale}px)`;
  }

  dropCursor(client) {
    const cursor = this.#cursors.get(client);
    if (!cursor) return;
    clearTimeout(cursor.timer);
    cursor.el.remove();
    this.#cursors.delete(client);
  }

  /** `draw.stroked` of another connection: draw what it has drawn so far; its cursor follows the pen. */
  extendStroke({ client, user, name, id, points, stroke, stroke_width: strokeWidth, opacity }) {
    const key = `${client}/${id}`;
    let live = this.#strokes.get(key);
    if (!live) {
      const style = { stroke, stroke_width: strokeWidth, opacity };
      live = { client, id, points: [], style, object: null, timer: null };
      this.#strokes.set(key, live);
    }
    if (live.points.length < MAX_PREVIEW_POINTS) live.points.push(...points);
    if (live.object) this.canvas.remove(live.object);
    live.object = createPreview(live.points, live.style);
    this.canvas.add(live.object);
    this.canvas.requestRenderAll();
    clearTimeout(live.timer);
    live.timer = setTimeout(() => this.#dropStroke(key), STROKE_IDLE_MS);
    const [x, y] = points[points.length - 1];
    this.moveCursor({ client, user, name, x, y });
  }

  #dropStroke(key) {
    const live = this.#strokes.get(key);
    if (!live) return;
    clearTimeout(live.timer);
    this.canvas.remove(live.object);
    this.#strokes.delete(key);
    this.canvas.requestRenderAll();
  }

  /** An object with this id is on the board: the stroke it finishes is drawn for real now. */
  arrived(id) {
    for (const [key, live] of this.#strokes) if (live.id === id) this.#dropStroke(key);
  }

  /** A connection left the board. */
  left(client) {
    this.dropCursor(client);
    for (const [key, live] of this.#strokes) if (live.client === client) this.#dropStroke(key);
  }

  /** The presence list: whoever is not on it any more has no cursor and no stroke. */
  keep(members) {
    const present = new Set(members.map((member) => member.client));
    for (const client of [...this.#cursors.keys()]) if (!present.has(client)) this.left(client);
    for (const live of [...this.#strokes.values()]) if (!present.has(live.client)) this.left(live.client);
  }

  /** The panel's size changed. */
  relayout() {
    for (const cursor of this.#cursors.values()) this.#place(cursor);
  }

  /** Another board, or a reconnect: everything ephemeral is gone. */
  reset() {
    for (const client of [...this.#cursors.keys()]) this.dropCursor(client);
    for (const key of [...this.#strokes.keys()]) this.#dropStroke(key);
  }

  isPreview(object) {
    return object.hubPreview === true;
  }

  /** For the debug hook: `[{client, name, x, y}]`. */
  cursors() {
    return [...this.#cursors.entries()].map(([client, { name, user, x, y }]) => ({ client, user, name, x, y }));
  }

  /** For the debug hook: `[{client, id, points}]` (points: how many so far). */
  strokes() {
    return [...this.#strokes.values()].map(({ client, id, points }) => ({ client, id, points: points.length }));
  }
}
