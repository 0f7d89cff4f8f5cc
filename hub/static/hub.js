/**
 * hub.js — the browser SDK for Hub: one WebSocket that carries every plugin's channels.
 *
 * A dependency-free ES module, served by the hub at `/hub.js`. It speaks the wire protocol of
 * docs/protocol.md (v1) and is documented, with a complete example, in docs/client.md.
 *
 *     import { connect } from "/hub.js";
 *     const hub = connect();                        // anonymous, or connect({ token })
 *     const stop = hub.subscribe("chat:lobby", {
 *       onSnapshot: (snapshot) => render(snapshot.messages),
 *       events: { "chat.posted": (message) => append(message) },
 *     });
 *     await hub.publish("chat:lobby", "chat.send", { text: "hello" });
 *
 * What the SDK does for you: the `hub.v1` subprotocol and the token (`bearer.<jwt>`), answering the hub's
 * pings, a client-side dead-connection timeout, reconnecting with exponential backoff and full jitter,
 * resubscribing every channel with `since` so missed events are recovered, promise replies matched by id,
 * a bounded queue for publishes made while the socket is down, and round-trip latency (`hub.rtt`).
 *
 * Import it from `/hub.js` everywhere on a page: the same file under another URL (`/static/hub.js`) is a
 * second module instance.
 */

const SUBPROTOCOL = "hub.v1";
const TOKEN_SUBPROTOCOL_PREFIX = "bearer.";

/** Close codes after which reconnecting with the same credentials cannot help (docs/protocol.md §13). */
const AUTH_CLOSE_CODES = new Set([4001, 4002, 4003]);

/** `err` codes after which a refused `sub` is tried again (with backoff) while the socket stays open. */
const RETRYABLE_SUB_CODES = new Set(["unavailable", "rate_limited", "internal", "timeout"]);

/**
 * The connection's states, in the order a connection usually goes through them.
 * @typedef {"connecting" | "open" | "reconnecting" | "closed"} HubState
 */

/**
 * @typedef {object} HubOptions
 * @property {string} [url] The socket's URL: `ws(s)://…`, `http(s)://…` or a path; default `/ws` on the
 *   page's own host (the hub only accepts pages of its own origin unless `HUB_ALLOWED_ORIGINS` says so).
 * @property {string | null | (() => (string | null | Promise<string | null>))} [token] A JWT, or a function
 *   that returns one (called before every connection attempt, so it can fetch a fresh token). None: a guest.
 * @property {number} [minDelay=250] Reconnect backoff: the first delay's upper bound, in ms.
 * @property {number} [maxDelay=10000] Reconnect backoff: the cap of the delay's upper bound, in ms.
 * @property {number} [connectTimeout=10000] Ms from opening a socket to the hub's `hello`; then retry.
 * @property {number | null} [heartbeatTimeout=null] Ms without any frame from the hub after which the
 *   connection counts as dead and is replaced. Null: derived from the `hello` (2 × the hub's ping interval
 *   + 2 s).
 * @property {number} [pingInterval=5000] Ms between latency pings (`hub.rtt`); 0 disables them.
 * @property {number} [requestTimeout=10000] Ms a request waits for its reply before it rejects (`timeout`).
 * @property {number} [offlineQueue=5000] Ms a publish made while disconnected waits for the connection to
 *   come back before it rejects with `disconnected`; 0 rejects at once.
 * @property {number} [offlineQueueMax=100] Publishes that may wait at once; beyond, they reject at once.
 * @property {("websocket" | "sse")[]} [transports=["websocket", "sse"]] The transports to use, in order of
 *   preference: a WebSocket, and the fallback over server-sent events + POSTs (docs/client.md, "Transports").
 * @property {string} [sseUrl] The fallback's stream URL; default `/sse` beside the socket's URL.
 * @property {number} [fallbackAfter=2] WebSocket attempts in a row that end before the hub's `hello` (a proxy
 *   that refuses the upgrade) after which the fallback is used.
 * @property {number} [probeTimeout=3000] Ms a WebSocket attempt made while on the fallback (to switch back)
 *   may take to reach `hello`.
 * @property {number} [probeInterval=30000] On the fallback: ms before a WebSocket is tried beside the stream
 *   (doubling after each failure, up to 10 minutes); when it works, the connection moves to it. 0: never.
 */

/**
 * Who this connection is, from the `hello` frame (null when anonymous mode is off and no token was given).
 * @typedef {{user: string, name: string, anonymous: boolean}} Identity
 */

/**
 * One connection in a presence list. `display` is its name as the room shows it, unique in the room (`"Alice (2)"`
 * when another user of the room is also called Alice; one user's connections share it): show it rather than
 * `name`. `meta` is its presence metadata (the channel plugin's model, docs/protocol.md §9), or null.
 * @typedef {{client: string, user: string, name: string, display: string, meta: any}} Member
 */

/**
 * What changed in a presence channel's list, given to `onPresence` with the members listed.
 * @typedef {object} PresenceChange
 * @property {"sync" | "joined" | "left" | "updated" | "count"} type `sync`: a new list (a `sub` reply, or the
 *   whole list fetched when a big room became small again); `joined` / `left` / `updated`: one member joined,
 *   left or changed its metadata (rooms of at most `hello.limits.presence_list` members); `count`: a big room's
 *   new member count (`<namespace>.presence`), which also stands for the metadata changes there.
 * @property {Member} [member] The member who joined, left or changed.
 * @property {number} count How many members the room has, on every node.
 * @property {boolean} partial True when the list holds fewer members than `count` (a big room: only a sample
 *   is listed; `hub.presencePage` pages through everyone).
 */

/**
 * One page of a presence channel's members (the `presence` op's reply).
 * @typedef {object} PresencePage
 * @property {Member[]} presence The members of this page.
 * @property {number} count How many members the room has now, on every node.
 * @property {string | null} cursor The next page's cursor, or null after the last page.
 */

/**
 * An `ev` frame as it came from the hub (typed: `T` is its event type, `D` its data).
 * @template {string} [T=string]
 * @template [D=any]
 * @typedef {{op: "ev", ch: string, type: T, data: D, offset?: number}} EventFrame
 */

/**
 * Typed messages (docs/client.md, "npm package and types"): namespace -> what its channels carry, each a map of
 * type -> data, as `hub schema --format typescript` writes it (`HubChannels`). `connect<HubChannels>()` checks
 * every publish and types every handler by it. The default, this type, lets any type and data through.
 * @typedef {{[namespace: string]: {messages: {[type: string]: any}, events: {[type: string]: any}, snapshot: any}}} UntypedChannels
 */

/**
 * A channel of the map's namespaces, `<namespace>:<room>` (any string when untyped).
 * @template S
 * @typedef {string extends keyof S ? string : `${keyof S & string}:${string}`} ChannelName
 */

/**
 * What the map says a channel (by its name's namespace) carries.
 * @template S
 * @template {string} C
 * @typedef {C extends `${infer N}:${string}` ? (N extends keyof S ? S[N] : never) : UntypedChannels[string]} ChannelOf
 */

/**
 * A channel's inbound message types -> their data, its event types -> their data, its snapshot.
 * @template K
 * @typedef {K extends {messages: infer M} ? M : {[type: string]: any}} MessagesOf
 */
/**
 * @template K
 * @typedef {K extends {events: infer E} ? E : {[type: string]: any}} EventsOf
 */
/**
 * @template K
 * @typedef {K extends {snapshot: infer P} ? P : any} SnapshotOf
 */

/**
 * Any event of a channel: a union by event type when typed, so `switch (frame.type)` narrows `frame.data`.
 * @template K
 * @typedef {{[T in keyof EventsOf<K> & string]: EventFrame<T, EventsOf<K>[T]>}[keyof EventsOf<K> & string]} AnyEventFrame
 */

