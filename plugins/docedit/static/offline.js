/**
 * offline.js — `LocalCopy`: a docedit document's copy in this browser, so edits made offline survive a closed
 * tab and reach the hub on the next sync (docs/docedit.md, "Offline").
 *
 * - The Yjs updates go to IndexedDB through y-indexeddb (the Yjs project's persistence): one database per
 *   hub and document, named `hub-docedit/<hub ws origin>/<doc>` (IndexedDB itself is per page origin).
 *   y-indexeddb folds its update records into one once there are 500 of them, so a copy stays about the size
 *   of the document.
 * - A small record beside them (`meta`) remembers what the last sync said: the document's meta (its `created`
 *   tells one incarnation of a name from the next), this user's role, and whether local changes may not have
 *   reached the hub yet (`pending`, with the user who made them).
 * - Tabs of the same document share the database and keep each other current over a BroadcastChannel of the
 *   same name, online or not.
 * - At most `keep` copies (default {@link KEEP_COPIES}) are kept per page origin: opening one more deletes the
 *   least recently used copies that hold no pending changes. A copy is deleted with its document, and when
 *   the hub refuses it (see provider.js).
 *
 * The server stays the authority: this module only stores and loads. provider.js decides, at each sync,
 * whether the copy may be sent (docs/docedit.md, "Offline").
 */

import { IndexeddbPersistence, Y, storeState } from "./vendor/docedit.mjs";

/** Copies kept per page origin before the least recently used ones without pending changes go. */
export const KEEP_COPIES = 20;
/** localStorage: the copies of this page origin, name -> {used: ms, pending: boolean}. */
const INDEX_KEY = "hub.docedit.copies";
const PREFIX = "hub-docedit";

/** The IndexedDB database of a document on a hub. @param {string} hubUrl the hub's socket URL */
export function localCopyName(hubUrl, docId) {
  const url = new URL(hubUrl, globalThis.location?.href);
  return `${PREFIX}/${url.protocol}//${url.host}/${docId}`;
}

// ---- the index of copies (localStorage) ---------------------------------------------------------------

function readIndex() {
  try {
    const value = JSON.parse(globalThis.localStorage?.getItem(INDEX_KEY) ?? "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? value : {};
  } catch {
    return {}; // unreadable or storage disabled: treated as empty
  }
}

function writeIndex(index) {
  try {
    globalThis.localStorage?.setItem(INDEX_KEY, JSON.stringify(index));
  } catch {
    // storage full or disabled: the copies still work, only the bound on their number is not kept
  }
}

let lastUsed = 0;

function touchIndex(name, pending) {
  const index = readIndex();
  lastUsed = Math.max(Date.now(), lastUsed + 1); // strictly increasing in this page: the order is the use order
  index[name] = { used: lastUsed, pending: Boolean(pending) };
  writeIndex(index);
}

function dropFromIndex(name) {
  const index = readIndex();
  if (name in index) {
    delete index[name];
    writeIndex(index);
  }
}

/** Whether this browser holds a copy of the document (as far as the index knows). */
export function hasLocalCopy(hubUrl, docId) {
  return localCopyName(hubUrl, docId) in readIndex();
}

/** Copies beyond `keep`, least recently used first, that may go: no pending changes, not `except`. */
function evictable(keep, except) {
  const entries = Object.entries(readIndex()).sort(([, a], [, b]) => (b.used ?? 0) - (a.used ?? 0));
  return entries.slice(keep).filter(([name, entry]) => name !== except && !entry.pending).map(([name]) => name);
}

/** Delete a database; resolves when done (or refused: nothing more can be done about it here). */
function deleteDatabase(name) {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => resolve(true);
    request.onerror = () => resolve(false);
  });
}

let probe = null;

/** Whether IndexedDB opens at all here (it may be disabled); asked once per page. */
function indexedDbWorks() {
  probe ??= new Promise((resolve) => {
    try {
      const request = indexedDB.open(`${PREFIX}/probe`);
      request.onsuccess = () => {
        request.result.close();
        resolve(true);
      };
      request.onerror = () => resolve(false);
      request.onblocked = () => resolve(false);
    } catch {
      resolve(false);
    }
  });
  return probe;
}

