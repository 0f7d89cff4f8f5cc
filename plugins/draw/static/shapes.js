/**
 * Wire objects (docs/draw.md §2) to Fabric objects and back. Every tab builds a Fabric object from a record
 * the same way, so that all of them draw a board alike; positions are Fabric's `left`/`top` with the origin
 * at the top-left corner (Fabric 7's default origin is the centre; the wire format keeps the corner).
 */

import { Color, Ellipse, IText, Line, Path, Point, Rect, util } from "./vendor/fabric.mjs";

/** The logical board every tab draws on, scaled to the panel's width. */
export const BOARD_WIDTH = 1600;
export const BOARD_HEIGHT = 1000;

export const FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

/** The hub's defaults (docs/draw.md §8); the board's snapshot brings the limits of the hub at hand. */
export const DEFAULT_LIMITS = { max_points: 2000, max_object_bytes: 32_768, max_put_objects: 100 };
const HEX_COLOUR = /^#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/;

/** How a selected object (or a selection of several) shows its box and handles. */
export const SELECTION_STYLE = {
  borderColor: "#3b5bdb",
  cornerColor: "#ffffff",
  cornerStrokeColor: "#3b5bdb",
  cornerStyle: "circle",
  cornerSize: 10,
  transparentCorners: false,
  padding: 2,
};

/** Fabric options every board object shares. */
const COMMON = {
  originX: "left",
  originY: "top",
  strokeUniform: true, // a resized shape keeps its line width, as on paper
  ...SELECTION_STYLE,
};

/** A line with a filled head at (`x2`, `y2`). */
export class Arrow extends Line {
  static type = "HubArrow";

  constructor(points, options) {
    super(points, { ...options, objectCaching: false }); // the head reaches past the line's box
  }

  _render(ctx) {
    const { x1, y1, x2, y2 } = this.calcLinePoints();
    const direction = Math.atan2(y2 - y1, x2 - x1);
    const length = Math.hypot(x2 - x1, y2 - y1);
    const head = Math.min(Math.max(18, this.strokeWidth * 5), length * 0.6 || 18);
    const shaft = Math.max(0, length - head * 0.7);
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x1 + Math.cos(direction) * shaft, y1 + Math.sin(direction) * shaft);
    this._renderStroke(ctx);
    ctx.beginPath();
    ctx.moveTo(x2, y2);
    ctx.lineTo(x2 - head * Math.cos(direction - 0.45), y2 - head * Math.sin(direction - 0.45));
    ctx.lineTo(x2 - head * Math.cos(direction + 0.45), y2 - head * Math.sin(direction + 0.45));
    ctx.closePath();
    ctx.save();
    ctx.fillStyle = this.stroke ?? "#000000";
    ctx.fill();
    ctx.restore();
  }
}

const round = (value, digits = 2) => {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
};

/** A colour as the wire wants it (`#rrggbb`…), or null. */
function hexColour(value) {
  if (value === null || value === undefined || value === "" || value === "transparent") return null;
  if (typeof value !== "string") return null; // a gradient or a pattern: not something this panel makes
  return HEX_COLOUR.test(value) ? value : `#${new Color(value).toHex()}`;
}

/**
 * Points rounded to a tenth (docs/draw.md §2), thinned until they fit the hub's `limits`: a tenth below
 * max_points, and points' JSON in under three quarters of max_object_bytes (the rest of a path's JSON is
 * small), so a long stroke is simplified rather than refused.
 */
export function fitPoints(points, limits = DEFAULT_LIMITS) {
  const maxPoints = Math.max(2, Math.floor(limits.max_points * 0.9));
  const maxChars = Math.floor(limits.max_object_bytes * 0.73);
  let fitted = points.map(([x, y]) => [round(x, 1), round(y, 1)]);
  fitted = fitted.filter((p, i) => i === 0 || p[0] !== fitted[i - 1][0] || p[1] !== fitted[i - 1][1]);
  while (fitted.length > 2 && (fitted.length > maxPoints || JSON.stringify(fitted).length > maxChars)) {
    const last = fitted[fitted.length - 1];
    fitted = fitted.filter((_, i) => i % 2 === 0);
    if (fitted[fitted.length - 1] !== last) fitted.push(last);
  }
  return fitted;
}

/** Fabric's smoothed path through `points`, as its PencilBrush draws it. */
export function smoothPath(points, strokeWidth) {
  const list = points.map(([x, y]) => new Point(x, y));
  if (list.length === 1) list.push(new Point(list[0].x, list[0].y));
  return util.getSmoothPathFromPoints(list, strokeWidth / 1000);
}

function styleOptions(record) {
  if (record.kind === "text") {
    return {
      fill: record.fill ?? "#000000",
      stroke: record.stroke ?? null,
      strokeWidth: record.stroke ? record.stroke_width : 0,
      opacity: record.opacity ?? 1,
    };
  }
  return {
    stroke: record.stroke ?? null,
    strokeWidth: record.stroke_width ?? 2,
    fill: record.kind === "path" || record.kind === "line" || record.kind === "arrow" ? null : (record.fill ?? null),
    opacity: record.opacity ?? 1,
  };
}

const safeScale = (value) => Math.max(Math.abs(value ?? 1), 0.001);

function placement(record) {
  const options = {
    angle: record.angle ?? 0,
    scaleX: safeScale(record.scale_x),
    scaleY: safeScale(record.scale_y),
    flipX: (record.scale_x ?? 1) < 0,
    flipY: (record.scale_y ?? 1) < 0,
  };
  if (record.left !== undefined) options.left = record.left;
  if (record.top !== undefined) options.top = record.top;
  return options;
}

