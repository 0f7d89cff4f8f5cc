/**
 * The board as this browser holds it: the server's records under the conflict rule of docs/draw.md §3 (the
 * same rule as plugins/draw/board.py), and on top of them this user's edits that the server has not
 * answered yet. No DOM and no Fabric here, so that the rule can be checked on its own (tests/browser).
 *
 * A record is a wire object (`{kind, id, version, nonce, …}`) or a tombstone (`{id, version, nonce,
 * deleted: true}`); a stamp is its `(version, nonce)` pair.
 */

/** Negative, zero or positive as stamp `a` is below, equal to or above stamp `b`. */
export function compareStamps(a, b) {
  return a.version - b.version || a.nonce - b.nonce;
}

/**
 * Whether an edit replaces what a board holds for its id (docs/draw.md §3): with a record, iff its stamp is
 * greater; with none, iff it is a creation (version 1) or above the pruning floor.
 */
export function wins(incoming, stored, floor = 0) {
  if (!stored) return incoming.version === 1 || incoming.version > floor;
  return compareStamps(incoming, stored) > 0;
}

/** A random 31-bit nonce: breaks ties between two edits of one object at the same version. */
export function randomNonce() {
  return crypto.getRandomValues(new Uint32Array(1))[0] >>> 1;
}

const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** A fresh object id such as `r-k3x9…` (14 characters; ids are never reused). */
export function randomId(kind) {
  let id = `${kind[0]}-`;
  for (const byte of crypto.getRandomValues(new Uint8Array(12))) id += ID_ALPHABET[byte % ID_ALPHABET.length];
  return id;
}

export const isLive = (record) => Boolean(record) && !record.deleted;