/**
 * @typedef {object} LocalMeta what the last sync said, kept with the copy
 * @property {number} [created] the document's `created` (which incarnation of the name this copy is of)
 * @property {any} [doc] the document's meta, for the title and role while offline
 * @property {"owner" | "editor" | "reader" | null} [role] this user's role at the last sync
 * @property {boolean} [pending] local changes the hub may not have yet
 * @property {string | null} [user] who made the pending changes
 * @property {boolean} [anonymous] whether that was a guest
 */

/** A document's copy in IndexedDB, kept current with its `Y.Doc` (and with other tabs). */
export class LocalCopy {
  /** @type {IndexeddbPersistence | null} */
  #persistence = null;
  /** @type {BroadcastChannel | null} */
  #channel = null;
  /** @type {LocalMeta} */
  #meta = {};
  #metaWrite = Promise.resolve();
  #available = false;
  #loaded = false;
  #closed = false;
  /** Resolves when the storage closes: a load still waiting for IndexedDB then gives up. */
  #closedSignal;
  #signalClosed = () => {};
  #cleared = false;
  #keep;
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map();
  #onDocUpdate;

  /**
   * @param {string} hubUrl the hub's socket URL (`hub.url`)
   * @param {string} docId
   * @param {Y.Doc} ydoc the document to load into and store from
   * @param {{keep?: number}} [options]
   */
  constructor(hubUrl, docId, ydoc, { keep = KEEP_COPIES } = {}) {
    this.name = localCopyName(hubUrl, docId);
    this.docId = docId;
    this.doc = ydoc;
    this.#keep = keep;
    this.#closedSignal = new Promise((resolve) => (this.#signalClosed = resolve));
    // Updates of this tab's own (typed, or from the hub) go to the other tabs; what came from storage or from
    // another tab is already known there.
    this.#onDocUpdate = (update, origin) => {
      if (!this.owns(origin)) this.#post({ type: "update", update });
    };
    ydoc.on("update", this.#onDocUpdate);
    /** Resolves once the stored copy is in the `Y.Doc` (at once with nothing, when IndexedDB is unusable). */
    this.whenLoaded = this.#load();
  }

  /** Whether the copy is stored (false: IndexedDB is unusable here, or the copy was closed or cleared). */
  get available() {
    return this.#available && !this.#closed;
  }

  /** Whether the stored copy has been loaded into the `Y.Doc`. */
  get loaded() {
    return this.#loaded;
  }

  /** @returns {LocalMeta} */
  get meta() {
    return this.#meta;
  }

