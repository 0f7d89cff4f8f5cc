/** The toolbar's icons: 24×24 outline drawings, stroked with the button's text colour. */

const PATHS = {
  select: "M5 3.5l12.5 7.2-5.6 1.4 3.4 6.1-2.3 1.3-3.4-6.1-4.2 3.9z",
  pen: "M4 20l1-4.5L15.5 5a2.1 2.1 0 013 3L8 18.5zM13.5 7l3.5 3.5",
  rect: "M4 6h16v12H4z",
  ellipse: "M12 5.5c4.4 0 8 2.9 8 6.5s-3.6 6.5-8 6.5-8-2.9-8-6.5 3.6-6.5 8-6.5z",
  line: "M5 19L19 5",
  arrow: "M5 19L19 5M10 5h9v9",
  text: "M5 7V5h14v2M12 5v14M9 19h6",
  undo: "M9 14L4 9l5-5M4 9h10.5a5.5 5.5 0 010 11H11",
  redo: "M15 14l5-5-5-5M20 9H9.5a5.5 5.5 0 000 11H13",
  delete: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  clear: "M3 20h18M7.5 16.5L16 5l4 3-8.5 11.5H7.5zM5 16.5l2.5 3",
  png: "M12 4v11M7 10l5 5 5-5M5 20h14",
  json: "M8 4H7a2 2 0 00-2 2v4l-2 2 2 2v4a2 2 0 002 2h1M16 4h1a2 2 0 012 2v4l2 2-2 2v4a2 2 0 01-2 2h-1",
};

const SVG = "http://www.w3.org/2000/svg";

/** An inline SVG icon by name (see PATHS), hidden from screen readers: the button carries the label. */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "draw-icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", PATHS[name]);
  svg.append(path);
  return svg;
}