/** Drawing order: ascending `z`, then `id` (docs/draw.md §2). */
export function byDrawingOrder(a, b) {
  return a.z - b.z || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * A copy of a board that converges with every other copy: apply edits and clears in any order, each any
 * number of times. The client half of plugins/draw/board.py's Replica.
 */
export class Replica {
  gen = 0;
  floor = 0;
  /** @type {Map<string, any>} id -> the record that won (object or tombstone) */
  records = new Map();
  /**
   * Edits of unknown ids that the floor kept back. Two edits of a new object can be published out of order,
   * so an update can arrive before its creation: kept back, it competes with the creation when that comes
   * (as on the server); a stale edit of a pruned object stays invisible. Same as Replica.held in board.py.
   * @type {Map<string, any>}
   */
  held = new Map();

  /** Replace everything with a `sub` reply's snapshot (docs/draw.md §6). */
  load(snapshot) {
    this.gen = snapshot.gen ?? 0;
    this.floor = snapshot.floor ?? 0;
    this.records = new Map();
    this.held = new Map();
    for (const record of [...(snapshot.deleted ?? []), ...(snapshot.objects ?? [])]) {
      this.records.set(record.id, record);
    }
  }

  /** One record of an event (or a reply) made on generation `gen`; returns whether it changed the board. */
  apply(gen, record) {
    if (gen < this.gen) return false; // made before a clear this copy has seen
    if (gen > this.gen) this.clear(gen); // the clear's own event is still on its way
    const stored = this.records.get(record.id);
    if (!stored) {
      const held = this.held.get(record.id);
      if (!wins(record, null, this.floor)) {
        if (!held || compareStamps(record, held) > 0) this.held.set(record.id, record);
        return false;
      }
      this.held.delete(record.id);
      this.records.set(record.id, held && compareStamps(held, record) > 0 ? held : record);
      return true;
    }
    if (!wins(record, stored, this.floor)) return false;
    this.records.set(record.id, record);
    return true;
  }

  /** Move to generation `gen` (`draw.cleared`); returns whether it changed the board. */
  clear(gen) {
    if (gen <= this.gen) return false;
    this.gen = gen;
    this.floor = 0;
    this.records.clear();
    this.held.clear();
    return true;
  }
}

/**
 * The server's board plus this user's edits in flight ("pending"): what the panel shows. A pending edit is
 * shown while its stamp beats the server's record; it is dropped when its reply settles it (applied,
 * conflict or error), or when the board moves to a new generation. An error therefore rolls the change
 * back by itself: what is left is the server's record.
 */
export class Board {
  server = new Replica();
  /** @type {Map<string, {record: any, gen: number}>} id -> this user's latest edit the server has not answered */
  pending = new Map();

  get gen() {
    return this.server.gen;
  }

  /** Every id the board knows, live or not. */
  ids() {
    return new Set([...this.server.records.keys(), ...this.pending.keys()]);
  }

  /** The record shown for `id`: an object, a tombstone, or null. */
  shown(id) {
    const theirs = this.server.records.get(id) ?? null;
    const mine = this.pending.get(id);
    if (mine && mine.gen === this.server.gen && (!theirs || compareStamps(mine.record, theirs) > 0)) {
      return mine.record;
    }
    return theirs;
  }

  /** Every live object shown, in drawing order. */
  live() {
    return [...this.ids()].map((id) => this.shown(id)).filter(isLive).sort(byDrawingOrder);
  }

  /** The highest `z` on the board (new objects go above it). */
  topZ() {
    let top = 0;
    for (const id of this.ids()) {
      const record = this.shown(id);
      if (isLive(record) && record.z > top) top = record.z;
    }
    return top;
  }

  /** The stamp of this user's next edit of `id`: one version above anything seen, a fresh nonce. */
  nextStamp(id) {
    const theirs = this.server.records.get(id);
    const mine = this.pending.get(id)?.record;
    return { version: Math.max(theirs?.version ?? 0, mine?.version ?? 0) + 1, nonce: randomNonce() };
  }

  /** An optimistic local edit (object or tombstone), shown at once. */
  propose(record) {
    this.pending.set(record.id, { record, gen: this.server.gen });
  }

  /** A snapshot: the server's board is replaced; pending edits on its generation stay until answered. */
  load(snapshot) {
    const before = this.ids();
    this.server.load(snapshot);
    for (const [id, entry] of this.pending) if (entry.gen !== this.server.gen) this.pending.delete(id);
    return new Set([...before, ...this.ids()]);
  }

  /** `draw.cleared` (or a reply's newer `gen`); returns the ids whose display changed. */
  clear(gen) {
    if (gen <= this.server.gen) return new Set();
    const before = this.ids();
    this.server.clear(gen);
    for (const [id, entry] of this.pending) if (entry.gen < gen) this.pending.delete(id);
    return before;
  }

  /** Records of a `draw.updated` / `draw.deleted` event on generation `gen`; returns the changed ids. */
  receive(gen, records) {
    const changed = this.clear(gen);
    for (const record of records) if (this.server.apply(gen, record)) changed.add(record.id);
    return changed;
  }

  /**
   * The reply to a `draw.put` / `draw.delete` of `sent` (made on generation `gen`): applied edits join the
   * server's board, each conflict's `current` is taken by the rule (an equal stamp is the server's already),
   * and the pending edits it answers are dropped. Returns the ids whose display may have changed.
   */
  settle(gen, sent, reply) {
    const changed = this.clear(reply.gen ?? gen);
    const byId = new Map(sent.map((record) => [record.id, record]));
    for (const id of reply.applied ?? []) {
      const record = byId.get(id);
      if (record && this.server.apply(gen, record)) changed.add(id);
    }
    for (const { id, current } of reply.conflicts ?? []) {
      if (current && this.server.apply(reply.gen ?? gen, current)) changed.add(id);
    }
    for (const id of this.abandon(sent)) changed.add(id);
    return changed;
  }

  /** The edits `sent` failed (an error reply): drop them, so the server's records show again. */
  abandon(sent) {
    const changed = new Set();
    for (const record of sent) {
      const mine = this.pending.get(record.id)?.record;
      if (mine && compareStamps(mine, record) === 0) {
        this.pending.delete(record.id);
        changed.add(record.id);
      }
    }
    return changed;
  }
}
