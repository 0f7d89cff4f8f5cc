/**
 * provider.js — `HubYProvider`: a Yjs provider over the page's one hub connection (hub.js).
 *
 * It keeps a `Y.Doc` in sync with a docedit document (`docedit:<doc>`, the wire protocol of docs/docedit.md)
 * and relays awareness (cursors, selections, names) both ways. Bind any Yjs editor binding to the same
 * `Y.Doc` and `Awareness` (this plugin's panel uses y-codemirror.next; see docs/client.md, "Collaborative
 * documents").
 *
 *     import { Y } from "/plugins/docedit/vendor/docedit.mjs";
 *     import { HubYProvider } from "/plugins/docedit/provider.js";
 *     const ydoc = new Y.Doc();
 *     const provider = new HubYProvider(hub, "notes", ydoc, { onStatus: ({ status }) => show(status) });
 *     ydoc.getText("content").observe(() => render(ydoc.getText("content").toString()));
 *
 * What it does on every (re)subscribe: applies the snapshot's awareness, sends its own sync step 1 and
 * applies the step 2 it gets back (everything it lacks), then, if it may edit, sends what the hub lacks
 * (offline edits) as a step 2. Local changes then go out as sync `update` messages, coalesced while one is
 * in flight and cut into parts when big; remote `docedit.update` events are applied as they come.
 *
 * Yjs comes from ./vendor/docedit.mjs (built by `npm run build`): the page must use that same module for
 * its `Y.Doc` and editor binding, or Yjs is loaded twice and its type checks fail.
 */

import { Awareness, Y, awarenessProtocol, decoding, encoding, syncProtocol } from "./vendor/docedit.mjs";

/** Base64 `m` longer than this is sent in parts (docs/docedit.md, "Big messages"). */
export const PART_CHARS = 32768;
/** At most this many parts per message. */
export const MAX_PARTS = 256;
/** Awareness changes are sent at most this often (the hub allows 20/s). */
const AWARENESS_INTERVAL_MS = 80;
/** The empty Yjs update (no structs, empty delete set). */
const EMPTY_UPDATE = [0, 0];

/** Document ids the hub accepts (docs/docedit.md, "Names"). */
export const DOC_ID_PATTERN = /^[A-Za-z0-9_.=+-]{1,64}$/;

/** @param {Uint8Array} bytes @returns {string} standard base64 with padding */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** @param {string} text @returns {Uint8Array} */
export function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * The role a user has in a document, from its meta (docs/docedit.md, "Roles and meta").
 * @param {any} meta
 * @param {string | null | undefined} user
 * @returns {"owner" | "editor" | "reader" | null}
 */
export function roleOf(meta, user) {
  if (!meta || !user) return null;
  if (meta.owner?.user === user) return "owner";
  if (meta.editors?.includes(user) || meta.public === "edit") return "editor";
  if (meta.readers?.includes(user) || meta.public === "read") return "reader";
  return null;
}

/** Whether a role may change the document. @param {string | null} role */
export const canEdit = (role) => role === "owner" || role === "editor";

/** The Yjs clientIDs an awareness update speaks of (its format: count, then clientID, clock, state). */
function awarenessClients(update) {
  const decoder = decoding.createDecoder(update);
  const count = decoding.readVarUint(decoder);
  const ids = [];
  for (let i = 0; i < count; i++) {
    ids.push(decoding.readVarUint(decoder));
    decoding.readVarUint(decoder); // clock
    decoding.readVarString(decoder); // state (JSON)
  }
  return ids;
}

/** The state vector inside a sync step 1 message. */
function stateVectorOfStep1(message) {
  const decoder = decoding.createDecoder(message);
  if (decoding.readVarUint(decoder) !== syncProtocol.messageYjsSyncStep1) {
    throw new Error("the snapshot's step1 is not a sync step 1 message");
  }
  return decoding.readVarUint8Array(decoder);
}