function tag(object, record) {
  object.hubId = record.id;
  object.hubKind = record.kind;
  object.hubPoints = record.points;
  return object;
}

/** A new Fabric object for a record (a wire object; `left`/`top` may be missing for a fresh path). */
export function createShape(record) {
  const options = { ...COMMON, ...styleOptions(record), ...placement(record) };
  const width = record.width ?? 0;
  const height = record.height ?? 0;
  const ends = [record.x1 ?? 0, record.y1 ?? 0, record.x2 ?? 0, record.y2 ?? 0];
  switch (record.kind) {
    case "rect":
      return tag(new Rect({ ...options, width, height, strokeLineJoin: "round" }), record);
    case "ellipse":
      return tag(new Ellipse({ ...options, rx: width / 2, ry: height / 2 }), record);
    case "line":
      return tag(new Line(ends, { ...options, strokeLineCap: "round", perPixelTargetFind: true }), record);
    case "arrow":
      return tag(new Arrow(ends, { ...options, strokeLineCap: "round", perPixelTargetFind: true }), record);
    case "text":
      return tag(
        new IText(record.text ?? "", { ...options, fontSize: record.font_size ?? 24, fontFamily: FONT_FAMILY }),
        record,
      );
    case "path":
      return tag(
        new Path(smoothPath(record.points, options.strokeWidth), {
          ...options,
          strokeLineCap: "round",
          strokeLineJoin: "round",
          perPixelTargetFind: true,
        }),
        record,
      );
    default:
      throw new Error(`unknown kind of object: ${record.kind}`);
  }
}

const samePoints = (a, b) => a === b || (a?.length === b?.length && JSON.stringify(a) === JSON.stringify(b));

/** Bring a Fabric object to a record; false when it must be replaced (another kind, other points). */
export function updateShape(object, record) {
  if (object.hubKind !== record.kind) return false;
  if (record.kind === "path" && !samePoints(object.hubPoints, record.points)) return false;
  const options = styleOptions(record);
  if (record.kind === "rect") Object.assign(options, { width: record.width, height: record.height });
  if (record.kind === "ellipse") Object.assign(options, { rx: record.width / 2, ry: record.height / 2 });
  if (record.kind === "text") Object.assign(options, { text: record.text, fontSize: record.font_size ?? 24 });
  if (record.kind === "line" || record.kind === "arrow") {
    object.set({ x1: record.x1, y1: record.y1, x2: record.x2, y2: record.y2 }); // moves the line: placed below
  }
  object.set(options);
  object.set(placement(record));
  object.setCoords();
  return true;
}

/**
 * Where an object is on the board. Inside a multiple selection Fabric keeps positions relative to the
 * selection; a stand-in with the same box takes the object's whole transform instead.
 */
function geometry(object) {
  if (!object.group) {
    const { left, top, angle, scaleX, scaleY, flipX, flipY } = object;
    return { left, top, angle, scaleX, scaleY, flipX, flipY };
  }
  const standIn = new Rect({
    originX: "left",
    originY: "top",
    width: object.width,
    height: object.height,
    strokeWidth: object.strokeWidth,
    strokeUniform: object.strokeUniform,
  });
  util.applyTransformToObject(standIn, object.calcTransformMatrix());
  const center = standIn.getCenterPoint();
  standIn.set({
    flipX: standIn.scaleX < 0,
    flipY: standIn.scaleY < 0,
    scaleX: Math.abs(standIn.scaleX),
    scaleY: Math.abs(standIn.scaleY),
    skewX: 0,
    skewY: 0,
  });
  standIn.setPositionByOrigin(center, "center", "center");
  const { left, top, angle, scaleX, scaleY, flipX, flipY } = standIn;
  return { left, top, angle, scaleX, scaleY, flipX, flipY };
}

const normalAngle = (angle) => round(((angle % 360) + 360) % 360);

/** The wire fields of a Fabric object (all but `kind`, `id`, `version`, `nonce`, `z`), on the board's plane. */
export function readShape(object) {
  const g = geometry(object);
  const fields = {
    left: round(g.left),
    top: round(g.top),
    width: round(Math.max(object.width, 0)),
    height: round(Math.max(object.height, 0)),
    angle: normalAngle(g.angle),
    scale_x: round(g.scaleX * (g.flipX ? -1 : 1), 4),
    scale_y: round(g.scaleY * (g.flipY ? -1 : 1), 4),
    stroke: hexColour(object.stroke),
    stroke_width: round(object.strokeWidth),
    fill: hexColour(object.fill),
    opacity: round(object.opacity, 3),
  };
  switch (object.hubKind) {
    case "ellipse":
      return { ...fields, width: round(object.rx * 2), height: round(object.ry * 2) };
    case "line":
    case "arrow":
      return {
        ...fields,
        fill: null,
        x1: round(object.x1),
        y1: round(object.y1),
        x2: round(object.x2),
        y2: round(object.y2),
      };
    case "text":
      return { ...fields, text: object.text, font_size: round(object.fontSize) };
    case "path":
      return { ...fields, fill: null, points: object.hubPoints };
    default:
      return fields;
  }
}

/** A stroke someone else is drawing: not selectable, redrawn as its points arrive. */
export function createPreview(points, { stroke, stroke_width: strokeWidth, opacity }) {
  const preview = new Path(smoothPath(points, strokeWidth), {
    originX: "left",
    originY: "top",
    fill: null,
    stroke: stroke ?? "#000000",
    strokeWidth,
    opacity: opacity ?? 1,
    strokeLineCap: "round",
    strokeLineJoin: "round",
    selectable: false,
    evented: false,
    objectCaching: false,
    excludeFromExport: true,
  });
  preview.hubPreview = true;
  return preview;
}