  /** Whether a `Y.Doc` update with this origin came from storage or from another tab (not typed here). */
  owns(origin) {
    return origin === this || (origin !== null && origin === this.#persistence);
  }

  /** Listen to `cleared` (the copy was deleted: here, or by another tab). @returns {() => void} */
  on(event, fn) {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  async #load() {
    if (typeof BroadcastChannel === "function") {
      // first, so nothing another tab sends during the load is missed
      this.#channel = new BroadcastChannel(this.name);
      this.#channel.onmessage = (event) => this.#onMessage(event.data);
    }
    if (typeof indexedDB !== "undefined" && (await indexedDbWorks()) && !this.#closed) {
      const persistence = new IndexeddbPersistence(this.name, this.doc);
      this.#persistence = persistence;
      await Promise.race([persistence.whenSynced, this.#closedSignal]);
      if (!this.#closed) {
        this.#available = true;
        // deleted elsewhere (another tab cleared it): lib0 closes the connection; stop storing into it
        const db = persistence.db;
        const close = db.onversionchange;
        db.onversionchange = (event) => {
          close?.call(db, event);
          this.#storageGone();
        };
        this.#meta = (await persistence.get("meta").catch(() => null)) ?? {};
        touchIndex(this.name, this.#meta.pending);
        this.#evict();
      }
    }
    this.#loaded = true;
    // whatever another tab holds that this one lacks (it may have typed while this tab loaded)
    this.#post({ type: "hello", vector: Y.encodeStateVector(this.doc) });
    return this;
  }

  /**
   * Remember what a sync said (merged into the stored record; other tabs learn it too).
   * @param {LocalMeta} fields
   */
  remember(fields) {
    const next = { ...this.#meta, ...fields };
    if (Object.keys(next).every((key) => sameValue(next[key], this.#meta[key]))) return this.#metaWrite;
    this.#meta = next;
    this.#post({ type: "meta", meta: next });
    return this.#store();
  }

  #store() {
    if (!this.available) return this.#metaWrite;
    const persistence = this.#persistence;
    const meta = this.#meta;
    touchIndex(this.name, meta.pending);
    this.#metaWrite = this.#metaWrite.then(() => persistence.set("meta", meta)).catch(() => {});
    return this.#metaWrite;
  }

  /** Resolves once every change made so far is written (a read after the writes waits for them). */
  whenSaved() {
    const db = this.available ? this.#persistence?.db : null;
    if (!db) return Promise.resolve(false);
    return this.#metaWrite.then(
      () =>
        new Promise((resolve) => {
          try {
            const transaction = db.transaction(["updates", "custom"], "readonly");
            transaction.oncomplete = () => resolve(true);
            transaction.onerror = transaction.onabort = () => resolve(false);
          } catch {
            resolve(false); // closed meanwhile
          }
        }),
    );
  }

  /** Fold the stored update records into one (done after each sync; y-indexeddb also does it at 500). */
  compact() {
    if (!this.available || !this.#persistence) return;
    try {
      storeState(this.#persistence, true);
    } catch {
      // the database was closed meanwhile (deleted by another tab): nothing to fold
    }
  }

  /**
   * Delete the copy, here and for the other tabs of this document (their connection closes, their copy goes).
   * The `Y.Doc` keeps what it holds: the caller drops it. The deletion is requested at once, so a copy opened
   * after this call starts empty.
   */
  clear() {
    if (this.#cleared) return Promise.resolve();
    this.#cleared = true;
    this.#post({ type: "cleared" });
    dropFromIndex(this.name);
    this.#closeStorage();
    const deleted = typeof indexedDB !== "undefined" ? deleteDatabase(this.name) : Promise.resolve(true);
    this.#emit("cleared");
    return deleted.then(() => undefined);
  }

  /** Stop storing and listening; the stored copy stays for the next time. */
  destroy() {
    this.#closeStorage();
    this.doc.off("update", this.#onDocUpdate);
    this.#channel?.close();
    this.#channel = null;
    this.#listeners.clear();
  }

  #closeStorage() {
    this.#closed = true;
    this.#signalClosed();
    const persistence = this.#persistence;
    if (persistence) persistence.destroy().catch(() => {});
  }

  #storageGone() {
    if (this.#closed) return;
    this.#closeStorage();
    this.#emit("cleared");
  }

  #evict() {
    for (const name of evictable(this.#keep, this.name)) {
      dropFromIndex(name);
      deleteDatabase(name);
    }
  }

  #post(message) {
    if (!this.#channel) return;
    try {
      this.#channel.postMessage(message);
    } catch {
      // closed meanwhile
    }
  }

  #onMessage(message) {
    if (!message || typeof message !== "object") return;
    const origin = this.#persistence ?? this;
    if (message.type === "update" && message.update instanceof Uint8Array) {
      try {
        // stored already by the tab that sent it: the persistence's own origin keeps y-indexeddb from storing it twice
        Y.applyUpdate(this.doc, message.update, origin);
      } catch (error) {
        console.warn(`docedit ${this.docId}: ignored a bad update from another tab`, error);
      }
    } else if (message.type === "hello" && message.vector instanceof Uint8Array) {
      let theirs;
      try {
        theirs = Y.decodeStateVector(message.vector);
      } catch {
        return;
      }
      const ours = Y.decodeStateVector(Y.encodeStateVector(this.doc));
      if ([...ours].some(([client, clock]) => clock > (theirs.get(client) ?? 0))) {
        this.#post({ type: "update", update: Y.encodeStateAsUpdate(this.doc, message.vector) });
      }
    } else if (message.type === "meta" && message.meta && typeof message.meta === "object") {
      this.#meta = message.meta;
    } else if (message.type === "cleared") {
      this.#storageGone();
    }
  }

  #emit(event) {
    for (const fn of [...(this.#listeners.get(event) ?? [])]) {
      try {
        fn(this);
      } catch (error) {
        if (typeof globalThis.reportError === "function") globalThis.reportError(error);
      }
    }
  }
}

function sameValue(a, b) {
  if (a === b) return true;
  if (a && b && typeof a === "object" && typeof b === "object") return JSON.stringify(a) === JSON.stringify(b);
  return false;
}
