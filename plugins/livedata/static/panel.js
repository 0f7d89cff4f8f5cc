/**
 * The livedata panel for the demo shell: every symbol with its live price, change since the open (green or
 * red), a sparkline of the recent history, and a Follow toggle per symbol (remembered in localStorage).
 *
 * Panel contract (docs/client.md): `mount(root, hub, ctx)` builds the UI inside `root`, talks to the hub
 * only through the shared `hub`, and returns a cleanup function. Wire shapes are those of
 * plugins/livedata/messages.py: channel `livedata:<symbol>`, event `livedata.tick` (a quote:
 * `{symbol, price, change, ts, seq}`), snapshot `{symbol, open, last, history: [{seq, ts, price}]}`; the
 * symbol list comes from `GET /api/livedata/symbols`.
 */

import { ensureStylesheet, h } from "/static/ui.js";

const STORAGE_KEY = "hub.livedata.followed";
const DEFAULT_FOLLOWED = 8; // with nothing saved, follow the first few symbols
const HISTORY_MAX = 240; // points kept per symbol for its sparkline (the snapshot brings up to 60)
const STALE_REPEAT = 10; // a tick this many seqs behind the last one is a repeat (ignored); further back, a new session
const SVG_NS = "http://www.w3.org/2000/svg";
const SPARK_W = 120;
const SPARK_H = 28;

/** @returns {string[] | null} the saved followed symbols, or null when nothing (usable) is saved */
function loadFollowed() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    if (Array.isArray(saved) && saved.every((symbol) => typeof symbol === "string")) return saved;
  } catch {
    // storage unavailable or corrupt: use the default
  }
  return null;
}

function saveFollowed(symbols) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(symbols));
  } catch {
    // storage unavailable (private mode): the choice lasts as long as the page
  }
}

function formatPrice(price) {
  const digits = price < 1 ? 4 : 2;
  return price.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatChange(change, open) {
  const sign = change > 0 ? "+" : change < 0 ? "−" : "±";
  const abs = Math.abs(change).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
  const pct = open ? ` (${sign}${Math.abs((change / open) * 100).toFixed(2)}%)` : "";
  return `${sign}${abs}${pct}`;
}

function direction(change) {
  return change > 0 ? "up" : change < 0 ? "down" : "flat";
}

function svg(tag, attrs = {}) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
}

