/**
 * A live line chart on a <canvas>, for the admin page's traffic (messages in, events out per second): one line per
 * series (a message type or a plugin), the last `capacity` samples, the busiest series drawn and the rest summed
 * as "other". Dependency-free: a few dozen points a second need no charting library.
 */

const PALETTE = ["#3b5bdb", "#2f9e44", "#e8590c", "#ae3ec9", "#0c8599", "#f08c00", "#c2255c", "#5c940d"];
const OTHER = "other";
const OTHER_COLOUR = "#adb5bd";

/** The smallest "nice" number (1, 2 or 5 times a power of ten) at least `value`. */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/** A rate for people: "0", "0.5", "12", "1.2k". */
export function formatRate(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (value >= 10 || Number.isInteger(value)) return String(Math.round(value));
  return value.toFixed(1);
}

/** An axis label: at most two decimals, no trailing zeros ("0.25", "2.5", "10", "1.2k"). */
function formatTick(value) {
  return value >= 1000 ? formatRate(value) : String(Number(value.toFixed(2)));
}

export class RateChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} legend a list the series' names, colours and current rates go in
   * @param {{capacity?: number, lines?: number}} [options] samples kept; series drawn before "other"
   */
  constructor(canvas, legend, { capacity = 60, lines = 6 } = {}) {
    this.canvas = canvas;
    this.legend = legend;
    this.capacity = capacity;
    this.lines = lines;
    /** @type {Map<string, number>[]} the samples, oldest first */
    this.samples = [];
    /** @type {Map<string, string>} series -> colour, kept for the page's life so a series keeps its colour */
    this.colours = new Map();
  }

  /** Forget every sample (a new grouping). */
  clear() {
    this.samples = [];
    this.draw();
  }

  /** Add one sample (series -> rate) and redraw. @param {Map<string, number>} sample */
  push(sample) {
    this.samples.push(sample);
    if (this.samples.length > this.capacity) this.samples.splice(0, this.samples.length - this.capacity);
    this.draw();
  }

  #colour(name) {
    if (name === OTHER) return OTHER_COLOUR;
    let colour = this.colours.get(name);
    if (!colour) {
      colour = PALETTE[this.colours.size % PALETTE.length];
      this.colours.set(name, colour);
    }
    return colour;
  }

  /** The series drawn: the `lines` busiest over the window, then "other" for the rest. */
  series() {
    const totals = new Map();
    for (const sample of this.samples) {
      for (const [name, value] of sample) totals.set(name, (totals.get(name) ?? 0) + value);
    }
    const names = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || a.localeCompare(b));
    const shown = names.slice(0, this.lines);
    const rest = names.slice(this.lines);
    const lines = shown.map((name) => ({ name, values: this.samples.map((s) => s.get(name) ?? 0) }));
    if (rest.length) {
      lines.push({
        name: OTHER,
        values: this.samples.map((s) => rest.reduce((sum, name) => sum + (s.get(name) ?? 0), 0)),
      });
    }
    return lines;
  }

  draw() {
    const canvas = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || canvas.width;
    const cssHeight = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(cssWidth * ratio) || canvas.height !== Math.round(cssHeight * ratio)) {
      canvas.width = Math.round(cssWidth * ratio);
      canvas.height = Math.round(cssHeight * ratio);
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);

    const lines = this.series();
    const pad = { left: 40, right: 10, top: 10, bottom: 20 };
    const width = cssWidth - pad.left - pad.right;
    const height = cssHeight - pad.top - pad.bottom;
    const peak = Math.max(0, ...lines.flatMap((line) => line.values));
    const top = niceCeiling(peak);

    // grid and the y axis's labels
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#667085";
    ctx.strokeStyle = "#e9ecef";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = pad.top + height - (height * i) / 4;
      ctx.beginPath();
      ctx.moveTo(pad.left, Math.round(y) + 0.5);
      ctx.lineTo(pad.left + width, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(formatTick((top * i) / 4), pad.left - 6, y);
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(`${this.capacity} samples ago`, pad.left, cssHeight - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", pad.left + width, cssHeight - 4);

    // one line per series, the newest sample at the right edge
    const step = width / Math.max(1, this.capacity - 1);
    for (const line of lines) {
      const offset = this.capacity - line.values.length;
      ctx.strokeStyle = this.#colour(line.name);
      ctx.lineWidth = 2;
      ctx.beginPath();
      line.values.forEach((value, index) => {
        const x = pad.left + (offset + index) * step;
        const y = pad.top + height - (height * value) / top;
        if (index === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    }
    this.#drawLegend(lines);
  }

  #drawLegend(lines) {
    const items = lines.map((line) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = this.#colour(line.name);
      const name = document.createElement("span");
      name.className = "series";
      name.textContent = line.name;
      const rate = document.createElement("span");
      rate.className = "rate";
      rate.textContent = `${formatRate(line.values.at(-1) ?? 0)}/s`;
      item.dataset.series = line.name;
      item.append(swatch, name, rate);
      return item;
    });
    if (!items.length) {
      const empty = document.createElement("li");
      empty.className = "muted";
      empty.textContent = "No traffic yet.";
      items.push(empty);
    }
    this.legend.replaceChildren(...items);
  }
}