/** A sync sub-message (0 step1, 1 step2, 2 update) carrying `payload`. */
function syncMessage(type, payload) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, type);
  encoding.writeVarUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}

let partCounter = 0;

/**
 * @typedef {"connecting" | "syncing" | "synced" | "offline" | "error" | "closed"} ProviderStatus
 * @typedef {{status: ProviderStatus, synced: boolean, role: string | null, error?: Error}} StatusDetail
 *
 * @typedef {object} ProviderOptions
 * @property {Awareness} [awareness] Shared with the editor binding; default a new one for `ydoc`.
 * @property {(detail: StatusDetail) => void} [onStatus] Every status change.
 * @property {(error: Error) => void} [onError] A refused subscribe or message (a HubError: `forbidden`,
 *   `too_large`, `not_found`, …) or a bad frame. A refused update is not retried: the document on the hub
 *   stays as it was (reload the document to drop the refused change).
 * @property {(snapshot: any, info: any) => void} [onSnapshot] Each `sub` reply (after the provider used it).
 * @property {Record<string, (data: any, frame: any) => void>} [events] More handlers for this channel's
 *   events (`docedit.meta`, `docedit.deleted`, `docedit.version_saved`, `docedit.restored`, …): the hub
 *   allows one subscription per channel, and the provider holds it.
 * @property {(members: any[], change: any) => void} [onPresence] The channel's presence list.
 */

/** A Yjs provider for one docedit document over a hub.js `Hub`. */
export class HubYProvider {
  /** @type {ProviderStatus} */
  #status = "connecting";
  #synced = false;
  /** @type {"owner" | "editor" | "reader" | null} */
  #role = null;
  #meta = null;
  #destroyed = false;
  /** Bumped on every snapshot: work of an older subscription compares and stops. */
  #generation = 0;
  /** @type {Uint8Array[]} local updates waiting to be sent */
  #outgoing = [];
  #sending = false;
  /** True when local changes may not have reached the hub (made while not synced, or a send was cut off). */
  #unsent = false;
  /** @type {Set<number>} local awareness clientIDs changed since the last send */
  #awarenessChanged = new Set();
  #awarenessTimer = null;
  /** @type {Map<string, Set<number>>} hub client id -> the Yjs clientIDs it announced */
  #peers = new Map();
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();
  #unsubscribe;
  #offState;
  #onUpdate;
  #onAwareness;