/**
 * What a `sub` reply said, given to `onSubscribed` and `onSnapshot` (`P`: the snapshot's type).
 * @template [P=any]
 * @typedef {object} SubscriptionInfo
 * @property {string} channel
 * @property {boolean} resubscribed True after a reconnect (or a retried `sub`), false the first time.
 * @property {boolean} recovered True when every missed event came back (they are delivered to the event
 *   handlers right after this call). False on the first subscribe and whenever recovery was impossible.
 * @property {boolean} reset True when the app must rebuild this channel's state: a resubscribe that did
 *   not recover. The fresh snapshot (if the channel has one) is `snapshot` and goes to `onSnapshot`.
 * @property {string | undefined} epoch The channel's stream (recoverable channels only).
 * @property {number | undefined} offset The last offset this reply accounts for (recoverable channels only).
 * @property {P} [snapshot] The plugin's state for a late joiner (absent when recovered or not declared).
 * @property {Member[] | undefined} presence Who is present, this connection included (presence channels):
 *   everyone while the room has at most `hello.limits.presence_list` members, else a sample of that many.
 * @property {number | undefined} presenceCount How many members the room has (presence channels).
 * @property {number} missed How many missed events were recovered.
 */

/**
 * Handlers for one channel; every one is optional (`K`: what the channel carries, see {@link ChannelOf}).
 * @template [K=UntypedChannels[string]]
 * @typedef {object} SubscribeHandlers
 * @property {{[T in keyof EventsOf<K> & string]?: (data: EventsOf<K>[T], frame: EventFrame<T, EventsOf<K>[T]>) => void}} [events]
 *   Handlers by event type, e.g. `{"chat.posted": (message) => …}`.
 * @property {(frame: AnyEventFrame<K>) => void} [onEvent] Every event of the channel (after its typed handler).
 * @property {(info: SubscriptionInfo<SnapshotOf<K>>) => void} [onSubscribed] Each successful `sub` reply (first
 *   and after every reconnect).
 * @property {(snapshot: SnapshotOf<K>, info: SubscriptionInfo<SnapshotOf<K>>) => void} [onSnapshot] Each reply
 *   that carries a snapshot: the first one, and every resubscribe that could not recover (`info.reset`).
 *   Replace your state with it.
 * @property {(members: Member[], change: PresenceChange) => void} [onPresence] The channel's presence list
 *   and member count, kept by the SDK from the reply, `joined`/`left` and `<namespace>.presence` events; in a
 *   big room the list is partial (`change.partial`) and `change.count` says how many are present.
 * @property {any} [meta] This connection's presence metadata on the channel (channels whose plugin declares a
 *   metadata model), sent with the `sub` and every resubscribe; change it with {@link Hub#setPresence}.
 * @property {(error: HubError) => void} [onError] The `sub` was refused. `error.retrying` says whether the SDK
 *   tries again (`unavailable`, `rate_limited`, …); otherwise the subscription is over. Also called, with
 *   `error.revoked` true, when the hub ends a subscription itself (access withdrawn, the room deleted): the
 *   subscription is over and is not sent again on reconnect.
 */

/**
 * Detail of the state events (`connecting`, `open`, `reconnecting`, `closed`) and of `state`.
 * @typedef {object} StateDetail
 * @property {HubState} state
 * @property {HubState} prev
 * @property {number | null} [code] The close code, when a socket closed (null when the SDK gave up on it).
 * @property {string} [reason] Why, in words.
 * @property {"closed" | "heartbeat" | "connect_timeout" | "client" | "token" | "error"} [cause]
 * @property {number} [attempt] Reconnecting: the number of this attempt (1, 2, …).
 * @property {number} [delay] Reconnecting: ms until this attempt.
 * @property {Identity | null} [me] Open: who this connection is.
 */

/** An `err` reply, or a failure of the SDK itself (`disconnected`, `timeout`, `closed`, `offline_queue_full`). */
export class HubError extends Error {
  /**
   * @param {string} code A protocol code (`invalid`, `forbidden`, …) or the SDK's own.
   * @param {string} message The hub's sentence (`msg`), for people.
   * @param {any[]} [details] The `err` frame's details (field errors for `invalid`).
   * @param {object} [frame] The `err` frame as it came.
   */
  constructor(code, message, details = undefined, frame = undefined) {
    super(message);
    this.name = "HubError";
    /** @type {string} */
    this.code = code;
    /** @type {any[] | undefined} */
    this.details = details;
    /** @type {object | undefined} */
    this.frame = frame;
    /** @type {boolean} Only for `onError` of a subscription: whether the SDK retries the `sub`. */
    this.retrying = false;
    /** @type {boolean} Only for `onError` of a subscription: the hub ended it (an `unsub` frame from the hub). */
    this.revoked = false;
  }
}

/**
 * The socket URL for an option value: a ws(s) URL as is, an http(s) URL or a path mapped to ws(s).
 * @param {string | undefined} url
 * @returns {string}
 */
/** A close reason cut to the 123 bytes of UTF-8 a close frame holds (a longer one makes `close()` throw). */
function closeReason(text) {
  const encoder = new TextEncoder();
  let reason = String(text);
  while (encoder.encode(reason).length > 123) reason = Array.from(reason).slice(0, -1).join("");
  return reason;
}

function socketUrl(url) {
  const resolved = new URL(url ?? "/ws", globalThis.location?.href);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  else if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved.href;
}

/** The fallback's stream URL beside a socket URL: `…/ws` -> `…/sse`, with http(s) for ws(s). */
function streamUrl(wsUrl) {
  const resolved = new URL(wsUrl);
  resolved.protocol = resolved.protocol === "wss:" ? "https:" : "http:";
  resolved.pathname = resolved.pathname.replace(/\/ws\/?$/, "") + "/sse";
  resolved.search = "";
  return resolved.href;
}

/**
 * The fallback transport (docs/protocol.md, "Fallback transport"): the hub's frames as server-sent events of
 * `GET /sse` (read with fetch, so the token goes in the Authorization header), and the client's frames in
 * `POST /sse/<key>` batches, one frame per line, one POST at a time so they keep their order. Shaped like a
 * WebSocket for {@link Hub}: `send(text)`, `close()`, and the `onmessage` ({data}) and `onclose` ({code,
 * reason}) handlers. The hub's close, which SSE cannot carry, comes as a last frame `{"op":"close",…}`.
 */
/**
 * A promise that resolves on a later task, after every promise callback queued before it has run. The stream
 * hands its frames over one per task, as a WebSocket does with its messages: the SDK settles a reply in a promise
 * callback, and an event read in the same chunk must not be dispatched before that callback (a `sub`'s `ok` before
 * its channel's first `ev`, protocol §5.2).
 * @returns {() => Promise<void>}
 */
function taskYielder() {
  if (typeof MessageChannel === "function") {
    const channel = new MessageChannel();
    /** @type {(() => void)[]} */
    const waiting = [];
    channel.port1.onmessage = () => waiting.shift()?.();
    // Node: an open port keeps the process alive; this one must not
    /** @type {any} */ (channel.port1).unref?.();
    /** @type {any} */ (channel.port2).unref?.();
    return () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        channel.port2.postMessage(null);
      });
  }
  return () => new Promise((resolve) => setTimeout(resolve, 0));
}

/** @type {(() => Promise<void>) | null} */
let yielder = null;
/** @returns {Promise<void>} */
const nextTask = () => (yielder ??= taskYielder())();

