/**
 * The admin page's tables (nodes, channels, connections, recent errors, closes) and its channel card: a
 * channel's details from `admin.channel`, and its live events while the admin watches it (a plain `sub` as the
 * admin). Everything the hub sends is put in the page as text, never as HTML.
 */

import { h } from "/static/ui.js";
import { formatRate } from "/static/admin_chart.js";

/** Close codes of docs/protocol.md §13, by name. */
export const CLOSE_CODES = {
  1000: "normal",
  1001: "going away",
  1009: "frame too large",
  1011: "internal error",
  1012: "service restart",
  4001: "auth failed",
  4002: "auth timeout",
  4003: "token expired",
  4008: "rate abuse",
  4009: "slow consumer",
  4010: "heartbeat timeout",
  4011: "disconnected",
};

const MAX_EVENTS = 50;
const $ = (id) => document.getElementById(id);

function time(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "–";
}

function duration(seconds) {
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function closeName(code) {
  const name = CLOSE_CODES[code];
  return name ? `${code} ${name}` : String(code);
}

function fill(tableId, rows, empty) {
  const body = $(tableId).tBodies[0];
  if (!rows.length) {
    const columns = $(tableId).tHead.rows[0].cells.length;
    rows = [h("tr", { class: "empty" }, h("td", { colSpan: columns }, empty))];
  }
  body.replaceChildren(...rows);
}

function sumRates(rates) {
  let total = 0;
  for (const value of rates.values()) total += value;
  return total;
}

/** Redraw every table from the cluster; `actions.kick(client)`, `actions.open(channel)`. */
export function renderTables(cluster, actions) {
  const now = Date.now() / 1000;
  fill(
    "nodes-table",
    [...cluster.nodes.values()].map(({ stats, in: rateIn, out: rateOut }) =>
      h("tr", { dataset: { node: stats.node } },
        h("td", { class: "mono", title: `${stats.host}, process ${stats.pid}` }, stats.node,
          h("span", { class: "muted small" }, ` ${stats.host}:${stats.pid}`)),
        h("td", {}, String(stats.connections)),
        h("td", {}, String(stats.channel_count)),
        h("td", {}, formatRate(sumRates(rateIn))),
        h("td", {}, formatRate(sumRates(rateOut))),
        h("td", {}, duration(now - stats.started_at)),
        h("td", {}, time(stats.at)),
      ),
    ),
    "No node has reported yet.",
  );

  const channels = cluster.channels;
  fill(
    "channels-table",
    channels.slice(0, 200).map(({ channel, subscribers }) =>
      h("tr", { dataset: { channel } },
        h("td", { class: "mono" }, channel),
        h("td", {}, String(subscribers)),
        h("td", {}, channel.startsWith("admin:") ? null :
          h("button", { type: "button", class: "link-button", onclick: () => actions.open(channel) }, "Details")),
      ),
    ),
    "No channel has subscribers.",
  );
  $("known-channels").replaceChildren(...channels.slice(0, 200).map(({ channel }) => new Option(channel)));
  $("channels-note").textContent = cluster.truncated ? "Each node lists its busiest channels and oldest clients only." : "";

  const filter = $("clients-filter").value.trim().toLowerCase();
  const clients = cluster.clients.filter((client) =>
    !filter ||
    [client.user, client.name, client.client, ...client.channels].some((text) => text?.toLowerCase().includes(filter)),
  );
  fill(
    "clients-table",
    clients.slice(0, 500).map((client) =>
      h("tr", { dataset: { client: client.client } },
        h("td", {}, client.user ?? "–", client.anonymous ? h("span", { class: "tag" }, "guest") : null),
        h("td", {}, client.name ?? "–"),
        h("td", { class: "mono" }, client.client),
        h("td", { class: "mono" }, client.node),
        h("td", { class: "mono small" }, client.channels.join(", ") || "–"),
        h("td", { title: client.since ? new Date(client.since * 1000).toISOString() : "" },
          client.since ? `${duration(now - client.since)} ago` : "–"),
        h("td", {}, h("button", { type: "button", class: "danger small", onclick: () => actions.kick(client) }, "Kick")),
      ),
    ),
    filter ? "No connection matches." : "No connections.",
  );
  $("clients-note").textContent = `${clients.length} listed of ${cluster.connections} connections.`;

  fill(
    "errors-table",
    cluster.recent("recent_errors", 30).map((error) =>
      h("tr", { dataset: { code: error.code } },
        h("td", {}, time(error.at)),
        h("td", { class: "mono" }, String(error.code)),
        h("td", {}, error.user ?? "–"),
        h("td", { class: "mono" }, error.channel ?? "–"),
        h("td", { class: "small" }, error.msg ?? ""),
      ),
    ),
    "No errors sent.",
  );

  fill(
    "closes-table",
    cluster.recent("recent_closes", 30).map((close) =>
      h("tr", { dataset: { code: String(close.code) }, class: close.code === 4009 ? "warn" : "" },
        h("td", {}, time(close.at)),
        h("td", { class: "mono" }, closeName(close.code)),
        h("td", {}, close.user ?? "–"),
        h("td", { class: "mono" }, close.client),
        h("td", { class: "small" }, close.reason ?? ""),
      ),
    ),
    "No connection closed by the server.",
  );
  $("closes-summary").textContent = [...cluster.closes]
    .map(([code, count]) => `${closeName(code)}: ${count}`)
    .join(" · ");
}

/** The channel card: details from `admin.channel`, and a live `sub` while watching. */
export class ChannelView {
  constructor(hub, overview) {
    this.hub = hub;
    this.overview = overview;
    this.name = null;
    this.stop = null;
    this.events = [];
    $("channel-watch").onclick = () => (this.stop ? this.unwatch() : this.watch());
    $("channel-close").onclick = () => this.close();
  }

  async open(channel) {
    this.close();
    this.name = channel;
    $("channel-card").hidden = false;
    $("channel-title").textContent = channel;
    this.#error("");
    try {
      const details = await this.hub.publish(this.overview, "admin.channel", { channel, events: 20 });
      if (this.name !== channel) return;
      this.#facts(details);
      this.#presence(details.presence);
      this.events = (details.events ?? []).slice().reverse();
      this.#events();
    } catch (error) {
      if (this.name === channel) this.#error(`${error.message} (${error.code})`);
    }
  }

  watch() {
    const channel = this.name;
    if (!channel || this.stop) return;
    this.stop = this.hub.subscribe(channel, {
      onEvent: (frame) => {
        this.events.unshift({ type: frame.type, data: frame.data, offset: frame.offset, live: true });
        this.events.length = Math.min(this.events.length, MAX_EVENTS);
        this.#events();
      },
      onPresence: (members) => this.#presence(members),
      onError: (error) => {
        this.#error(`Watching failed: ${error.message} (${error.code})`);
        if (!error.retrying) this.unwatch();
      },
    });
    $("channel-watch").textContent = "Stop watching";
    $("channel-card").dataset.watching = "true";
  }

  unwatch() {
    this.stop?.();
    this.stop = null;
    $("channel-watch").textContent = "Watch live";
    $("channel-card").dataset.watching = "false";
  }

  close() {
    this.unwatch();
    this.name = null;
    this.events = [];
    $("channel-card").hidden = true;
  }

  #error(text) {
    $("channel-error").textContent = text;
    $("channel-error").hidden = !text;
  }

  #facts(details) {
    const facts = [
      ["plugin", details.plugin],
      ["subscribers", String(details.subscribers)],
      ["recoverable", details.recoverable ? `yes (epoch ${details.epoch}, offset ${details.offset})` : "no"],
      ["present", details.presence_count == null ? "no presence" : String(details.presence_count)],
    ];
    $("channel-facts").replaceChildren(...facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
  }

  #presence(members) {
    const items = (members ?? []).map((m) => h("li", { dataset: { client: m.client } }, m.name, h("span", { class: "muted" }, ` ${m.user}`)));
    $("channel-presence").replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, members ? "Nobody." : "This channel keeps no presence.")]));
  }

  #events() {
    const items = this.events.map((event) =>
      h("li", { class: event.live ? "live" : "" },
        h("span", { class: "type" }, event.type),
        event.offset != null ? h("span", { class: "offset" }, `#${event.offset}`) : null,
        h("code", {}, JSON.stringify(event.data).slice(0, 400)),
      ),
    );
    $("channel-events").replaceChildren(...(items.length ? items : [h("li", { class: "muted" }, "No events kept or seen yet.")]));
  }
}
