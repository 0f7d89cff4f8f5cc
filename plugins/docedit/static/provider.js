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
 * With `offline: true` the document is also kept in this browser (offline.js, IndexedDB): edits made offline
 * survive a closed tab, and the copy is loaded before the first sync so they go out with it. At that sync the
 * hub decides: a copy of a document that was deleted (or replaced by a new one of the same name) meanwhile, or
 * that the user may no longer see, is deleted and never sent; a reader's, or another account's, pending
 * changes are dropped; the copy the hub refuses an update from is deleted, so reloading cannot send it again
 * (docs/docedit.md, "Offline").
 *
 * Yjs comes from ./vendor/docedit.mjs (built by `npm run build`): the page must use that same module for
 * its `Y.Doc` and editor binding, or Yjs is loaded twice and its type checks fail.
 */

import { LocalCopy } from "./offline.js";
import { Awareness, Y, awarenessProtocol, decoding, encoding, syncProtocol } from "./vendor/docedit.mjs";

/** Base64 `m` longer than this is sent in parts (docs/docedit.md, "Big messages"). */
export const PART_CHARS = 32768;
/** At most this many parts per message. */
export const MAX_PARTS = 256;
/** Awareness changes are sent at most this often (the hub allows 20/s). */
const AWARENESS_INTERVAL_MS = 80;
/** The empty Yjs update (no structs, empty delete set). */
const EMPTY_UPDATE = [0, 0];
/** An auto-created document that nobody wrote in yet: the encoded empty state (docs/docedit.md, §2). */
const EMPTY_DOC_BYTES = 2;
/** How long the local copy's `pending` mark outlives the last acknowledged update (fewer writes while typing). */
const PENDING_CLEAR_MS = 1000;
/** Error codes by which the hub refuses an update itself (docs/docedit.md, §5): never sent again. */
const REFUSALS = new Set(["forbidden", "too_large", "not_found", "invalid"]);

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
 * @typedef {{status: ProviderStatus, synced: boolean, role: string | null, local: boolean, error?: Error}} StatusDetail
 *   `local`: edits are kept in this browser (offline.js) while not synced.
 *
 * @typedef {object} ProviderOptions
 * @property {Awareness} [awareness] Shared with the editor binding; default a new one for `ydoc`.
 * @property {boolean} [offline] Keep the document in this browser (IndexedDB, offline.js): edits made offline
 *   survive a closed tab and go out at the next sync. Default false.
 * @property {(detail: StatusDetail) => void} [onStatus] Every status change.
 * @property {(error: Error) => void} [onError] A refused subscribe or message (a HubError: `forbidden`,
 *   `too_large`, `not_found`, …) or a bad frame. A refused update is not retried: the document on the hub
 *   stays as it was (reload the document to drop the refused change). With `offline`, `error.discarded` says
 *   the local copy was deleted because the hub does not take it; `error.reopen` then says whether the
 *   document is still there for this user (open it afresh) or not (close it); the message says why.
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
  /** @type {LocalCopy | null} the copy in this browser (option `offline`) */
  #local = null;
  #pendingTimer = null;
  #onConnectivity;
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
      // Loaded from the local copy, or typed in another tab (which sends it): a sync sends what the hub lacks.
      if (this.#local?.owns(origin)) return;
      this.#markPending();
      if (!this.#synced) {
        this.#unsent = true; // the step 2 of the next sync carries it
        return;
      }
      if (!canEdit(this.#role)) return;
      this.#outgoing.push(update);
      this.#flush();
    };
    ydoc.on("update", this.#onUpdate);

    if (options.offline) {
      const local = (this.#local = new LocalCopy(hub.url, docId, ydoc));
      local.on("cleared", () => this.#emitStatus());
      local.whenLoaded.then(() => this.#adoptLocal());
    }

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
      this.#setStatus(this.#disconnectedStatus());
    });
    // the browser going offline or online while we wait for the hub
    this.#onConnectivity = () => {
      if (!this.#synced && !this.#destroyed && this.hub.state !== "open") this.#setStatus(this.#disconnectedStatus());
    };
    globalThis.addEventListener?.("offline", this.#onConnectivity);
    globalThis.addEventListener?.("online", this.#onConnectivity);

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
        if (data?.doc) this.#local?.remember({ doc: data.doc, role: this.#role });
        options.events?.["docedit.meta"]?.(data, frame);
      },
      "docedit.deleted": (data, frame) => {
        this.#local?.clear(); // the copy goes with the document
        options.events?.["docedit.deleted"]?.(data, frame);
      },
    };
    this.#unsubscribe = hub.subscribe(this.channel, {
      events,
      onSnapshot: (snapshot, info) => this.#onSnapshot(snapshot, info),
      onPresence: options.onPresence,
      onError: (error) => {
        if (!error.retrying) {
          // The subscription is over: access withdrawn, the document deleted, or (on a resubscribe after being
          // offline) no longer there for us. The local copy must not outlive it.
          if (this.#local && (error.revoked || error.code === "not_found" || error.code === "forbidden")) {
            const pending = this.#local.meta.pending === true;
            this.#local.clear();
            if (!error.revoked) {
              error.discarded = true;
              error.reopen = false;
              if (pending) error.message = `${error.message} The changes you made offline could not be saved.`;
            }
          }
          this.#setStatus("error", error);
        }
        this.#reportError(error);
      },
    });
    this.#setStatus(hub.state === "open" ? "connecting" : this.#disconnectedStatus());
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

  /** The copy kept in this browser (option `offline`), or null. @returns {LocalCopy | null} */
  get local() {
    return this.#local;
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
    const reply = this.hub.publish(this.channel, type, data);
    if (type !== "docedit.delete" || !this.#local) return reply;
    // the copy goes with the document (its docedit.deleted may come after the app has closed the provider)
    const local = this.#local;
    return reply.then((value) => {
      local.clear();
      return value;
    });
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
    clearTimeout(this.#pendingTimer);
    this.doc.off("update", this.#onUpdate);
    this.awareness.off("update", this.#onAwareness);
    this.#offState();
    globalThis.removeEventListener?.("offline", this.#onConnectivity);
    globalThis.removeEventListener?.("online", this.#onConnectivity);
    this.#local?.destroy();
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
      if (this.#local) {
        // the copy first: our step 1 and step 2 then account for what was typed offline
        await this.#local.whenLoaded;
        if (generation !== this.#generation) return;
        const refusal = this.#localRefusal(snapshot);
        if (refusal) {
          this.#discardLocal(refusal, snapshot);
          return;
        }
      }
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
          try {
            await this.#sendSync(syncMessage(syncProtocol.messageYjsSyncStep2, missing));
          } catch (error) {
            this.#refused(error);
            throw error;
          }
          if (generation !== this.#generation) return;
        }
        this.#unsent = false;
      }
      this.#synced = true;
      this.#rememberSync(snapshot);
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
          else if (generation === this.#generation) {
            this.#refused(error);
            this.#reportError(error);
          }
        }
      }
    } finally {
      this.#sending = false;
    }
    if (this.#outgoing.length && this.#synced) this.#flush();
    else if (this.#synced && !this.#unsent) this.#schedulePendingClear();
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

  // ---- the local copy (option `offline`) ------------------------------------------------------------------

  /** The copy is loaded: until the hub answers, show what it remembers (title, role: editable offline). */
  #adoptLocal() {
    const local = this.#local;
    if (this.#destroyed || !local || local !== this.#local) return;
    const { doc, role, pending } = local.meta;
    if (pending) this.#unsent = true; // deletions do not show in a state vector: send a step 2 in any case
    if (!this.#meta && doc && doc.id === this.docId) this.#setMeta(doc, role ?? null);
    this.#emitStatus();
  }

  /** Why the hub's answer forbids sending (or keeping) the local copy, or null when it may be synced. */
  #localRefusal(snapshot) {
    const meta = this.#local.meta;
    const doc = snapshot.doc ?? {};
    const title = doc.title ?? this.docId;
    const pending = meta.pending === true;
    if (meta.created != null && doc.created !== meta.created) {
      // A new document under the old name (very likely our own resubscribe re-created it): the copy is of one
      // that is gone. Merging it would bring the deleted text back.
      const lost = pending ? " The changes you made offline could not be saved." : "";
      return { reason: "deleted", message: `“${meta.doc?.title ?? title}” was deleted while you were offline.${lost}` };
    }
    if (pending && !canEdit(snapshot.role)) {
      return { reason: "read_only", message: `You can only read “${title}” now; the changes you made offline were not saved.` };
    }
    const me = this.hub.me;
    if (pending && meta.user && !meta.anonymous && me && meta.user !== me.user) {
      return {
        reason: "other_user",
        message: `The changes made offline in “${title}” were made by another account (${meta.user}); they were not sent.`,
      };
    }
    return null;
  }

  /** Drop the local copy the hub will not take, undo a re-creation we caused, and tell the app. */
  #discardLocal({ reason, message }, snapshot) {
    const doc = snapshot.doc ?? {};
    const recreated =
      reason === "deleted" &&
      snapshot.role === "owner" &&
      doc.title === this.docId &&
      (doc.size ?? 0) <= EMPTY_DOC_BYTES &&
      !doc.editors?.length &&
      !doc.readers?.length;
    if (recreated) {
      // Our resubscribe auto-created the deleted document anew (empty, ours, titled with its id): delete it
      // again, so the deletion made while we were away stands.
      this.request("docedit.delete", {}).catch(() => {});
    }
    this.#local.clear();
    this.#generation++;
    this.#synced = false;
    const error = new Error(message);
    error.code = reason;
    error.discarded = true;
    error.reopen = reason !== "deleted" || !recreated;
    this.#setStatus("error", error);
    this.#reportError(error);
    this.destroy(); // nothing more from this Y.Doc: it holds the copy the hub does not take
  }

  /** The hub refused an update: the copy holds it and would send it again after a reload, so it goes. (Not
   * for a failure that says nothing about the update, such as `unavailable`: the copy keeps it pending.) */
  #refused(error) {
    if (!this.#local || !REFUSALS.has(error?.code)) return;
    this.#local.clear();
    error.discarded = true;
    error.reopen = error.code !== "not_found";
  }

  #markPending() {
    const local = this.#local;
    if (!local?.available) return;
    clearTimeout(this.#pendingTimer);
    this.#pendingTimer = null;
    if (local.meta.pending) return;
    const me = this.hub.me;
    // Offline after a reload the hub has not said who we are: the user of the last sync is typing.
    const user = me ? me.user : (local.meta.user ?? null);
    const anonymous = me ? Boolean(me.anonymous) : (local.meta.anonymous ?? true);
    local.remember({ pending: true, user, anonymous });
  }

  /** Everything reached the hub: clear the mark a little later (typing sets it again meanwhile). */
  #schedulePendingClear() {
    if (!this.#local?.meta.pending || this.#pendingTimer !== null) return;
    this.#pendingTimer = setTimeout(() => {
      this.#pendingTimer = null;
      if (this.#synced && !this.#unsent && !this.#sending && !this.#outgoing.length) {
        this.#local?.remember({ pending: false });
      }
    }, PENDING_CLEAR_MS);
  }

  /** A sync completed: remember which document, our role and who we are; fold the stored records. */
  #rememberSync(snapshot) {
    const local = this.#local;
    if (!local?.available) return;
    const me = this.hub.me;
    const pending = this.#outgoing.length > 0 || this.#sending;
    local.remember({
      created: snapshot.doc?.created,
      doc: this.#meta,
      role: this.#role,
      user: me?.user ?? null,
      anonymous: Boolean(me?.anonymous),
      pending,
    });
    local.compact();
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

  /** Not connected: "offline" when the browser says so (or the hub connection is closed), else "connecting". */
  #disconnectedStatus() {
    return this.hub.state === "closed" || globalThis.navigator?.onLine === false ? "offline" : "connecting";
  }

  /** Tell the status again (the local copy became available, or went). */
  #emitStatus() {
    if (!this.#destroyed) this.#setStatus(this.#status, this.#lastError);
  }

  #lastError = undefined;

  #setStatus(status, error = undefined) {
    this.#status = status;
    this.#lastError = error;
    /** @type {StatusDetail} */
    const detail = { status, synced: this.#synced, role: this.#role, local: Boolean(this.#local?.available) };
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
