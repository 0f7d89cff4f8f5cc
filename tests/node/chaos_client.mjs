// Chaos driver for tests/chaos: the real browser SDK (hub/static/hub.js, unmodified) run in Node with the `ws`
// package as its WebSocket. It keeps the SDK's own reconnect (backoff with full jitter), resubscribe with
// `since`, offline queue and idempotent retries, and records what every client saw, for the Python test to judge.
//
// Modes (one JSON line per event on stdout; the full record goes to the --out file):
//   failover  a round-robin TCP proxy in front of --backends (a load balancer with passive health checks: a
//             refused backend is skipped), --subscribers SDK clients on --channel, --laggards of them going
//             away on purpose for --lag publishes, and one SDK publisher sending --messages numbered chat
//             messages at --rate per second with a `mid` each, retrying until acknowledged.
//   storm     --clients SDK clients on --url, spread over --rooms chat rooms, and a publisher on --publish-url
//             sending to every room in turn at --rate per second until stdin says "stop". A line "restarted"
//             on stdin marks the moment the hub is back, so the time to resubscribe everyone is measured.
import { writeFileSync } from "node:fs";
import net from "node:net";
import readline from "node:readline";
import WebSocket from "ws";

import { args, emit, run, sleep, until } from "./hubws.mjs";

/**
 * Node 20 has no WebSocket; `ws` implements the browser API the SDK uses. As in a browser, each message is its
 * own event loop task (ws's default emits every frame of a TCP read in one task), so the promise reactions a
 * frame starts (the SDK handles a `sub` reply in a `.then`) run before the next frame is dispatched.
 */
class BrowserWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { allowSynchronousEvents: false });
    // A browser's WebSocket never throws an `error` event at the page; ws's would crash Node without a listener
    // (the SDK drops its handlers when it abandons a socket that is still connecting).
    this.on("error", () => {});
    // Registered before the SDK's handlers, so a socket is in `closedPorts` by the time the SDK hears of it.
    this.once("open", () => (this.localPort = this._socket?.localPort));
    this.once("close", () => this.localPort && closedPorts.add(this.localPort));
  }
}
/** Local ports of the SDK's sockets that have closed (the proxy knows them as its clients' remote ports). */
const closedPorts = new Set();
globalThis.WebSocket = BrowserWebSocket;
const { Hub } = await import("../../hub/static/hub.js");

const opts = args();
const num = (name, fallback) => (opts[name] === undefined ? fallback : Number(opts[name]));

/** Publish errors after which the same `mid` is sent again: the publish may or may not have happened. */
const RETRY = new Set(["disconnected", "timeout", "unavailable", "offline_queue_full", "internal"]);

/** A TCP load balancer: each new connection goes to the next backend; a refused one is skipped. */
function startProxy(backends) {
  const counts = Object.fromEntries(backends.map((b) => [b, 0]));
  const live = new Map(); // client's remote port -> backend, while connected
  let next = 0;
  const server = net.createServer((client) => {
    client.pause();
    client.on("error", () => {});
    const order = backends.map((_, i) => backends[(next + i) % backends.length]);
    next = (next + 1) % backends.length;
    const attempt = (i) => {
      if (i >= order.length || client.destroyed) {
        client.destroy();
        return;
      }
      const [host, port] = order[i].split(":");
      const upstream = net.connect(Number(port), host);
      let connected = false;
      upstream.on("error", () => {
        if (!connected) attempt(i + 1);
        else client.destroy();
      });
      upstream.once("connect", () => {
        connected = true;
        counts[order[i]] += 1;
        const port = client.remotePort;
        live.set(port, order[i]);
        client.once("close", () => live.delete(port));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        upstream.once("close", () => client.destroy());
        client.once("close", () => upstream.destroy());
      });
    };
    attempt(0);
  });
  /** The client ports connected to `backend` now. */
  const connectedTo = (backend) => [...live].filter(([, b]) => b === backend).map(([port]) => port);
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, counts, connectedTo })));
}

/** One SDK client on one channel, recording every offset, every resubscribe and its presence list. */
function follower(index, url, channel, options = {}) {
  const record = {
    index,
    offsets: [],
    numbers: [],
    gaps: [], // [last offset seen, offset of the reply] for each resubscribe that said recovered: false
    subscribes: [], // one entry per sub reply
    reconnects: [],
    start: null,
    last: null,
    members: [],
  };
  const hub = new Hub({ url, pingInterval: 0, ...options });
  hub.on("reconnecting", (detail) => {
    if (detail.attempt === 1) record.reconnects.push({ code: detail.code, cause: detail.cause, at: Date.now() });
  });
  hub.subscribe(channel, {
    onSubscribed(info) {
      record.subscribes.push({
        events: record.offsets.length, // how many events came before this reply
        recovered: info.recovered,
        resubscribed: info.resubscribed,
        epoch: info.epoch,
        offset: info.offset,
        missed: info.missed,
        at: Date.now(),
      });
      if (!info.resubscribed) {
        record.start = record.last = info.offset;
      } else if (!info.recovered) {
        record.gaps.push([record.last, info.offset]); // declared: the app must rebuild from the snapshot
        record.last = info.offset;
      } // recovered: the missed events are delivered right after this call
    },
    events: {
      "chat.posted": (data, frame) => {
        record.offsets.push(frame.offset);
        record.numbers.push(Number(data.text));
        record.last = frame.offset;
      },
    },
    onPresence(members) {
      record.members = members.map((m) => m.client);
    },
  });
  return { hub, record };
}

