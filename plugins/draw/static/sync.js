/**
 * One board shared through the hub and shown on the canvas: the `draw:<board>` subscription, the board
 * kept by the conflict rule (board.js), one Fabric object per live record, and the publishing of this
 * user's edits. Every edit is shown at once, published as a new version with a fresh nonce, and settled by
 * its reply: applied, beaten (the server's `current` shows), or refused (the error is reported and the
 * change rolled back). Undo and redo are replayed here as new versions.
 */

import { ActiveSelection } from "./vendor/fabric.mjs";
import { Board, compareStamps, isLive, randomId, randomNonce } from "./board.js";
import { sameBody, transition } from "./history.js";
import { DEFAULT_LIMITS, createShape, readShape, updateShape } from "./shapes.js";


export const selectionOf = (target) =>
  target instanceof ActiveSelection ? target.getObjects() : target ? [target] : [];

export class BoardSync {
  name = null;
  channel = null;
  board = new Board();
  /** @type {Map<string, any>} id -> the Fabric object that shows it */
  shapes = new Map();
  /** @type {{client: string, user: string, name: string}[]} who is on the board */
  members = [];
  #session = 0; // one per board opened: replies about an earlier board are dropped
  #unsubscribe = null;
  #stale = new Set(); // ids changed by others while this user was moving or typing them

  /**
   * @param {import("/hub.js").Hub} hub
   * @param {import("./vendor/fabric.mjs").Canvas} canvas
   * @param {{peers: import("./peers.js").Peers, history: import("./history.js").History,
   *   isBusy(object: any): boolean, changed(): void, error(error: any): void, notice(text: string): void,
   *   presence(members: any[], change: import("/hub.js").PresenceChange): void, loaded(): void}} hooks
   */
  constructor(hub, canvas, hooks) {
    this.hub = hub;
    this.canvas = canvas;
    this.hooks = hooks;
    /** The hub's limits for this board's edits (its snapshot's `limits`; docs/draw.md §8). */
    this.limits = DEFAULT_LIMITS;
  }

  get isOpen() {
    return this.hub.state === "open" && this.channel !== null;
  }