/** The polyline points of a sparkline for these prices (oldest first), scaled into the SVG box. */
function sparkPoints(prices) {
  if (prices.length === 0) return "";
  const min = Math.min(...prices);
  const max = Math.max(...prices);
  const span = max - min || 1;
  const step = prices.length > 1 ? SPARK_W / (prices.length - 1) : 0;
  return prices
    .map((price, i) => {
      const x = prices.length > 1 ? i * step : SPARK_W;
      const y = max === min ? SPARK_H / 2 : SPARK_H - 2 - ((price - min) / span) * (SPARK_H - 4);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

/** Authorization for the symbol list: the demo's token from the URL fragment, else this guest's resume token. */
function authHeaders(hub) {
  const token = new URLSearchParams(location.hash.replace(/^#/, "")).get("token") ?? hub.hello?.resume ?? null;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * @param {HTMLElement} root
 * @param {import("/hub.js").Hub} hub
 * @param {{name: string}} _ctx
 * @returns {Promise<() => void>} cleanup
 */
export default async function mount(root, hub, _ctx) {
  ensureStylesheet(new URL("./livedata.css", import.meta.url).href);
  const summary = h("span", { class: "livedata-summary", "aria-live": "polite" });
  const errorLine = h("div", { class: "livedata-error", role: "alert" });
  const body = h("tbody");
  const table = h(
    "table",
    { class: "livedata-table" },
    h("caption", { class: "livedata-caption" }, "Live prices (change since the session's open)"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Symbol"),
        h("th", { scope: "col", class: "num" }, "Price"),
        h("th", { scope: "col", class: "num" }, "Change"),
        h("th", { scope: "col", class: "livedata-spark-cell" }, "Recent"), // hidden with its cells when narrow
        h("th", { scope: "col" }, h("span", { class: "livedata-sr" }, "Follow")),
      ),
    ),
    body,
  );
  const container = h(
    "div",
    { class: "livedata" },
    h("div", { class: "livedata-toolbar" }, summary),
    errorLine,
    h("div", { class: "livedata-scroll" }, table), // a narrow panel scrolls the table rather than clipping it
  );
  root.replaceChildren(container);

  /** @type {Map<string, any>} symbol -> its row: elements, subscription and data */
  const rows = new Map();
  const dirty = new Set();
  let frame = 0;
  let errorTimer = null;
  let closed = false;
  const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

  function showError(text) {
    errorLine.textContent = text;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => (errorLine.textContent = ""), 8000);
  }

  function renderSummary() {
    const followed = [...rows.values()].filter((row) => row.unsubscribe).length;
    summary.textContent = `Following ${followed} of ${rows.size} symbol${rows.size === 1 ? "" : "s"}`;
  }

  function persist() {
    saveFollowed([...rows.values()].filter((row) => row.unsubscribe).map((row) => row.symbol));
  }

  // ---- rendering, batched into one animation frame ----------------------------------------------------
  function schedule(row) {
    dirty.add(row);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    for (const row of dirty) render(row);
    dirty.clear();
  }

  function render(row) {
    const { els, last } = row;
    row.tr.dataset.followed = String(Boolean(row.unsubscribe));
    els.toggle.setAttribute("aria-pressed", String(Boolean(row.unsubscribe)));
    els.toggle.textContent = row.unsubscribe ? "Following" : "Follow";
    els.toggle.title = row.unsubscribe ? `Stop following ${row.symbol}` : `Follow ${row.symbol}`;
    if (!last) {
      els.price.textContent = "–";
      els.change.textContent = row.unsubscribe ? "waiting…" : "";
      els.change.dataset.dir = "flat";
    } else {
      const previous = els.price.dataset.price;
      els.price.textContent = formatPrice(last.price);
      els.price.dataset.price = String(last.price);
      row.tr.dataset.seq = String(last.seq);
      els.change.textContent = formatChange(last.change, row.open);
      els.change.dataset.dir = direction(last.change);
      if (previous !== undefined && Number(previous) !== last.price && !reducedMotion.matches) {
        const flash = last.price > Number(previous) ? "flash-up" : "flash-down";
        els.price.classList.remove("flash-up", "flash-down");
        void els.price.offsetWidth; // restart the animation
        els.price.classList.add(flash);
      }
    }
    const prices = row.history.map((point) => point.price);
    els.line.setAttribute("points", sparkPoints(prices));
    els.spark.dataset.points = String(prices.length);
    els.spark.dataset.dir = prices.length > 1 ? direction(prices.at(-1) - prices[0]) : "flat";
    els.spark.setAttribute(
      "aria-label",
      prices.length > 1
        ? `${row.symbol}: ${prices.length} recent prices, from ${formatPrice(prices[0])} to ${formatPrice(prices.at(-1))}`
        : `${row.symbol}: no recent prices yet`,
    );
  }

  // ---- data ------------------------------------------------------------------------------------------
  function applySnapshot(row, snapshot) {
    row.open = snapshot?.open ?? null;
    row.last = snapshot?.last ?? null;
    row.history = (snapshot?.history ?? []).slice(-HISTORY_MAX);
    schedule(row);
  }

  function applyTick(row, quote) {
    const lastSeq = row.last?.seq ?? 0;
    if (quote.seq <= lastSeq && lastSeq - quote.seq < STALE_REPEAT) return; // a repeat of what we have
    if (quote.seq <= lastSeq) row.history = []; // numbering started over: a new session
    if (row.open === null || quote.seq === 1) row.open = quote.price - quote.change;
    row.last = quote;
    row.history.push({ seq: quote.seq, ts: quote.ts, price: quote.price });
    if (row.history.length > HISTORY_MAX) row.history.splice(0, row.history.length - HISTORY_MAX);
    schedule(row);
  }

  function follow(row) {
    if (row.unsubscribe || closed) return;
    row.unsubscribe = hub.subscribe(`livedata:${row.symbol}`, {
      onSnapshot: (snapshot) => applySnapshot(row, snapshot),
      events: { "livedata.tick": (quote) => applyTick(row, quote) },
      onError(error) {
        row.unsubscribe = null;
        showError(`${row.symbol}: ${error.message}`);
        schedule(row);
        renderSummary();
      },
    });
    schedule(row);
  }

  function unfollow(row) {
    const unsubscribe = row.unsubscribe;
    if (!unsubscribe) return;
    row.unsubscribe = null;
    unsubscribe().catch((error) => showError(`${row.symbol}: ${error.message}`));
    schedule(row);
  }

  function toggle(row) {
    if (row.unsubscribe) unfollow(row);
    else follow(row);
    persist();
    renderSummary();
  }

  function makeRow(symbol) {
    const line = svg("polyline", { fill: "none", "stroke-width": 1.5, "stroke-linejoin": "round" });
    const spark = svg("svg", {
      class: "livedata-spark",
      viewBox: `0 0 ${SPARK_W} ${SPARK_H}`,
      width: SPARK_W,
      height: SPARK_H,
      role: "img",
      preserveAspectRatio: "none",
    });
    spark.append(line);
    const els = {
      price: h("td", { class: "num livedata-price" }, "–"),
      change: h("td", { class: "num livedata-change" }),
      spark,
      line,
      toggle: h("button", { type: "button", class: "livedata-toggle" }),
    };
    const row = { symbol, els, open: null, last: null, history: [], unsubscribe: null, tr: null };
    els.toggle.addEventListener("click", () => toggle(row));
    els.price.addEventListener("animationend", () => els.price.classList.remove("flash-up", "flash-down"));
    row.tr = h(
      "tr",
      { dataset: { symbol } },
      h("th", { scope: "row", class: "livedata-symbol" }, symbol),
      els.price,
      els.change,
      h("td", { class: "livedata-spark-cell" }, spark),
      h("td", { class: "livedata-toggle-cell" }, els.toggle),
    );
    return row;
  }

  // ---- start -----------------------------------------------------------------------------------------
  let listing;
  try {
    const response = await fetch("/api/livedata/symbols", {
      headers: { accept: "application/json", ...authHeaders(hub) },
    });
    if (!response.ok) throw new Error(`the symbol list answered ${response.status}`);
    listing = await response.json();
  } catch (error) {
    container.dataset.status = "error";
    showError(`Could not load the symbols: ${error.message}`);
    return () => {};
  }
  const symbols = listing.symbols.map((entry) => entry.symbol);
  const saved = loadFollowed();
  const followed = new Set(saved ?? symbols.slice(0, DEFAULT_FOLLOWED));
  for (const entry of listing.symbols) {
    const row = makeRow(entry.symbol);
    rows.set(entry.symbol, row);
    body.append(row.tr);
    if (entry.last) applySnapshot(row, { open: entry.last.price - entry.last.change, last: entry.last, history: [] });
    if (followed.has(entry.symbol)) follow(row);
    else schedule(row);
  }
  if (symbols.length === 0) body.append(h("tr", {}, h("td", { colSpan: 5, class: "livedata-empty" }, "No symbols.")));
  renderSummary();
  container.dataset.status = "ready";

  return () => {
    closed = true;
    cancelAnimationFrame(frame);
    clearTimeout(errorTimer);
    for (const row of rows.values()) row.unsubscribe?.().catch(() => {});
  };
}