function publisher(url, token, options = {}) {
  const stats = { acked: 0, ok: 0, duplicate: 0, retries: 0, errors: {}, acks: {} };
  const hub = new Hub({ url, token, pingInterval: 0, offlineQueue: 15000, offlineQueueMax: 1000, ...options });
  async function send(channel, n) {
    for (;;) {
      try {
        const reply = await hub.publish(channel, "chat.send", { text: String(n) }, { mid: `m${n}` });
        const kind = reply?.duplicate ? "duplicate" : "ok";
        stats[kind] += 1;
        stats.acked += 1;
        stats.acks[n] = kind;
        return;
      } catch (error) {
        stats.errors[error.code] = (stats.errors[error.code] ?? 0) + 1;
        if (!RETRY.has(error.code)) throw error;
        stats.retries += 1;
        await sleep(20);
      }
    }
  }
  return { hub, stats, send };
}

/** Launch `count` sends at `rate` per second, at most `window` waiting for their reply at once. */
async function paced(count, rate, window, launch) {
  const started = Date.now();
  let inflight = 0;
  const all = [];
  for (let n = 0; n < count; n++) {
    const due = started + (n * 1000) / rate;
    if (Date.now() < due) await sleep(due - Date.now());
    if (inflight >= window) await until(() => inflight < window, 60000, "a publish slot");
    inflight += 1;
    all.push(launch(n).finally(() => (inflight -= 1)));
  }
  await Promise.all(all);
  return Date.now() - started;
}

async function finalOffset(url, channel) {
  let offset = null;
  const probe = new Hub({ url, pingInterval: 0 });
  probe.subscribe(channel, { onSubscribed: (info) => (offset = info.offset) });
  probe.connect();
  await until(() => offset !== null, 15000, "the probe's sub reply");
  probe.close();
  return offset;
}

const sameSet = (list, truth) => list.length === truth.size && list.every((client) => truth.has(client));

/** Emit the ms from now until the hub's presence list (hubMs) and every SDK's list (sdkMs) equal the truth:
 * the connections of every follower, once all are open again. */
async function presenceSettled(followers, hub, channel, doomed) {
  const started = Date.now();
  let hubMs = null;
  let sdkMs = null;
  while (Date.now() - started < 15000 && (hubMs === null || sdkMs === null)) {
    // Only once the SDK has seen every socket of the dead node close and every follower is back.
    const noticed = doomed.every((port) => closedPorts.has(port));
    if (noticed && followers.every(({ hub: follower }) => follower.state === "open")) {
      const truth = new Set(followers.map(({ hub: follower }) => follower.hello.client));
      const list = await hub.presence(channel).then((members) => members.map((m) => m.client), () => null);
      if (hubMs === null && list !== null && sameSet(list, truth)) hubMs = Date.now() - started;
      if (sdkMs === null && followers.every(({ record }) => sameSet(record.members, truth))) {
        sdkMs = Date.now() - started;
      }
    }
    await sleep(20);
  }
  emit({ event: "presence-settled", hubMs, sdkMs });
}