  /** Leave the current board (if any) and follow `draw:<name>`. */
  open(name) {
    this.#forget();
    this.#unsubscribe?.().catch(() => {}); // the hub forgets us on close anyway
    this.#session += 1;
    this.name = name;
    this.channel = `draw:${name}`;
    this.members = [];
    const myClient = () => this.hub.hello?.client ?? null;
    const { peers } = this.hooks;
    this.#unsubscribe = this.hub.subscribe(this.channel, {
      onSubscribed: (info) => {
        if (!info.resubscribed) return;
        peers.reset(); // the others' connections may be new ones
        if (info.recovered) this.hooks.notice(`Reconnected: ${info.missed} missed change(s) caught up.`);
      },
      onSnapshot: (snapshot, info) => {
        if (snapshot.limits) this.limits = snapshot.limits;
        this.renderAll(this.board.load(snapshot));
        if (info.reset) this.hooks.notice("Reconnected: the board was reloaded.");
        this.hooks.loaded();
      },
      onPresence: (members, change) => {
        this.members = members;
        // a big room lists a sample only: a cursor of someone not in it is not a departure
        if (!change.partial) peers.keep(members);
        this.hooks.presence(members, change);
      },
      onError: (error) => this.hooks.error(error),
      events: {
        "draw.updated": ({ gen, objects }) => this.render(this.board.receive(gen, objects)),
        "draw.deleted": ({ gen, deleted }) => this.render(this.board.receive(gen, deleted)),
        "draw.cleared": ({ gen, client }) => {
          const changed = this.board.clear(gen);
          this.renderAll(changed);
          if (changed.size && client !== myClient()) this.hooks.notice(`${this.nameOf(client)} cleared the board.`);
        },
        "draw.cursor_moved": (data) => data.client !== myClient() && peers.moveCursor(data),
        "draw.stroked": (data) => {
          // a late chunk of a stroke whose path is on the board already shows nothing
          if (data.client !== myClient() && !this.shapes.has(data.id)) peers.extendStroke(data);
        },
        "draw.left": ({ client }) => peers.left(client),
      },
    });
  }

  close() {
    this.#forget();
    this.#unsubscribe?.().catch(() => {});
    this.#unsubscribe = null;
    this.channel = null;
  }

  /** Drop the board shown (a text being edited is saved first, by the editor's handlers). */
  #forget() {
    this.canvas.discardActiveObject();
    for (const object of this.shapes.values()) {
      object.hubGone = true;
      this.canvas.remove(object);
    }
    this.shapes.clear();
    this.board = new Board();
    this.#stale.clear();
    this.hooks.history.clear();
    this.hooks.peers.reset();
    this.canvas.requestRenderAll();
  }

  nameOf(client) {
    const member = this.members.find((m) => m.client === client);
    return member?.display ?? member?.name ?? "Someone";
  }

  /** A best-effort message (a cursor, a stroke in progress): not queued while offline, errors ignored. */
  ephemeral(type, data) {
    if (this.isOpen) this.hub.publish(this.channel, type, data).catch(() => {});
  }

  // ---- showing the board ----------------------------------------------------------------------------

  /** Whether a Fabric object shows one of the board's records (and is not a draft or a preview). */
  owns(object) {
    return Boolean(object?.hubId) && this.shapes.get(object.hubId) === object;
  }

  /** Show each id as the board has it now: create, update or remove its Fabric object. */
  render(ids) {
    let restack = false;
    for (const id of ids) {
      const record = this.board.shown(id);
      let object = this.shapes.get(id);
      if (!isLive(record)) {
        if (object) {
          this.shapes.delete(id);
          this.#detach(object);
        }
        continue;
      }
      this.hooks.peers.arrived(id);
      if (object?.hubRecord === record) continue;
      if (object && compareStamps(object.hubRecord, record) === 0 && sameBody(object.hubRecord, record)) {
        object.hubRecord = record; // this user's own edit coming back
        continue;
      }
      if (object && this.hooks.isBusy(object)) {
        this.#stale.add(id); // shown when the gesture ends, unless this user's edit beats it
        continue;
      }
      if (object) this.#release(object);
      if (object && updateShape(object, record)) {
        if (object.hubRecord.z !== record.z) restack = true;
      } else {
        if (object) this.canvas.remove(object);
        object = createShape(record);
        this.canvas.add(object);
        this.shapes.set(id, object);
        restack = true;
      }
      object.hubRecord = record;
    }
    if (restack) this.#restack();
    this.canvas.requestRenderAll();
    this.hooks.changed();
  }

  renderAll(ids) {
    this.render(new Set([...ids, ...this.shapes.keys()]));
  }

  /** A gesture or a text edit ended: show what others changed meanwhile. */
  flushStale() {
    if (!this.#stale.size) return;
    const ids = [...this.#stale];
    this.#stale.clear();
    this.render(ids);
  }

  /** Take an object out of a multiple selection before changing it (Fabric keeps members relative to it). */
  #release(object) {
    if (object.group && object.group === this.canvas.getActiveObject()) this.canvas.discardActiveObject();
  }

  #detach(object) {
    object.hubGone = true; // a text edit ended by this must not publish the text again
    if (object.isEditing) object.exitEditing();
    this.#release(object);
    if (this.canvas.getActiveObject() === object) this.canvas.discardActiveObject();
    this.canvas.remove(object);
  }

  /** Canvas order = drawing order (z, id); live strokes and shapes being drawn stay on top. */
  #restack() {
    const wanted = this.board.live().map((record) => this.shapes.get(record.id)).filter(Boolean);
    const listed = new Set(wanted);
    const order = [...wanted, ...this.canvas.getObjects().filter((object) => !listed.has(object))];
    order.forEach((object, index) => {
      if (this.canvas.item(index) !== object) this.canvas.moveObjectTo(object, index);
    });
  }

  // ---- this user's edits ----------------------------------------------------------------------------

  /** Show records (objects or tombstones) at once and publish them; `changes`: one undoable operation. */
  commit(records, { changes = null, quiet = false } = {}) {
    if (!records.length) return;
    for (const record of records) this.board.propose(record);
    this.render(records.map((record) => record.id));
    if (changes) this.hooks.history.push(changes);
    const puts = records.filter(isLive);
    const deletes = records.filter((record) => !isLive(record));
    for (const [type, list] of [
      ["draw.put", puts],
      ["draw.delete", deletes],
    ]) {
      const perMessage = this.limits.max_put_objects;
      for (let i = 0; i < list.length; i += perMessage) {
        this.#send(type, this.board.gen, list.slice(i, i + perMessage), { quiet, retry: true });
      }
    }
    this.hooks.changed();
  }

  /**
   * One message and its reply. A request cut by a disconnect is sent once more: the same stamps, so the
   * server answers a repeat as applied. `quiet`: a rate limit is no news (a later edit carries the state).
   */
  #send(type, gen, chunk, options) {
    const session = this.#session;
    const objects = type === "draw.put" ? chunk : chunk.map(({ id, version, nonce }) => ({ id, version, nonce }));
    this.hub.publish(this.channel, type, { gen, objects }).then(
      (reply) => {
        if (session === this.#session) this.render(this.board.settle(gen, chunk, reply));
      },
      (error) => {
        if (session !== this.#session) return;
        if (error.code === "disconnected" && options.retry) {
          this.#send(type, gen, chunk, { ...options, retry: false });
          return;
        }
        this.hooks.history.discard(chunk);
        this.render(this.board.abandon(chunk)); // rolled back: the server's records show again
        if (!(options.quiet && error.code === "rate_limited")) this.hooks.error(error);
      },
    );
  }

  /** One undoable operation of this user's whose edits were published already. */
  remember(changes) {
    this.hooks.history.push(changes);
    this.hooks.changed();
  }

  /** A new object's first version, from a Fabric object drawn here, which shows it from now on. */
  adopt(object, kind) {
    const id = object.hubId ?? randomId(kind);
    const z = Math.max(Date.now(), Math.floor(this.board.topZ()) + 1); // above everything else
    const record = { kind, id, version: 1, nonce: randomNonce(), z, ...readShape(object) };
    Object.assign(object, { hubId: id, hubKind: kind, hubRecord: record });
    this.shapes.set(id, object);
    return record;
  }

  /** New versions of the board's objects from their Fabric objects, as changed here (none if unchanged). */
  editsOf(objects) {
    const records = [];
    for (const object of objects) {
      if (!this.owns(object)) continue;
      const current = this.board.shown(object.hubId);
      if (!isLive(current)) continue;
      const next = { ...current, ...readShape(object) };
      if (sameBody(next, current)) continue;
      Object.assign(next, this.board.nextStamp(object.hubId));
      object.hubRecord = next;
      records.push(next);
    }
    return records;
  }

  /** Delete objects, as one undoable operation. */
  remove(objects) {
    const changes = [];
    for (const object of objects) {
      const before = this.owns(object) ? this.board.shown(object.hubId) : null;
      if (!isLive(before)) continue;
      const tombstone = { id: object.hubId, ...this.board.nextStamp(object.hubId), deleted: true };
      changes.push({ id: tombstone.id, before, after: null, sent: tombstone });
    }
    this.canvas.discardActiveObject();
    this.commit(
      changes.map((change) => change.sent),
      { changes },
    );
  }

  /** Publish what takes the objects of an undo/redo step from `from` to `to` (what this user changed only). */
  replay(steps) {
    if (!steps) return;
    this.canvas.discardActiveObject();
    const records = [];
    for (const step of steps) {
      let id = step.id;
      const move = transition(this.board.shown(id), step.from, step.to);
      if (!move) continue;
      let stamp = this.board.nextStamp(id);
      if (move.delete) {
        records.push({ id, ...stamp, deleted: true });
        continue;
      }
      if (!this.board.server.records.has(id)) {
        // gone by a clear (or its tombstone was pruned): back at its version + 1 on this generation, or
        // under a new id where the pruning floor would refuse that (docs/draw.md §7)
        stamp.version = Math.max(stamp.version, (step.to.version ?? 0) + 1);
        if (stamp.version <= this.board.server.floor) {
          const fresh = randomId(move.body.kind);
          this.hooks.history.rename(id, fresh);
          id = fresh;
          stamp = { version: 1, nonce: randomNonce() };
        }
      }
      records.push({ ...move.body, id, ...stamp });
    }
    this.commit(records);
    this.hooks.changed(); // the stacks moved even when there was nothing to publish
  }

  /** Clear the board for everyone (undoable by this user: the objects come back on the new generation). */
  async clear() {
    const before = this.board.live();
    const session = this.#session;
    const reply = await this.hub.publish(this.channel, "draw.clear", { gen: this.board.gen });
    if (session !== this.#session) return reply;
    this.renderAll(this.board.clear(reply.gen));
    if (reply.cleared && before.length) {
      this.hooks.history.push(before.map((record) => ({ id: record.id, before: record, after: null, sent: null })));
    }
    this.hooks.changed();
    return reply;
  }
}