class EventStreamSocket {
  /** @type {((event: {data: string}) => void) | null} */
  onmessage = null;
  /** @type {((event: {code: number, reason: string}) => void) | null} */
  onclose = null;
  /** @type {(() => void) | null} */
  onerror = null;
  #url;
  #abort = new AbortController();
  /** @type {string | null} where frames go, from the hello's session key */
  #postUrl = null;
  #limits = { max_bytes: 256 * 1024, max_frames: 100 };
  /** @type {string[]} */
  #batch = [];
  #posting = false;
  #closed = false;

  /** @param {string} url @param {string | null} token */
  constructor(url, token) {
    this.#url = url;
    this.#read(token);
  }

  /** @param {string | null} token */
  async #read(token) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.#url, { headers, cache: "no-store", signal: this.#abort.signal });
    } catch (error) {
      this.#lost(1006, `Cannot reach ${this.#url}: ${error?.message ?? error}`);
      return;
    }
    if (!response.ok || !response.body) {
      let reason = `HTTP ${response.status}`;
      try {
        reason = (await response.json()).detail ?? reason;
      } catch {
        // not the hub's JSON: the status says it
      }
      this.#lost(1006, reason);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    /** @type {string[]} */
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.#closed) break;
        buffer += value;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length) {
              this.#frame(data.join("\n"));
              await nextTask(); // one frame per task, as WebSocket messages come
            }
            data = [];
          } else if (line.startsWith("data:")) {
            data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          } // comments (":…") and other fields carry nothing for us
        }
      }
    } catch (error) {
      this.#lost(1006, `The event stream broke: ${error?.message ?? error}`);
      return;
    }
    this.#lost(1006, "The event stream ended.");
  }

  /** @param {string} text */
  #frame(text) {
    if (this.#closed) return;
    if (text.startsWith('{"op":"close"') || text.startsWith('{"op":"hello"')) {
      const frame = JSON.parse(text);
      if (frame.op === "close") {
        this.#lost(Number(frame.code), String(frame.reason ?? ""));
        return;
      }
      const { session, post_limits: limits, ...data } = frame.data ?? {};
      this.#postUrl = `${this.#url.replace(/\/$/, "")}/${encodeURIComponent(String(session))}`;
      if (limits) this.#limits = limits;
      text = JSON.stringify({ ...frame, data });
    }
    this.onmessage?.({ data: text });
  }

  /** @param {string} text one frame */
  send(text) {
    if (this.#closed) return;
    this.#batch.push(text);
    if (!this.#posting) {
      this.#posting = true;
      queueMicrotask(() => this.#post()); // frames sent in the same task go in one POST
    }
  }

  async #post() {
    const encoder = new TextEncoder();
    while (this.#batch.length && !this.#closed) {
      const lines = [];
      let bytes = 0;
      while (this.#batch.length && lines.length < this.#limits.max_frames) {
        const size = encoder.encode(this.#batch[0]).length + 1;
        if (lines.length && bytes + size > this.#limits.max_bytes) break;
        bytes += size;
        lines.push(this.#batch.shift());
      }
      try {
        const response = await fetch(/** @type {string} */ (this.#postUrl), {
          method: "POST",
          body: lines.join("\n"),
          headers: { "Content-Type": "text/plain;charset=UTF-8" },
          signal: this.#abort.signal,
        });
        if (!response.ok) {
          let reason = `HTTP ${response.status}`;
          try {
            reason = (await response.json()).detail ?? reason;
          } catch {
            // the status says it
          }
          this.#lost(1006, reason);
        }
      } catch (error) {
        this.#lost(1006, `A POST to the hub failed: ${error?.message ?? error}`);
      }
    }
    this.#posting = false;
  }

  /** End it from this side (the hub sees the stream go, and ends the session). */
  close() {
    this.#closed = true;
    this.#batch = [];
    this.#abort.abort();
  }

  /** @param {number} code @param {string} reason */
  #lost(code, reason) {
    if (this.#closed) return;
    this.close();
    this.onclose?.({ code, reason });
  }
}

/**
 * A presence entry as the SDK hands it out: the hub sends `display` only when it is not `name`, and `meta` only
 * when set (protocol.md §9); filled in here, in place, so every Member has both.
 * @param {any} member
 * @returns {Member}
 */
function asMember(member) {
  if (member && typeof member === "object") {
    if (member.display === undefined) member.display = member.name;
    if (member.meta === undefined) member.meta = null;
  }
  return member;
}

/** A handler's exception must not break the SDK's frame loop; report it as an uncaught error would be. */
function report(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}

/**
 * One hub connection. Create it with {@link connect} (or `new Hub(options)` and then `hub.connect()`).
 * `S`: the channel map that types publishes and handlers (`HubChannels` from `hub schema --format typescript`).
 * @template [S=UntypedChannels]
 */
export class Hub {
  /** @type {Required<Omit<HubOptions, "token" | "url" | "sseUrl" | "heartbeatTimeout">> & HubOptions} */
  #options;
  #url;
  /** @type {HubState} */
  #state = "closed";
  /** @type {WebSocket | EventStreamSocket | null} */
  #ws = null;
  /** @type {"websocket" | "sse"} the transport of #ws */
  #kind = "websocket";
  /** @type {"websocket" | "sse" | null} the transport of the last connection that reached `hello` */
  #transport = null;
  #sseUrl;
  /** WebSocket attempts in a row that ended before `hello` */
  #upgradeFailures = 0;
  /** On the fallback: WebSocket attempts failed `fallbackAfter` times, and have not worked since. */
  #fallback = false;
  /** On the fallback, a connection was lost: the next attempt tries the WebSocket once (to switch back). */
  #probeDue = false;
  /** Bumped for every socket; callbacks of an older socket compare and return. */
  #generation = 0;
  /** True after `close()`: nothing reconnects until `connect()`. */
  #stopped = true;
  /** True from the `hello` of the current socket until it is lost: requests may be sent. */
  #live = false;
  /** @type {any} the `hello` frame's data of the current connection */
  #hello = null;
  /** @type {string | null} the hub's resume token for this guest (from `hello`), used when we have no token */
  #guestToken = null;
  /** True when the current socket was opened with the guest resume token. */
  #usingGuestToken = false;
  /** @type {number | null} */
  #rtt = null;
  #attempt = 0;
  #nextId = 1;
  #lastFrameAt = 0;
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();
  /** @type {Map<string, Subscription>} */
  #subs = new Map();
  /** @type {Map<number, {resolve: Function, reject: Function, timer: any}>} */
  #pending = new Map();
  /** @type {{frame: object, resolve: (reply: any) => void, reject: (error: any) => void, timer: any, timeout?: number}[]} */
  #outbox = [];
  /** @type {{resolve: Function, reject: Function}[]} */
  #openWaiters = [];
  #timers = { retry: null, connect: null, watchdog: null, ping: null, probe: null };
  /** ms before the next WebSocket probe while on the fallback */
  #probeDelay = 0;
  #onOnline = () => this.#retryNow();

  /** @param {HubOptions} [options] */
  constructor(options = {}) {
    this.#options = {
      minDelay: 250,
      maxDelay: 10000,
      connectTimeout: 10000,
      heartbeatTimeout: null,
      pingInterval: 5000,
      requestTimeout: 10000,
      offlineQueue: 5000,
      offlineQueueMax: 100,
      transports: ["websocket", "sse"],
      fallbackAfter: 2,
      probeTimeout: 3000,
      probeInterval: 30000,
      // an option given as undefined keeps its default
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    };
    this.#url = socketUrl(options.url);
    this.#sseUrl = options.sseUrl ? new URL(options.sseUrl, globalThis.location?.href).href : streamUrl(this.#url);
    this.#guestToken = this.#storedGuest(); // a reloaded tab comes back as the same guest
  }

  // ---- state --------------------------------------------------------------------------------------------

  /** @returns {HubState} */
  get state() {
    return this.#state;
  }

  /** Who this connection is (from `hello`, updated by `auth`); null before the first `hello`. @returns {Identity | null} */
  get me() {
    return this.#hello ? this.#hello.user : null;
  }

  /** The current connection's `hello` data (`client`, `plugins`, `namespaces`, `limits`, …), or null. */
  get hello() {
    return this.#hello;
  }

  /** The last measured round-trip latency in ms (a `ping` op and its `pong`), or null. @returns {number | null} */
  get rtt() {
    return this.#rtt;
  }

  /** The socket URL. */
  get url() {
    return this.#url;
  }

  /**
   * The transport of the connection (the last one that reached the hub's `hello`): `"websocket"`, `"sse"` (the
   * fallback: server-sent events + POSTs), or null before the first. The `transport` event says when it changes.
   * @returns {"websocket" | "sse" | null}
   */
  get transport() {
    return this.#transport;
  }

  /** Channels this Hub is subscribed to (or will resubscribe to once connected). @returns {string[]} */
  get channels() {
    return [...this.#subs.keys()];
  }

  /**
   * Listen to `connecting`, `open`, `reconnecting`, `closed` (each with a {@link StateDetail}), `state`
   * (every state change), `rtt` (ms), `auth` (the new Identity), `error` (a {@link HubError} that answers no
   * request), `event` (an {@link EventFrame} for a channel with no subscription here, such as a handler's
   * reply to a publish) and `revoked` (`{channel, error}`: the hub ended a subscription; its `onError` got the
   * same error). `reconnecting` fires once per attempt.
   * @param {string} event
   * @param {(detail: any) => void} fn
   * @returns {() => void} removes the listener
   */
  on(event, fn) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** @param {string} event @param {Function} fn */
  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
  }

  #emit(event, detail) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        fn(detail);
      } catch (error) {
        report(error);
      }
    }
  }

  /** @param {HubState} state @param {object} [detail] */
  #setState(state, detail = {}) {
    const prev = this.#state;
    if (prev === state && state !== "reconnecting") return;
    this.#state = state;
    const full = { ...detail, state, prev };
    this.#emit(state, full);
    this.#emit("state", full);
  }

  /**
   * Resolves once the connection is open (at once if it is); rejects with `closed` if `close()` comes first.
   * @returns {Promise<this>}
   */
  whenOpen() {
    if (this.#state === "open") return Promise.resolve(this);
    if (this.#stopped) return Promise.reject(new HubError("closed", "The hub connection is closed; call connect()."));
    return new Promise((resolve, reject) => this.#openWaiters.push({ resolve, reject }));
  }

  // ---- connecting ---------------------------------------------------------------------------------------

  /**
   * Start connecting (and keep reconnecting until `close()`). Subscriptions made before are sent once open.
   * @returns {this} this, so `const hub = new Hub(options).connect()` works
   */
  connect() {
    if (!this.#stopped) return this;
    this.#stopped = false;
    this.#attempt = 0;
    globalThis.addEventListener?.("online", this.#onOnline);
    this.#setState("connecting");
    this.#openSocket();
    return this;
  }

  /**
   * Close the connection for good: no reconnect. Requests in flight reject with `disconnected`, queued
   * publishes with `closed`. Subscriptions are kept and resubscribed (with `since`) by a later `connect()`.
   * @param {string} [reason]
   */
  close(reason = "closed by the client") {
    if (this.#stopped) return;
    this.#stopped = true;
    globalThis.removeEventListener?.("online", this.#onOnline);
    const ws = this.#ws;
    this.#dropSocket(`The connection was closed (${reason}).`);
    if (ws) {
      try {
        ws.close(1000, closeReason(reason));
      } catch {
        // a reason the browser refuses (too long in bytes): close without one
        ws.close(1000);
      }
    }
    clearTimeout(this.#timers.retry);
    this.#rejectOutbox("closed", "The hub connection was closed before this publish could be sent.");
    for (const waiter of this.#openWaiters.splice(0)) {
      waiter.reject(new HubError("closed", "The hub connection was closed."));
    }
    this.#setState("closed", { code: 1000, reason, cause: "client" });
  }

  /**
   * Present a (new) token on the open connection: signs a guest in, or refreshes a token before it expires.
   * A string token also replaces the one used for reconnecting.
   * @param {string} token
   * @returns {Promise<Identity>}
   */
  async auth(token) {
    const reply = await this.#request({ op: "auth", token });
    const user = reply.data?.user ?? null;
    if (this.#hello) this.#hello = { ...this.#hello, user };
    if (typeof this.#options.token !== "function") this.#options.token = token;
    this.#emit("auth", user);
    return user;
  }

  async #resolveToken() {
    const option = this.#options.token;
    const token = typeof option === "function" ? await option() : option ?? null;
    this.#usingGuestToken = !token && Boolean(this.#guestToken);
    // Without a token of our own, a guest comes back as the same guest: the hub's resume token from `hello`.
    return token || this.#guestToken;
  }

  /** The guest resume token of this hub URL, kept for reconnects and, in sessionStorage, for reloads of the tab. */
  #rememberGuest(token) {
    this.#guestToken = token;
    try {
      const key = `hub.guest:${this.#url}`;
      if (token) globalThis.sessionStorage?.setItem(key, token);
      else globalThis.sessionStorage?.removeItem(key);
    } catch {
      // storage may be disabled (privacy settings): the guest is then kept for this page's life only
    }
  }

  #storedGuest() {
    try {
      return globalThis.sessionStorage?.getItem(`hub.guest:${this.#url}`) ?? null;
    } catch {
      return null;
    }
  }

  async #openSocket() {
    const generation = ++this.#generation;
    let token;
    try {
      token = await this.#resolveToken();
    } catch (error) {
      if (generation !== this.#generation || this.#stopped) return;
      this.#emit("error", new HubError("token", `Could not get a token: ${error?.message ?? error}`));
      this.#retryLater({ code: null, reason: "Could not get a token.", cause: "token" });
      return;
    }
    if (generation !== this.#generation || this.#stopped) return;
    const kind = this.#nextKind();
    this.#kind = kind;
    let timeout = this.#options.connectTimeout;
    if (kind === "sse") {
      const stream = new EventStreamSocket(this.#sseUrl, token ?? null);
      this.#watch(stream, timeout);
      return;
    }
    if (this.#fallback) timeout = Math.min(timeout, this.#options.probeTimeout); // trying to switch back
    const protocols = [SUBPROTOCOL];
    if (token) protocols.push(TOKEN_SUBPROTOCOL_PREFIX + token);
    let ws;
    try {
      ws = new WebSocket(this.#url, protocols);
    } catch (error) {
      // A malformed URL or token: retrying cannot help.
      const reason = `Cannot open ${this.#url}: ${error?.message ?? error}`;
      this.#emit("error", new HubError("bad_request", reason));
      this.#giveUp({ code: null, reason, cause: "error" });
      return;
    }
    this.#watch(ws, timeout);
  }

  /** The transport of the next attempt: the WebSocket, unless it keeps failing and the fallback is allowed. */
  #nextKind() {
    const { transports } = this.#options;
    if (!transports.includes("sse")) return "websocket";
    if (!transports.includes("websocket")) return "sse";
    if (!this.#fallback) return transports[0] === "sse" ? "sse" : "websocket";
    if (this.#probeDue) {
      this.#probeDue = false;
      return "websocket";
    }
    return "sse";
  }

  /** @param {WebSocket | EventStreamSocket} ws @param {number} timeout */
  #watch(ws, timeout) {
    this.#ws = ws;
    ws.onmessage = (event) => this.#onMessage(ws, event);
    ws.onclose = (event) => this.#onSocketLost(ws, { code: event.code, reason: event.reason, cause: "closed" });
    ws.onerror = () => {}; // a close event always follows; it carries the code
    this.#timers.connect = setTimeout(() => {
      const reason = `No hello from the hub within ${timeout} ms.`;
      this.#abandon(ws, { code: null, reason, cause: "connect_timeout" });
    }, timeout);
  }

  /** On the fallback: after a while, try a WebSocket beside the stream (see #probe). */
  #scheduleProbe() {
    clearTimeout(this.#timers.probe);
    if (!(this.#probeDelay > 0)) return;
    this.#timers.probe = setTimeout(() => this.#probe(), this.#probeDelay);
  }

  /**
   * A WebSocket opened beside the stream, closed again once it says `hello`: if it does, the WebSocket works
   * (the proxy lets it through now, or the attempts that failed met a hub that was down), and the connection
   * moves to it at a quiet moment (no reply awaited), resubscribing with `since` as after any reconnect.
   */
  async #probe() {
    const stream = this.#ws;
    if (this.#kind !== "sse" || !this.#live || this.#stopped) return;
    let token = null;
    try {
      const option = this.#options.token;
      token = (typeof option === "function" ? await option() : option) || this.#guestToken;
    } catch {
      // no token for the probe now: try later
    }
    const protocols = [SUBPROTOCOL];
    if (token) protocols.push(TOKEN_SUBPROTOCOL_PREFIX + token);
    const works = await new Promise((resolve) => {
      let socket;
      try {
        socket = new WebSocket(this.#url, protocols);
      } catch {
        resolve(false);
        return;
      }
      const done = (/** @type {boolean} */ result) => {
        clearTimeout(timer);
        socket.onmessage = socket.onclose = null;
        try {
          socket.close(1000, "probe");
        } catch {
          // already closed
        }
        resolve(result);
      };
      const timer = setTimeout(() => done(false), this.#options.probeTimeout);
      socket.onmessage = (event) => done(typeof event.data === "string" && event.data.startsWith('{"op":"hello"'));
      socket.onclose = () => done(false);
    });
    if (stream !== this.#ws || this.#stopped) return;
    if (!works) {
      this.#probeDelay = Math.min(this.#probeDelay * 2, 600000);
      this.#scheduleProbe();
      return;
    }
    this.#fallback = false;
    this.#upgradeFailures = 0;
    const move = () => {
      if (stream !== this.#ws || this.#stopped) return;
      if (this.#pending.size) {
        this.#timers.probe = setTimeout(move, 100); // a reply is awaited: move once it is in
        return;
      }
      this.#dropSocket("The connection moved to a WebSocket.");
      stream?.close(1000, "moving to a WebSocket");
      this.#openSocket();
    };
    move();
  }

  /**
   * Transport bookkeeping when a connection ends: a WebSocket that ended before `hello` with no code of the
   * hub's (4xxx), while the browser is online, is a refused upgrade; after `fallbackAfter` of them, the
   * fallback. Returns true when the next attempt should come at once (a WebSocket tried while on the fallback
   * did not work: back to the stream).
   */
  #countUpgrade(hadHello, code) {
    const { transports, fallbackAfter } = this.#options;
    if (!transports.includes("sse") || !transports.includes("websocket")) return false;
    if (this.#kind === "sse") {
      // A stream lost, or one that failed too (the hub may have been down, not the WebSocket refused): the
      // next attempt tries the WebSocket once more.
      this.#probeDue = true;
      return false;
    }
    if (hadHello || (code != null && code >= 4000 && code < 5000)) return false;
    if (globalThis.navigator?.onLine === false) return false; // no network at all: not the proxy's doing
    if (this.#fallback) return true;
    this.#upgradeFailures += 1;
    if (this.#upgradeFailures >= fallbackAfter) this.#fallback = true;
    return false;
  }

  /** Give up on a socket that looks dead: do not wait for its close handshake, reconnect now. */
  #abandon(ws, detail) {
    if (ws !== this.#ws) return;
    try {
      ws.close(4000, "unresponsive");
    } catch {
      // already closing
    }
    this.#onSocketLost(ws, detail);
  }

  /** Forget the current socket: stop its timers, fail its requests, mark every subscription to be re-sent. */
  #dropSocket(reason) {
    const ws = this.#ws;
    if (ws) ws.onmessage = ws.onclose = ws.onerror = null;
    this.#ws = null;
    this.#live = false; // `me` and `hello` stay readable while away
    this.#generation++;
    clearTimeout(this.#timers.connect);
    clearTimeout(this.#timers.watchdog);
    clearInterval(this.#timers.ping);
    clearTimeout(this.#timers.probe);
    for (const [id, request] of this.#pending) {
      clearTimeout(request.timer);
      request.reject(new HubError("disconnected", reason));
      this.#pending.delete(id);
    }
    for (const sub of this.#subs.values()) {
      sub.sent = false;
      clearTimeout(sub.retryTimer);
    }
  }

  #onSocketLost(ws, detail) {
    if (ws !== this.#ws || this.#stopped) return;
    if (this.#countUpgrade(this.#live, detail.code)) {
      this.#dropSocket("The connection to the hub was lost before the reply arrived.");
      this.#openSocket(); // the WebSocket still does not work: straight back to the fallback
      return;
    }
    this.#dropSocket("The connection to the hub was lost before the reply arrived.");
    if (AUTH_CLOSE_CODES.has(detail.code) && this.#usingGuestToken) {
      this.#rememberGuest(null); // the resume token was refused (expired, new secret, guests off): come back fresh
      this.#retryLater(detail);
      return;
    }
    const tokenIsFixed = typeof this.#options.token !== "function";
    if (AUTH_CLOSE_CODES.has(detail.code) && (tokenIsFixed || detail.code === 4002)) {
      this.#giveUp(detail); // the same credentials would be refused again
      return;
    }
    this.#retryLater(detail);
  }

  /** Stop for good on a failure that retrying cannot mend, and say why. */
  #giveUp(detail) {
    this.#stopped = true;
    globalThis.removeEventListener?.("online", this.#onOnline);
    const why = `The hub connection stopped: ${detail.reason || detail.code}.`;
    this.#rejectOutbox("closed", why);
    for (const waiter of this.#openWaiters.splice(0)) waiter.reject(new HubError("closed", why));
    this.#setState("closed", detail);
  }

  /** Exponential backoff with full jitter: a random delay in [0, min(maxDelay, minDelay × 2^attempt)). */
  #retryLater(detail) {
    const { minDelay, maxDelay } = this.#options;
    const cap = Math.min(maxDelay, minDelay * 2 ** this.#attempt);
    const delay = Math.round(Math.random() * cap);
    this.#attempt += 1;
    clearTimeout(this.#timers.retry);
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = null;
      this.#openSocket();
    }, delay);
    this.#setState("reconnecting", { ...detail, attempt: this.#attempt, delay });
  }

  /** The browser says the network is back: try now instead of waiting out the backoff. */
  #retryNow() {
    if (this.#stopped || this.#timers.retry === null || this.#ws) return;
    clearTimeout(this.#timers.retry);
    this.#timers.retry = null;
    this.#openSocket();
  }

  // ---- frames in ----------------------------------------------------------------------------------------

  #onMessage(ws, event) {
    if (ws !== this.#ws) return;
    this.#lastFrameAt = performance.now();
    if (typeof event.data !== "string") return; // the hub only sends text frames
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      this.#emit("error", new HubError("bad_frame", "The hub sent a frame that is not JSON."));
      return;
    }
    switch (frame?.op) {
      case "hello":
        this.#onHello(frame.data);
        break;
      case "ping":
        this.#send({ op: "pong" });
        break;
      case "ev":
        this.#dispatch(frame);
        break;
      case "unsub":
        this.#onRevoked(frame);
        break;
      case "ok":
      case "err":
      case "pong":
        this.#settle(frame);
        break;
      default:
        break; // a newer hub's frame this SDK does not know: ignore it
    }
  }

  #onHello(data) {
    clearTimeout(this.#timers.connect);
    const { resume, ...hello } = data ?? {};
    this.#rememberGuest(typeof resume === "string" ? resume : null);
    this.#hello = hello;
    this.#live = true;
    this.#attempt = 0;
    const previous = this.#transport;
    this.#transport = this.#kind;
    if (this.#kind === "websocket") {
      this.#upgradeFailures = 0;
      this.#fallback = false; // the WebSocket works (again)
    }
    this.#armWatchdog();
    // Resubscribe before anything else is sent, so queued publishes land after the subscriptions.
    for (const sub of this.#subs.values()) this.#sendSub(sub);
    this.#flushOutbox();
    this.#startPings();
    if (previous !== this.#transport) this.#emit("transport", { transport: this.#transport, previous });
    if (this.#kind === "sse" && this.#fallback) {
      if (previous !== "sse") this.#probeDelay = this.#options.probeInterval;
      this.#scheduleProbe();
    }
    this.#setState("open", { me: data?.user ?? null, client: data?.client, transport: this.#transport });
    for (const waiter of this.#openWaiters.splice(0)) waiter.resolve(this);
  }

  /** Dead-connection detection: the hub pings every `heartbeat.interval` s; silence past the limit → replace. */
  #armWatchdog() {
    const interval = Number(this.#hello?.heartbeat?.interval ?? 25) * 1000;
    const limit = this.#options.heartbeatTimeout ?? 2 * interval + 2000;
    const ws = this.#ws;
    const check = () => {
      if (ws !== this.#ws) return;
      const silent = performance.now() - this.#lastFrameAt;
      if (silent >= limit) {
        this.#abandon(ws, { code: null, reason: `Nothing from the hub within ${limit} ms.`, cause: "heartbeat" });
      } else {
        this.#timers.watchdog = setTimeout(check, limit - silent);
      }
    };
    this.#timers.watchdog = setTimeout(check, limit);
  }

  #startPings() {
    clearInterval(this.#timers.ping);
    const measure = () => this.ping().catch(() => {}); // a lost ping is the watchdog's business
    measure();
    if (this.#options.pingInterval > 0) this.#timers.ping = setInterval(measure, this.#options.pingInterval);
  }

  #settle(frame) {
    const request = frame.id == null ? undefined : this.#pending.get(frame.id);
    if (!request) {
      if (frame.op === "err") this.#emit("error", new HubError(frame.code, frame.msg, frame.details, frame));
      return;
    }
    this.#pending.delete(frame.id);
    clearTimeout(request.timer);
    if (frame.op === "err") request.reject(new HubError(frame.code, frame.msg, frame.details, frame));
    else request.resolve(frame);
  }

  /** The hub ended a subscription (access withdrawn, the room deleted): it is over, and is not sent again. */
  #onRevoked(frame) {
    const sub = this.#subs.get(frame.ch);
    // A `sub` still waiting for its reply is newer than the subscription the notice ends (the hub answers a
    // `sub` it refuses with an `err`, never with an `unsub`).
    if (!sub || sub.awaitingReply) return;
    this.#subs.delete(frame.ch);
    clearTimeout(sub.retryTimer);
    const message = typeof frame.msg === "string" ? frame.msg : `The hub ended the subscription to ${frame.ch}.`;
    const error = new HubError(typeof frame.code === "string" ? frame.code : "revoked", message, undefined, frame);
    error.revoked = true;
    sub.call("onError", error);
    this.#emit("revoked", { channel: frame.ch, error });
  }

  /** @param {EventFrame} frame */
  #dispatch(frame) {
    const sub = this.#subs.get(frame.ch);
    if (!sub) {
      this.#emit("event", frame);
      return;
    }
    sub.deliver(frame);
  }

  // ---- frames out ---------------------------------------------------------------------------------------

  #send(frame) {
    this.#ws?.send(JSON.stringify(frame));
  }

  /**
   * Send a request with a fresh id; resolve with the reply frame, reject with a HubError.
   * @param {object} frame
   * @param {{timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  #request(frame, { timeout } = {}) {
    if (!this.#live) {
      return Promise.reject(new HubError("disconnected", "Not connected to the hub."));
    }
    const id = this.#nextId++;
    const ms = timeout ?? this.#options.requestTimeout;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new HubError("timeout", `No reply from the hub within ${ms} ms.`));
      }, ms);
      this.#pending.set(id, { resolve, reject, timer });
      this.#send({ ...frame, id });
    });
  }

  // ---- public requests ----------------------------------------------------------------------------------

  /**
   * Publish a message; resolves with the handler's reply data (undefined when it returns nothing, and
   * `{duplicate: true}` for a repeated `mid`). Rejects with a {@link HubError}: the hub's `code` and sentence
   * (`invalid`, `forbidden`, `rate_limited`, …), or `disconnected` when the socket dropped before the reply
   * (the publish may or may not have happened: give a `mid` to retry safely), or `timeout`.
   *
   * While the connection is down the publish waits up to `offlineQueue` ms (default 5000) for it to come
   * back, and is sent after the resubscriptions; if it does not come back in time, the publish rejects with
   * `disconnected` (with `offline_queue_full` when `offlineQueueMax` publishes already wait).
   *
   * @template {ChannelName<S>} C
   * @template {keyof MessagesOf<ChannelOf<S, C>> & string} T
   * @overload
   * @param {C} channel `<namespace>:<room>`
   * @param {T} type `<namespace>.<verb>`
   * @param {MessagesOf<ChannelOf<S, C>>[T]} [data] validated by the plugin's model; default `{}`
   * @param {{mid?: string, timeout?: number}} [options] `mid` makes the publish idempotent (protocol §8)
   * @returns {Promise<any>}
   */
  /**
   * @param {string} channel @param {string} type @param {any} [data]
   * @param {{mid?: string, timeout?: number}} [options]
   * @returns {Promise<any>}
   */
  publish(channel, type, data = {}, { mid, timeout } = {}) {
    const frame = { op: "pub", ch: channel, type, data };
    if (mid != null) frame.mid = mid;
    if (this.#live) return this.#request(frame, { timeout }).then((reply) => reply.data);
    if (this.#stopped) {
      return Promise.reject(new HubError("closed", "The hub connection is closed; call connect() first."));
    }
    return this.#enqueue(frame, timeout);
  }

  #enqueue(frame, timeout) {
    const { offlineQueue, offlineQueueMax } = this.#options;
    if (offlineQueue <= 0) return Promise.reject(new HubError("disconnected", "Not connected to the hub."));
    if (this.#outbox.length >= offlineQueueMax) {
      return Promise.reject(
        new HubError("offline_queue_full", `${offlineQueueMax} publishes already wait for the connection.`),
      );
    }
    return new Promise((resolve, reject) => {
      const item = { frame, resolve, reject, timeout, timer: null };
      item.timer = setTimeout(() => {
        this.#outbox.splice(this.#outbox.indexOf(item), 1);
        reject(new HubError("disconnected", `Not connected to the hub within ${offlineQueue} ms.`));
      }, offlineQueue);
      this.#outbox.push(item);
    }).then((reply) => reply.data);
  }

  #flushOutbox() {
    for (const item of this.#outbox.splice(0)) {
      clearTimeout(item.timer);
      this.#request(item.frame, { timeout: item.timeout }).then(item.resolve, item.reject);
    }
  }

  #rejectOutbox(code, message) {
    for (const item of this.#outbox.splice(0)) {
      clearTimeout(item.timer);
      item.reject(new HubError(code, message));
    }
  }

  /**
   * Who is present on a presence channel now (need not be subscribed): everyone while the room has at most
   * `hello.limits.presence_list` members, else the first page of that many (see {@link Hub#presencePage}).
   * @param {string} channel
   * @returns {Promise<Member[]>}
   */
  async presence(channel) {
    const reply = await this.#request({ op: "presence", ch: channel });
    return (reply.data?.presence ?? []).map(asMember);
  }

  /**
   * The member count of a presence channel, on every node, without its members (need not be subscribed).
   * @param {string} channel
   * @returns {Promise<number>}
   */
  async presenceCount(channel) {
    const data = (await this.#request({ op: "presence", ch: channel, count_only: true })).data ?? {};
    return typeof data.count === "number" ? data.count : 0;
  }

  /**
   * Set this connection's presence metadata on a channel it follows (`null` clears it); the others see the
   * member change (`onPresence` with `{type: "updated"}`). Resubscribes after a reconnect carry it. Before the
   * channel's `sub` reply it only waits for the `sub` (resolves null); refused metadata rejects with the hub's
   * error (`invalid` with `details`, `rate_limited`, `bad_request` where the channel takes none).
   * @param {string} channel a channel subscribed with {@link Hub#subscribe}
   * @param {any} meta JSON of the channel's metadata model, or null
   * @returns {Promise<Member | null>} the member as the room now lists it
   */
  async setPresence(channel, meta) {
    const sub = this.#subs.get(channel);
    if (!sub) throw new HubError("not_subscribed", `This Hub does not follow ${channel}; subscribe first.`);
    sub.handlers = { ...sub.handlers, meta };
    if (!this.#live || !sub.sent || sub.awaitingReply) return null; // the next sub carries it
    const reply = await this.#request({ op: "presence_set", ch: channel, meta: meta ?? null });
    return asMember(reply.data?.member ?? null);
  }

  /**
   * One page of a presence channel's members (need not be subscribed). Start without a cursor; pass each
   * reply's `cursor` for the next page until it is null. A member present during the whole walk is listed at
   * least once (perhaps twice: dedupe by `client`).
   * @param {string} channel
   * @param {{cursor?: string | null, limit?: number}} [options] `limit`: members per page, at most
   *   `hello.limits.presence_list` (the default)
   * @returns {Promise<PresencePage>}
   */
  async presencePage(channel, { cursor, limit } = {}) {
    const frame = { op: "presence", ch: channel };
    if (cursor != null) frame.cursor = cursor;
    if (limit != null) frame.limit = limit;
    const data = (await this.#request(frame)).data ?? {};
    const presence = Array.isArray(data.presence) ? data.presence.map(asMember) : [];
    const count = typeof data.count === "number" ? data.count : presence.length;
    return { presence, count, cursor: typeof data.cursor === "string" ? data.cursor : null };
  }

  /** The room size up to which the hub lists every member and announces joins one by one (hello `limits`). */
  #presenceListLimit() {
    const limit = Number(this.#hello?.limits?.presence_list);
    return limit > 0 ? limit : Infinity; // a hub without the limit lists everyone
  }

  /**
   * Every member of a small room, page by page. Stops early when the room turns out big (more than the list
   * limit): `whole` is then false and `members` the pages read so far.
   * @param {string} channel
   * @returns {Promise<{members: Map<string, Member>, count: number, whole: boolean}>}
   */
  async #walkPresence(channel) {
    const limit = this.#presenceListLimit();
    const members = new Map();
    let cursor = null;
    let count = 0;
    do {
      const page = await this.presencePage(channel, { cursor });
      for (const member of page.presence) members.set(member.client, member);
      ({ count, cursor } = page);
      if (count > limit) return { members, count, whole: false };
    } while (cursor !== null);
    return { members, count, whole: true };
  }

  /**
   * Measure the round trip with a `ping` op; updates `hub.rtt` and fires `rtt`. The SDK does this every
   * `pingInterval` ms on its own.
   * @returns {Promise<number>} ms
   */
  async ping() {
    const started = performance.now();
    await this.#request({ op: "ping" });
    this.#rtt = performance.now() - started;
    this.#emit("rtt", this.#rtt);
    return this.#rtt;
  }

  // ---- subscriptions ------------------------------------------------------------------------------------

  /**
   * Follow a channel. The `sub` is sent now if open, else as soon as the connection opens; after every
   * reconnect it is sent again with `since` (the epoch and the last offset seen), so a recoverable channel
   * delivers exactly the missed events, or says `recovered: false` and sends a fresh snapshot
   * (`onSnapshot(snapshot, {reset: true, …})`).
   *
   * One subscription per channel per Hub: subscribing again before unsubscribing throws `already_subscribed`.
   *
   * @template {ChannelName<S>} C
   * @param {C} channel `<namespace>:<room>`
   * @param {SubscribeHandlers<ChannelOf<S, C>>} [handlers]
   * @returns {() => Promise<void>} unsubscribe: stops the handlers at once, then sends `unsub`
   */
  subscribe(channel, handlers = {}) {
    if (this.#subs.has(channel)) {
      throw new HubError("already_subscribed", `This Hub already follows ${channel}; unsubscribe first.`);
    }
    const sub = new Subscription(channel, handlers, {
      listLimit: () => this.#presenceListLimit(),
      walk: () => this.#walkPresence(channel),
      isActive: () => this.#subs.get(channel) === sub,
    });
    this.#subs.set(channel, sub);
    if (this.#live) this.#sendSub(sub);
    return () => this.#unsubscribe(sub);
  }

  /** @param {Subscription} sub */
  #sendSub(sub) {
    const frame = { op: "sub", ch: sub.channel };
    if (sub.epoch != null && sub.offset != null) frame.since = { epoch: sub.epoch, offset: sub.offset };
    const meta = sub.handlers.meta;
    if (meta != null) frame.meta = meta;
    sub.sent = true;
    sub.awaitingReply = true;
    const generation = this.#generation;
    this.#request(frame).then(
      (reply) => {
        sub.awaitingReply = false;
        if (this.#subs.get(sub.channel) !== sub) return;
        sub.subscribed(reply.data ?? {});
        // metadata changed while the sub was on its way: send the latest
        if (sub.handlers.meta !== meta) this.setPresence(sub.channel, sub.handlers.meta).catch(report);
      },
      (error) => {
        sub.awaitingReply = false;
        if (this.#subs.get(sub.channel) !== sub || generation !== this.#generation) return;
        if (error.code === "disconnected") return; // resubscribed on the next connection
        error.retrying = RETRYABLE_SUB_CODES.has(error.code);
        if (error.retrying) {
          sub.sent = false;
          const cap = Math.min(this.#options.maxDelay, this.#options.minDelay * 2 ** sub.failures++);
          sub.retryTimer = setTimeout(() => {
            if (this.#subs.get(sub.channel) === sub && this.#live && !sub.sent) this.#sendSub(sub);
          }, Math.round(cap / 2 + (Math.random() * cap) / 2));
        } else {
          this.#subs.delete(sub.channel);
        }
        sub.call("onError", error);
      },
    );
  }

  /** @param {Subscription} sub */
  async #unsubscribe(sub) {
    if (this.#subs.get(sub.channel) !== sub) return;
    this.#subs.delete(sub.channel);
    clearTimeout(sub.retryTimer);
    if (!sub.sent || !this.#live) return;
    try {
      await this.#request({ op: "unsub", ch: sub.channel });
    } catch (error) {
      // not_subscribed: the sub was refused meanwhile; disconnected: the hub forgot us anyway.
      if (error.code !== "not_subscribed" && error.code !== "disconnected") throw error;
    }
  }
}

/**
 * What a Subscription needs of its Hub to keep a presence list whole.
 * @typedef {object} PresenceSource
 * @property {() => number} listLimit The hub's `presence_list` limit (Infinity when it has none).
 * @property {() => Promise<{members: Map<string, Member>, count: number, whole: boolean}>} walk Every member.
 * @property {() => boolean} isActive Whether the subscription is still the Hub's (not unsubscribed).
 */

/** One channel followed by a Hub: its handlers, its recovery position and its presence list. */
class Subscription {
  /** @param {string} channel @param {SubscribeHandlers} handlers @param {PresenceSource} source */
  constructor(channel, handlers, source) {
    this.channel = channel;
    this.handlers = handlers;
    this.source = source;
    this.namespace = channel.split(":", 1)[0];
    /** @type {string | undefined} */
    this.epoch = undefined;
    /** @type {number | undefined} */
    this.offset = undefined;
    /** Whether a `sub` went out on the current socket. */
    this.sent = false;
    /** Whether a `sub` waits for its reply. */
    this.awaitingReply = false;
    this.everSubscribed = false;
    this.failures = 0;
    this.retryTimer = null;
    /** @type {Map<string, Member> | null} client id -> member, on presence channels */
    this.members = null;
    /** The room's member count on every node (from the reply, joined/left and `<namespace>.presence`). */
    this.count = 0;
    /** Bumped by every `sub` reply: a walk of the members started before belongs to an older list. */
    this.listGeneration = 0;
    /** @type {EventFrame[] | null} presence events seen while the members are walked (replayed onto the walk) */
    this.seenWhileWalking = null;
  }

  call(name, ...args) {
    const fn = this.handlers[name];
    if (typeof fn !== "function") return;
    try {
      fn(...args);
    } catch (error) {
      report(error);
    }
  }

  /** A `sub` reply: position, snapshot, presence, then any recovered events, in that order. */
  subscribed(data) {
    const resubscribed = this.everSubscribed;
    this.everSubscribed = true;
    this.failures = 0;
    if (data.epoch !== undefined) this.epoch = data.epoch;
    if (data.offset !== undefined) this.offset = data.offset;
    const recovered = data.recovered === true;
    const missed = recovered && Array.isArray(data.missed) ? data.missed : [];
    if (Array.isArray(data.presence)) {
      this.members = new Map(data.presence.map((m) => [m.client, asMember(m)]));
      this.count = Math.max(typeof data.presence_count === "number" ? data.presence_count : 0, this.members.size);
      this.listGeneration += 1;
      this.seenWhileWalking = null;
    }
    /** @type {SubscriptionInfo} */
    const info = {
      channel: this.channel,
      resubscribed,
      recovered,
      reset: resubscribed && !recovered,
      epoch: data.epoch,
      offset: data.offset,
      presence: data.presence,
      presenceCount: this.members ? this.count : undefined,
      missed: missed.length,
    };
    if ("snapshot" in data) info.snapshot = data.snapshot;
    this.call("onSubscribed", info);
    if ("snapshot" in data) this.call("onSnapshot", data.snapshot, info);
    if (this.members) this.#presenceChanged({ type: "sync" });
    for (const frame of missed) this.deliver(frame);
  }

  /** @param {EventFrame} frame */
  deliver(frame) {
    if (typeof frame.offset === "number") this.offset = frame.offset;
    if (this.members && frame.data) this.#onPresenceEvent(frame);
    const typed = this.handlers.events?.[frame.type];
    if (typeof typed === "function") {
      try {
        typed(frame.data, frame);
      } catch (error) {
        report(error);
      }
    }
    this.call("onEvent", frame);
  }

  // ---- presence -----------------------------------------------------------------------------------------

  /** `joined`/`left` (small rooms) and `<namespace>.presence` counts (big rooms), protocol §9. */
  #onPresenceEvent(frame) {
    const { type, data } = frame;
    const joined = type === `${this.namespace}.joined`;
    if (typeof data.client === "string") asMember(data); // joined, left, presence_updated: a member
    if (type === `${this.namespace}.presence_updated` && typeof data.client === "string") {
      this.seenWhileWalking?.push(frame);
      if (this.members.has(data.client)) this.members.set(data.client, data);
      this.#presenceChanged({ type: "updated", member: data });
    } else if (type === `${this.namespace}.presence` && typeof data.count === "number") {
      this.seenWhileWalking?.push(frame);
      this.count = Math.max(data.count, 0);
      // A count in a small room follows a big phase whose joins and leaves were not announced: the list may
      // be partial or stale, so fetch it whole (from then on joined/left keep it whole).
      if (this.count <= this.source.listLimit()) this.#fetchMembers();
      this.#presenceChanged({ type: "count" });
    } else if ((joined || type === `${this.namespace}.left`) && typeof data.client === "string") {
      this.seenWhileWalking?.push(frame);
      this.#applyMember(joined, data);
      this.#presenceChanged({ type: joined ? "joined" : "left", member: data });
    }
  }

  /** A join or leave by client id, idempotently; the count moves only when the list did. */
  #applyMember(joined, member) {
    const listed = this.members.has(member.client);
    if (joined) {
      this.members.set(member.client, member);
      if (!listed) this.count += 1;
    } else if (this.members.delete(member.client)) {
      this.count -= 1;
    }
    this.count = Math.max(this.count, this.members.size);
  }

  /** Replace the list with every member (walking the `presence` op's pages); one walk at a time. */
  async #fetchMembers() {
    if (this.seenWhileWalking) return; // the walk in progress sees the count event and walks again
    const generation = this.listGeneration;
    const seen = (this.seenWhileWalking = []);
    let walked = null;
    try {
      walked = await this.source.walk();
    } catch {
      // disconnected or refused: the resubscribe's reply (or the next count) brings the list
    }
    if (generation !== this.listGeneration || !this.members || !this.source.isActive()) return;
    this.seenWhileWalking = null;
    if (!walked) return;
    this.members = walked.members;
    // events that came during the walk may be newer than some of its pages: apply them again, in order
    const counts = [];
    for (const frame of seen) {
      if (frame.type === `${this.namespace}.presence`) counts.push(frame.data.count);
      else if (frame.type !== `${this.namespace}.presence_updated`) {
        this.#applyMember(frame.type === `${this.namespace}.joined`, frame.data);
      } else if (this.members.has(frame.data.client)) this.members.set(frame.data.client, frame.data);
    }
    const limit = this.source.listLimit();
    const latest = counts.at(-1) ?? walked.count;
    this.count = walked.whole && latest <= limit ? this.members.size : Math.max(latest, this.members.size);
    this.#presenceChanged({ type: "sync" });
    // a count during the walk: the room changed in ways no joined/left told; walk again while it is small
    if (counts.length && this.count <= limit) this.#fetchMembers();
  }

  /** @param {{type: PresenceChange["type"], member?: Member}} change */
  #presenceChanged(change) {
    const members = [...this.members.values()];
    this.call("onPresence", members, { ...change, count: this.count, partial: members.length < this.count });
  }
}

/**
 * Create a Hub and start connecting; `connect<HubChannels>(options)` for typed messages.
 * @template [S=UntypedChannels]
 * @param {HubOptions} [options]
 * @returns {Hub<S>}
 */
export function connect(options = {}) {
  return new Hub(options).connect();
}
