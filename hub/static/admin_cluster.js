/**
 * The admin page's picture of the cluster, made from the `admin.stats` reports every node publishes on
 * `admin:overview` (docs/protocol.md §16): the latest report of each node, the rates between a node's last two
 * reports, and the sums over the nodes. A node that stops reporting (it stopped, or died) is dropped after a
 * few of its intervals.
 */

/** A node silent for this many of its intervals (and at least `MIN_SILENCE_MS`) is gone. */
const SILENT_INTERVALS = 3;
const MIN_SILENCE_MS = 3000;

/** The admin's own traffic (its stats and requests) is left out of rates and the chart. */
export function isAdminType(type) {
  return type.startsWith("admin.");
}

/** Per second, by key: what grew between two cumulative counts, over `seconds`. */
function rates(before, after, seconds) {
  const found = new Map();
  if (!(seconds > 0)) return found;
  for (const [key, count] of Object.entries(after)) {
    const grown = count - (before[key] ?? 0);
    if (grown > 0 && !isAdminType(key)) found.set(key, grown / seconds);
  }
  return found;
}

function sum(values) {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

export class Cluster {
  constructor() {
    /** @type {Map<string, {stats: any, in: Map<string, number>, out: Map<string, number>, seenAt: number}>} */
    this.nodes = new Map();
  }

  /** A node's report (a sub reply's snapshot or an `admin.stats` event). Returns false for a stale one. */
  report(stats, now = Date.now()) {
    const known = this.nodes.get(stats.node);
    if (known && stats.at <= known.stats.at) return false;
    let rateIn = new Map();
    let rateOut = new Map();
    if (known) {
      const seconds = stats.at - known.stats.at;
      rateIn = rates(known.stats.messages_in, stats.messages_in, seconds);
      rateOut = rates(known.stats.events_out, stats.events_out, seconds);
    }
    this.nodes.set(stats.node, { stats, in: rateIn, out: rateOut, seenAt: now });
    return true;
  }

  /** Drop the nodes that stopped reporting; returns their ids. */
  prune(now = Date.now()) {
    const gone = [];
    for (const [node, entry] of this.nodes) {
      const silence = Math.max(MIN_SILENCE_MS, SILENT_INTERVALS * entry.stats.interval * 1000);
      if (now - entry.seenAt > silence) {
        this.nodes.delete(node);
        gone.push(node);
      }
    }
    return gone;
  }

  /** The shortest reporting interval of the live nodes, in ms (the chart samples at this pace). */
  get intervalMs() {
    const intervals = [...this.nodes.values()].map((entry) => entry.stats.interval * 1000);
    return intervals.length ? Math.min(...intervals) : 1000;
  }

  get connections() {
    return sum([...this.nodes.values()].map((entry) => entry.stats.connections));
  }

  /** Every node's clients, the oldest connection first. */
  get clients() {
    const all = [...this.nodes.values()].flatMap((entry) => entry.stats.clients);
    return all.sort((a, b) => (a.since ?? 0) - (b.since ?? 0));
  }

  /** Channels with their subscribers summed over the nodes, the most followed first. */
  get channels() {
    const merged = new Map();
    for (const entry of this.nodes.values()) {
      for (const { channel, subscribers } of entry.stats.channels) {
        merged.set(channel, (merged.get(channel) ?? 0) + subscribers);
      }
    }
    return [...merged].map(([channel, subscribers]) => ({ channel, subscribers }))
      .sort((a, b) => b.subscribers - a.subscribers || a.channel.localeCompare(b.channel));
  }

  /** Whether some node listed fewer clients or channels than it has (HUB_ADMIN_LIST_LIMIT). */
  get truncated() {
    return [...this.nodes.values()].some(
      ({ stats }) => stats.clients.length < stats.connections || stats.channels.length < stats.channel_count,
    );
  }

  /** Rates summed over the nodes, by message type or by plugin (the part before the dot). */
  rates(direction, group = "type") {
    const found = new Map();
    for (const entry of this.nodes.values()) {
      for (const [type, rate] of entry[direction]) {
        const key = group === "plugin" ? type.split(".")[0] : type;
        found.set(key, (found.get(key) ?? 0) + rate);
      }
    }
    return found;
  }

  total(direction) {
    return sum(this.rates(direction).values());
  }

  /** The newest of every node's recent entries (`recent_errors` or `recent_closes`), each with its node. */
  recent(kind, limit = 50) {
    const all = [...this.nodes.values()].flatMap(({ stats }) =>
      stats[kind].map((entry) => ({ ...entry, node: stats.node })),
    );
    return all.sort((a, b) => b.at - a.at).slice(0, limit);
  }

  /** Closes by code, summed over the nodes. */
  get closes() {
    const found = new Map();
    for (const { stats } of this.nodes.values()) {
      for (const [code, count] of Object.entries(stats.closes)) found.set(code, (found.get(code) ?? 0) + count);
    }
    return found;
  }
}