  /**
   * @param {import("/hub.js").Hub} hub the page's connection
   * @param {string} docId the document (`[A-Za-z0-9_.=+-]{1,64}`); missing documents are created when the
   *   hub's `auto_create` is on
   * @param {Y.Doc} ydoc the document to keep in sync (its root `Y.Text` "content" is the text)
   * @param {ProviderOptions} [options]
   */
  constructor(hub, docId, ydoc, options = {}) {
    if (!DOC_ID_PATTERN.test(docId)) throw new Error(`not a document id: ${JSON.stringify(docId)}`);
    this.hub = hub;
    this.docId = docId;
    this.channel = `docedit:${docId}`;
    this.doc = ydoc;
    this.awareness = options.awareness ?? new Awareness(ydoc);
    this.options = options;

    this.#onUpdate = (update, origin) => {
      if (origin === this) return;
      if (!this.#synced) {
        this.#unsent = true; // the step 2 of the next sync carries it
        return;
      }
      if (!canEdit(this.#role)) return;
      this.#outgoing.push(update);
      this.#flush();
    };
    ydoc.on("update", this.#onUpdate);

    this.#onAwareness = ({ added, updated, removed }, origin) => {
      if (origin === this) return;
      for (const id of [...added, ...updated, ...removed]) {
        if (id === this.doc.clientID) this.#awarenessChanged.add(id);
      }
      this.#scheduleAwareness();
    };
    this.awareness.on("update", this.#onAwareness);

    this.#offState = hub.on("state", ({ state }) => {
      if (state === "open") return; // the subscription's reply takes it from there
      this.#synced = false;
      this.#clearRemoteAwareness();
      this.#setStatus(state === "closed" ? "offline" : "connecting");
    });

    const events = {
      ...(options.events ?? {}),
      "docedit.update": (data, frame) => {
        this.#onRemoteUpdate(data);
        options.events?.["docedit.update"]?.(data, frame);
      },
      "docedit.awareness": (data, frame) => {
        this.#onRemoteAwareness(data);
        options.events?.["docedit.awareness"]?.(data, frame);
      },
      "docedit.left": (data, frame) => {
        this.#dropPeer(data?.client);
        options.events?.["docedit.left"]?.(data, frame);
      },
      "docedit.meta": (data, frame) => {
        this.#setMeta(data?.doc);
        options.events?.["docedit.meta"]?.(data, frame);
      },
    };
    this.#unsubscribe = hub.subscribe(this.channel, {
      events,
      onSnapshot: (snapshot, info) => this.#onSnapshot(snapshot, info),
      onPresence: options.onPresence,
      onError: (error) => {
        if (!error.retrying) this.#setStatus("error", error);
        this.#reportError(error);
      },
    });
    this.#setStatus(hub.state === "open" ? "connecting" : "offline");
  }

  // ---- public -------------------------------------------------------------------------------------------

  /** True once the hub's state and ours agree (after the step 1 / step 2 exchange of this subscription). */
  get synced() {
    return this.#synced;
  }

  /** This user's role in the document: "owner", "editor", "reader", or null (before the snapshot). */
  get role() {
    return this.#role;
  }

  /** The document's meta (title, owner, editors, readers, public, …) as last seen, or null. */
  get meta() {
    return this.#meta;
  }

  /** @returns {ProviderStatus} */
  get status() {
    return this.#status;
  }

  /**
   * Listen to `status` ({@link StatusDetail}), `synced` (boolean), `role` (the new role) and `meta`.
   * @returns {() => void} removes the listener
   */
  on(event, fn) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Resolves once synced (at once if it is). */
  whenSynced() {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.on("synced", (synced) => {
        if (synced) {
          off();
          resolve();
        }
      });
    });
  }

  /**
   * Send another docedit message on this document's channel (`docedit.rename`, `docedit.save_version`, …).
   * @returns {Promise<any>} the reply data
   */
  request(type, data = {}) {
    return this.hub.publish(this.channel, type, data);
  }

  /** Stop syncing: says goodbye on awareness, unsubscribes, removes every listener. The Y.Doc is kept. */
  destroy() {
    if (this.#destroyed) return;
    // our cursor goes away for the others (the hub forgets it on unsubscribe as well)
    if (this.#synced && this.awareness.getLocalState() !== null) {
      const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, [this.doc.clientID], new Map([
        [this.doc.clientID, null],
      ]));
      this.hub.publish(this.channel, "docedit.awareness", { m: toBase64(update) }).catch(() => {});
    }
    this.#destroyed = true;
    this.#generation++;
    clearTimeout(this.#awarenessTimer);
    this.doc.off("update", this.#onUpdate);
    this.awareness.off("update", this.#onAwareness);
    this.#offState();
    this.#clearRemoteAwareness();
    this.#unsubscribe().catch(() => {});
    this.#synced = false;
    this.#setStatus("closed");
    this.#listeners.clear();
  }

  // ---- the sync sequence --------------------------------------------------------------------------------

  async #onSnapshot(snapshot, info) {
    if (this.#destroyed) return;
    const generation = ++this.#generation;
    this.#synced = false;
    // What they held is in the step 2 below, which must then be sent even when it adds no new items (a
    // deletion does not move the state vector).
    if (this.#outgoing.length) this.#unsent = true;
    this.#outgoing = [];
    this.#setMeta(snapshot.doc, snapshot.role);
    this.#setStatus("syncing");
    this.#clearRemoteAwareness();
    try {
      if (snapshot.awareness) {
        awarenessProtocol.applyAwarenessUpdate(this.awareness, fromBase64(snapshot.awareness), this);
      }
      // whose cursors those are, so a docedit.left drops them (else they linger until the awareness timeout)
      for (const [client, ids] of Object.entries(snapshot.awareness_owners ?? {})) {
        if (client === this.hub.hello?.client) continue;
        this.#peers.set(client, new Set(ids.filter((id) => id !== this.doc.clientID)));
      }
      const serverVector = stateVectorOfStep1(fromBase64(snapshot.step1));
      // (1) our step 1: the reply is the step 2 with everything we lack
      const step1 = syncMessage(syncProtocol.messageYjsSyncStep1, Y.encodeStateVector(this.doc));
      const reply = await this.#sendSync(step1);
      if (generation !== this.#generation) return;
      this.#applySync(fromBase64(reply.m));
      // (2) what the hub lacks (offline edits), if we may edit
      if (canEdit(this.#role)) {
        // (the full delete set is always in such an update: only send when there may be news)
        const missing = Y.encodeStateAsUpdate(this.doc, serverVector);
        if ((this.#unsent || aheadOf(this.doc, serverVector)) && !isEmptyUpdate(missing)) {
          await this.#sendSync(syncMessage(syncProtocol.messageYjsSyncStep2, missing));
          if (generation !== this.#generation) return;
        }
        this.#unsent = false;
      }
      this.#synced = true;
      this.#emit("synced", true);
      this.#setStatus("synced");
      // our cursor for the ones who were there before us (and after a reconnect)
      if (this.awareness.getLocalState() !== null) {
        this.#awarenessChanged.add(this.doc.clientID);
        this.#scheduleAwareness(true);
      }
      if (this.#outgoing.length) this.#flush();
    } catch (error) {
      if (generation !== this.#generation) return;
      // disconnected: the next subscribe starts over; anything else is worth telling
      if (error?.code !== "disconnected") {
        this.#setStatus("error", error);
        this.#reportError(error);
      }
      return;
    }
    this.options.onSnapshot?.(snapshot, info);
  }

  /** Apply a sync sub-message from the hub (step 2 or update). */
  #applySync(message) {
    const decoder = decoding.createDecoder(message);
    const encoder = encoding.createEncoder();
    syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
  }

  /** Send one sync sub-message (in parts when big); resolves with the reply data of the last part. */
  async #sendSync(message) {
    const m = toBase64(message);
    if (m.length <= PART_CHARS) return this.hub.publish(this.channel, "docedit.sync", { m });
    const count = Math.ceil(m.length / PART_CHARS);
    if (count > MAX_PARTS) {
      const error = new Error(`This change is too large to send (${message.length} bytes).`);
      error.code = "too_large";
      throw error;
    }
    const id = `${Date.now().toString(36)}${(partCounter++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    let reply;
    for (let index = 0; index < count; index++) {
      const chunk = m.slice(index * PART_CHARS, (index + 1) * PART_CHARS);
      reply = await this.hub.publish(this.channel, "docedit.sync", { m: chunk, part: { id, index, count } });
    }
    return reply;
  }

  /** Send the queued local updates, merged into one, one message in flight at a time (ordered). */
  async #flush() {
    if (this.#sending) return;
    this.#sending = true;
    const generation = this.#generation;
    try {
      while (this.#outgoing.length && generation === this.#generation && this.#synced) {
        const updates = this.#outgoing.splice(0);
        const update = updates.length === 1 ? updates[0] : Y.mergeUpdates(updates);
        try {
          await this.#sendSync(syncMessage(syncProtocol.messageYjsUpdate, update));
        } catch (error) {
          // disconnected: the step 2 of the next subscribe carries it; a refusal is reported
          if (error?.code === "disconnected" || error?.code === "timeout") this.#unsent = true;
          else if (generation === this.#generation) this.#reportError(error);
        }
      }
    } finally {
      this.#sending = false;
    }
    if (this.#outgoing.length && this.#synced) this.#flush();
  }

  #onRemoteUpdate(data) {
    if (!data || typeof data.m !== "string") return;
    if (data.client && data.client === this.hub.hello?.client) return; // our own, already applied
    try {
      this.#applySync(fromBase64(data.m));
    } catch (error) {
      this.#reportError(error);
    }
  }

  // ---- awareness ----------------------------------------------------------------------------------------

  #scheduleAwareness(now = false) {
    if (this.#awarenessTimer !== null && !now) return;
    clearTimeout(this.#awarenessTimer);
    this.#awarenessTimer = setTimeout(() => this.#sendAwareness(), now ? 0 : AWARENESS_INTERVAL_MS);
  }

  #sendAwareness() {
    this.#awarenessTimer = null;
    if (this.#destroyed || !this.#synced || !this.#awarenessChanged.size) return;
    const ids = [...this.#awarenessChanged];
    this.#awarenessChanged.clear();
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, ids);
    // best effort: a lost cursor position is replaced by the next one
    this.hub.publish(this.channel, "docedit.awareness", { m: toBase64(update) }).catch((error) => {
      if (error?.code !== "disconnected" && error?.code !== "rate_limited") this.#reportError(error);
    });
  }

  #onRemoteAwareness(data) {
    if (!data || typeof data.m !== "string") return;
    if (data.client && data.client === this.hub.hello?.client) return;
    try {
      const update = fromBase64(data.m);
      if (data.client) {
        let ids = this.#peers.get(data.client);
        if (!ids) this.#peers.set(data.client, (ids = new Set()));
        for (const id of awarenessClients(update)) if (id !== this.doc.clientID) ids.add(id);
      }
      awarenessProtocol.applyAwarenessUpdate(this.awareness, update, this);
    } catch (error) {
      this.#reportError(error);
    }
  }

  /** A hub client left the document: its cursors go (docedit.left). */
  #dropPeer(client) {
    const ids = this.#peers.get(client);
    this.#peers.delete(client);
    if (ids?.size) awarenessProtocol.removeAwarenessStates(this.awareness, [...ids], this);
  }

  #clearRemoteAwareness() {
    const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID);
    this.#peers.clear();
    if (others.length) awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
  }

  // ---- state --------------------------------------------------------------------------------------------

  #setMeta(meta, role = undefined) {
    if (!meta) return;
    this.#meta = meta;
    const next = role !== undefined ? role : roleOf(meta, this.hub.me?.user);
    this.#emit("meta", meta);
    if (next !== this.#role) {
      this.#role = next;
      this.#emit("role", next);
    }
  }

  #setStatus(status, error = undefined) {
    this.#status = status;
    /** @type {StatusDetail} */
    const detail = { status, synced: this.#synced, role: this.#role };
    if (error) detail.error = error;
    this.#emit("status", detail);
    try {
      this.options.onStatus?.(detail);
    } catch (thrown) {
      reportError(thrown);
    }
  }

  #reportError(error) {
    if (this.options.onError) {
      try {
        this.options.onError(error);
      } catch (thrown) {
        reportError(thrown);
      }
    } else {
      console.warn(`docedit ${this.docId}:`, error);
    }
  }

  #emit(event, detail) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        fn(detail);
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/** Whether the doc holds structs beyond a state vector (changes the holder of that vector lacks). */
function aheadOf(ydoc, encodedVector) {
  const theirs = Y.decodeStateVector(encodedVector);
  for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(ydoc))) {
    if (clock > (theirs.get(client) ?? 0)) return true;
  }
  return false;
}

function isEmptyUpdate(update) {
  return update.length === EMPTY_UPDATE.length && update[0] === 0 && update[1] === 0;
}

function reportError(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}