async function failover() {
  const backends = opts.backends.split(",");
  const channel = opts.channel;
  const { server, counts, connectedTo } = await startProxy(backends);
  const url = `ws://127.0.0.1:${server.address().port}/ws`;
  const sdk = { minDelay: 50, maxDelay: 1000, connectTimeout: 3000, requestTimeout: 5000 };
  const followers = Array.from({ length: num("subscribers", 20) }, (_, i) => follower(i, url, channel, sdk));
  for (const { hub } of followers) hub.connect();
  await until(() => followers.every(({ record }) => record.start !== null), 20000, "every first sub reply");
  const initial = { ...counts };

  const pub = publisher(url, opts.token, sdk);
  pub.hub.connect();
  await pub.hub.whenOpen();
  emit({ event: "ready", proxy: initial });

  const messages = num("messages", 10000);
  const laggards = followers.slice(0, num("laggards", 0));
  const lagAt = Math.floor(messages * 0.05);
  const lag = num("lag", 0);
  const lagging = (async () => {
    for (const { hub, record } of laggards) {
      await until(() => pub.stats.acked >= lagAt, 120000, "the laggards' moment");
      hub.close("a laggard goes away");
      record.away = [pub.stats.acked];
    }
    await until(() => pub.stats.acked >= lagAt + lag, 120000, "the laggards' return");
    for (const { hub, record } of laggards) {
      record.away.push(pub.stats.acked);
      hub.connect();
    }
  })();
  // "killed <backend>" on stdin: how long until the hub's presence list, then every SDK's own, equal the connections.
  const lines = readline.createInterface({ input: process.stdin });
  const settling = [];
  lines.on("line", (line) => {
    const [command, backend] = line.split(" ");
    if (command === "killed") settling.push(presenceSettled(followers, pub.hub, channel, connectedTo(backend)));
  });
  const progress = setInterval(() => emit({ event: "progress", acked: pub.stats.acked }), 100);
  const publishMs = await paced(messages, num("rate", 1000), num("window", 16), (n) => pub.send(channel, n));
  clearInterval(progress);
  await lagging;
  await Promise.all(settling);
  lines.close();
  emit({ event: "published", acked: pub.stats.acked, ms: publishMs });

  const final = await finalOffset(url, channel);
  const quietStarted = Date.now();
  await until(() => followers.every(({ record }) => record.last === final), 30000, "every follower at the end");
  const caughtUpMs = Date.now() - quietStarted;

  // Presence after quiet: the hub's list and every SDK's own list must equal the connections that are there.
  const truth = followers.map(({ hub }) => hub.hello.client).sort();
  const same = (list) => list.length === truth.length && [...list].sort().every((c, i) => c === truth[i]);
  const presenceStarted = Date.now();
  let hubList = [];
  let presenceMs = null;
  while (Date.now() - presenceStarted < num("presence-wait", 10000)) {
    hubList = (await pub.hub.presence(channel)).map((m) => m.client);
    if (same(hubList) && followers.every(({ record }) => same(record.members))) {
      presenceMs = Date.now() - presenceStarted;
      break;
    }
    await sleep(50);
  }
  const result = {
    final,
    publishMs,
    caughtUpMs,
    presenceMs,
    presence: { truth, hub: hubList, sdk: followers.map(({ record }) => record.members) },
    proxy: { initial, total: counts },
    publisher: pub.stats,
    laggards: laggards.map(({ record }) => record.index),
    followers: followers.map(({ record }) => record),
  };
  writeFileSync(opts.out, JSON.stringify(result));
  for (const { hub } of followers) hub.close();
  pub.hub.close();
  server.close();
  return { final, publishMs, caughtUpMs, presenceMs };
}

async function storm() {
  const rooms = num("rooms", 50);
  const channels = Array.from({ length: rooms }, (_, i) => `${opts.prefix}${i}`);
  const sdk = { connectTimeout: 10000, requestTimeout: 20000 }; // backoff: the SDK's defaults
  const followers = Array.from({ length: num("clients", 1000) }, (_, i) =>
    follower(i, opts.url, channels[i % rooms], sdk),
  );
  for (const { hub } of followers) hub.connect();
  const subscribedAt = Date.now();
  await until(() => followers.every(({ record }) => record.start !== null), 60000, "every first sub reply");
  const firstSubMs = Date.now() - subscribedAt;

  const pub = publisher(opts["publish-url"], opts.token, { minDelay: 50, maxDelay: 1000 });
  pub.hub.connect();
  await pub.hub.whenOpen();

  let stopped = false;
  let restartedAt = null;
  const lines = readline.createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line === "stop") stopped = true;
    if (line === "restarted") restartedAt = Date.now();
  });
  emit({ event: "ready", firstSubMs });

  const rate = num("rate", 200);
  const started = Date.now();
  const sends = [];
  for (let n = 0; !stopped; n++) {
    const due = started + (n * 1000) / rate;
    if (Date.now() < due) await sleep(due - Date.now());
    sends.push(pub.send(channels[n % rooms], n));
    if (n % 50 === 0) emit({ event: "progress", acked: pub.stats.acked, ...counts() });
  }
  await Promise.all(sends);
  emit({ event: "published", acked: pub.stats.acked });

  function counts() {
    const dropped = followers.filter(({ record }) => record.reconnects.length > 0).length;
    const resubscribed = followers.filter(({ record }) => record.subscribes.length > 1).length;
    return { dropped, resubscribed };
  }
  const finals = {};
  for (const channel of channels) finals[channel] = await finalOffset(opts["publish-url"], channel);
  await until(
    () => followers.every(({ record }, i) => record.last === finals[channels[i % rooms]]),
    30000,
    "every follower at the end of its room",
  );
  const result = {
    channels,
    finals,
    firstSubMs,
    restartedAt,
    publisher: pub.stats,
    followers: followers.map(({ record }, i) => ({ ...record, channel: channels[i % rooms] })),
  };
  writeFileSync(opts.out, JSON.stringify(result));
  for (const { hub } of followers) hub.close();
  pub.hub.close();
  lines.close();
  return { firstSubMs };
}

run(opts.mode === "storm" ? storm : failover, num("limit", 120000));
